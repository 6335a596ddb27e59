"""QC: measuring what makes a swap look fake, per frame and per shot.

Metrics, each computed where the plate has a face (its 478 landmarks):

- ``coverage``: frames whose face was changed / frames with a face in the plate.
- ``sharpness_ratio``: high-frequency energy (variance of the Laplacian) of the face in
  the output over that of the plate around it (a ring outside the face) in the output.
  Below 1 the face is blurrier than its surroundings: the classic giveaway.
- ``color_delta_e``: CIE76 ΔE between the mean Lab colour of the output's skin and the
  plate's skin (face oval less eyes, brows and lips).
- ``seam_energy``: how abruptly the swap meets the plate. The change the swap made
  (output − plate) is measured along the edge of the changed region: the RMS of its
  gradient in a band across that edge, over the mean size of the change inside. A hard
  edge drops the whole change within a pixel or two (high); a well-feathered edge fades
  it over many (low). Measuring the change rather than the image keeps the face's own
  detail, or its blur, out of the number.
- ``edges``: the hard edges the swap put in or around the face that neither the plate nor
  a feathered paste would have: along the model's square, the mask's outer edge, inside
  the mask. The change (output − plate, in Lab) is taken in a patch around the face
  scaled so the face is 100 px wide (1 px = 1 % of the face: scale-free); a median over
  7 % of the face removes the face's own thin features (brows, lids, lip lines) from the
  change, leaving the steps between large regions; steps the plate's own edges explain
  (an edge softened or moved) are taken out; the gradient is averaged along 21 % of the
  face at 16 orientations, so texture cancels and long straight-ish edges add up;
  thinned to ridges, the strongest ones totalling one face width are averaged.
  Units: ΔE per 1 % of the face's width. On flat skin a hard step of ΔE s reads s / 4.4,
  the same step feathered over 3 % of the face s / 9, over 6 % s / 17 (tested).
- ``expression_nme``: landmark error between the face re-detected in the output and the
  plate's face, over the inter-ocular distance.
- ``flicker``: frame-to-frame change of the face region in the output over that of the
  plate (1 = as steady as the plate).
- ``identity`` (with reference facesets of A, the plate's person, and B, the one put on;
  see ``identity.py``): per frame the output face's mean descriptor distance to A's and
  to B's faces (``identity_dist_a``, ``identity_dist_b``) and its position on the line
  from A's mean descriptor to B's (``identity``: 0 = A, 1 = B); for the shot their
  means and ``identity_b_share``, the share of frames nearer B than A.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import Field, model_validator

from swapgraph.runtime.images import frames_to_rgb8
from swapgraph.runtime.node import NodeSchema, OutputPath, Params, PathRole, Port, RunContext, Sink
from swapgraph.runtime.ports import Frames
from swapgraph.runtime.files import PNG_SOFTWARE_KEY, temp_path_for
from swapgraph.runtime.provenance import swapgraph_version

from .color import EXCLUDED
from .identity import FaceDescriber, References, load_references
from .mask import polygon_masks, regions
from .ports import Face, Faces

SUMMARY_KEYS = ("coverage", "sharpness_ratio", "color_delta_e", "seam_energy", "edges", "expression_nme", "flicker")
IDENTITY_KEYS = ("identity_dist_a", "identity_dist_b", "identity_b_share", "identity")

EDGE_FACE_PX = 100  # the face's side in the working patch: 1 px = 1 % of the face
EDGE_GROW = 1.8  # patch side / face side: takes in the model's square and the mask's outer edge
EDGE_MEDIAN = 7  # px: wider than brows, lids and lip lines, narrower than the face's regions
EDGE_SIGMA = 1.5  # px: smoothing before the gradient; a step sharper than this reads as hard
EDGE_LENGTH = 21  # px: the segment a gradient is averaged along
EDGE_ANGLES = 16
EDGE_MASKING = 0.3  # share of the plate's nearby structure gradient a new edge must exceed to count
_DISC = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))  # "nearby": within 3 % of the face


def _region_mask(face: Face, names: list[str], shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    r = regions()
    canvas = polygon_masks(face.landmarks[None, :, :2].astype(np.float64), [r[n] for n in names], max(h, w))[0]
    return canvas[:h, :w].astype(bool)


def _lab_mean(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    return lab[mask].mean(0)


def _gradient_energy(gray: np.ndarray) -> np.ndarray:
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    return gx * gx + gy * gy


def face_patch_matrix(box: tuple[float, float, float, float], grow: float = EDGE_GROW,
                      face_px: int = EDGE_FACE_PX) -> tuple[np.ndarray, int]:
    """The (2, 3) affine taking frame pixels to a square patch of side n (returned) around
    the face ``box`` (x0, y0, x1, y1): the box's longer side becomes ``face_px``, its centre
    the patch's."""
    x0, y0, x1, y1 = box
    s = face_px / max(x1 - x0, y1 - y0, 1e-6)
    n = int(round(face_px * grow))
    return np.array([[s, 0, n / 2 - s * (x0 + x1) / 2], [0, s, n / 2 - s * (y0 + y1) / 2]]), n


@lru_cache(maxsize=4)
def _line_kernels(angles: int, length: int) -> tuple[tuple[float, float, np.ndarray], ...]:
    """Per orientation θ: (cos θ, sin θ, a (length, length) kernel averaging along the line
    through the centre perpendicular to θ, drawn with bilinear weights)."""
    c = length // 2
    out = []
    for k in range(angles):
        th = np.pi * k / angles
        ker = np.zeros((length + 1, length + 1), np.float32)
        t = np.linspace(-c, c, 4 * length)
        x, y = c - t * np.sin(th), c + t * np.cos(th)
        xi, yi = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = x - xi, y - yi
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            np.add.at(ker, (yi + dy, xi + dx), w)
        ker = ker[:length, :length]
        out.append((float(np.cos(th)), float(np.sin(th)), ker / ker.sum()))
    return tuple(out)


def _gradients(img: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    smooth = cv2.GaussianBlur(img, (0, 0), sigma)
    return (cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=1, scale=0.5),
            cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=1, scale=0.5))


def introduced_edges(out_lab: np.ndarray, src_lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges in the change that the plate does not explain, on a face patch.

    out_lab, src_lab: Lab float32 (n, n, 3) patches (``face_patch_matrix``). Returns the
    strength (n, n) float32, ΔE per patch pixel, and its ridges (n, n) bool: the pixels
    that are the strongest across the edge (non-maximum suppression, as Canny's).
    """
    from scipy.ndimage import median_filter

    median = (EDGE_MEDIAN, EDGE_MEDIAN, 1)
    change = median_filter(out_lab - src_lab, size=median)
    gx, gy = _gradients(change, EDGE_SIGMA)
    # a step in the change against the plate's own gradient is the plate's edge softened or
    # moved, not a new one: take out that part, up to the plate's edge itself
    sx, sy = _gradients(src_lab, EDGE_SIGMA)
    along = np.clip(-(gx * sx + gy * sy).sum(2) / np.maximum((sx * sx + sy * sy).sum(2), 1e-6), 0, 1)[..., None]
    gx, gy = gx + along * sx, gy + along * sy
    # near the plate's own large edges (brows, glasses, jaw on background) a softened face
    # leaves steps beside them too, and a viewer sees a new edge there less: shrink the
    # change's gradient by a share of the plate's nearby structure (median-filtered, so
    # skin texture does not count)
    mx, my = _gradients(median_filter(src_lab, size=median), EDGE_SIGMA)
    structure = cv2.dilate(np.sqrt((mx * mx + my * my).sum(2)), _DISC)
    magnitude = np.sqrt((gx * gx + gy * gy).sum(2))
    keep = (np.maximum(magnitude - EDGE_MASKING * structure, 0) / np.maximum(magnitude, 1e-6))[..., None]
    gx, gy = gx * keep, gy * keep
    strength = np.zeros(out_lab.shape[:2], np.float32)
    best = np.zeros(out_lab.shape[:2], np.int64)
    kernels = _line_kernels(EDGE_ANGLES, EDGE_LENGTH)
    for k, (c, s, ker) in enumerate(kernels):
        r = np.sqrt((cv2.filter2D(c * gx + s * gy, -1, ker, borderType=cv2.BORDER_REPLICATE) ** 2).sum(2))
        better = r > strength
        strength[better], best[better] = r[better], k
    th = np.pi * best / EDGE_ANGLES
    dx, dy = np.rint(np.cos(th)).astype(int), np.rint(np.sin(th)).astype(int)
    h, w = strength.shape
    yy, xx = np.mgrid[:h, :w]
    padded = np.pad(strength, 1)
    ridges = ((strength > 0) & (strength >= padded[yy + 1 + dy, xx + 1 + dx])
              & (strength >= padded[yy + 1 - dy, xx + 1 - dx]))
    return strength, ridges


def edges_measure(out: np.ndarray, src: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """``edges`` of one frame: out, src RGB uint8 (H, W, 3), the plate's face box. The mean
    strength of the strongest edge ridges totalling one face width (fewer count as 0)."""
    m, n = face_patch_matrix(box)
    flags = cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_LINEAR

    def patch(rgb: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
        return cv2.warpAffine(lab, m, (n, n), flags=flags, borderMode=cv2.BORDER_REPLICATE)

    strength, ridges = introduced_edges(patch(out), patch(src))
    top = np.sort(strength[ridges])[::-1][:EDGE_FACE_PX]
    return float(top.sum() / EDGE_FACE_PX)


def frame_metrics(out: np.ndarray, src: np.ndarray, face: Face, out_face: Face | None,
                  prev: tuple[np.ndarray, np.ndarray] | None) -> dict[str, float]:
    """Metrics of one frame: ``out`` and ``src`` RGB uint8 (H, W, 3), the plate's face, the face
    re-detected in the output (or None), and the previous (out, src) frames (or None)."""
    h, w = src.shape[:2]
    face_mask = _region_mask(face, ["face_oval"], (h, w))
    if face_mask.sum() < 64:
        return {}
    size = max(face.box[2] - face.box[0], face.box[3] - face.box[1])
    k = max(3, int(size * 0.15) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    grown = cv2.dilate(face_mask.astype(np.uint8), kernel).astype(bool)
    inner = cv2.erode(face_mask.astype(np.uint8), kernel).astype(bool)
    ring = grown & ~face_mask
    gray_out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray_src = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(gray_out, cv2.CV_32F)
    m: dict[str, float] = {}
    diff = np.abs(out.astype(np.int16) - src.astype(np.int16)).max(2)
    m["swapped"] = float(diff[face_mask].mean() > 1.0)
    if inner.any() and ring.any():
        m["sharpness_ratio"] = float(lap[inner].var() / max(lap[ring].var(), 1e-6))
    skin = face_mask & ~_region_mask(face, list(EXCLUDED), (h, w))
    if skin.any():
        m["color_delta_e"] = float(np.linalg.norm(_lab_mean(out, skin) - _lab_mean(src, skin)))
    changed = cv2.morphologyEx((diff > 3).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    inside = cv2.erode(changed, np.ones((9, 9), np.uint8)).astype(bool)
    if changed.sum() > 64 and inside.any():
        band = cv2.morphologyEx(changed, cv2.MORPH_GRADIENT, np.ones((9, 9), np.uint8)).astype(bool)
        delta = gray_out - gray_src
        m["seam_energy"] = float(np.sqrt(_gradient_energy(delta)[band].mean())
                                 / max(np.abs(delta[inside]).mean(), 1e-6))
    m["edges"] = edges_measure(out, src, face.box)
    if out_face is not None:
        eyes = np.linalg.norm(face.landmarks[468, :2] - face.landmarks[473, :2])
        err = np.linalg.norm(out_face.landmarks[:468, :2] - face.landmarks[:468, :2], axis=1).mean()
        m["expression_nme"] = float(err / max(eyes, 1e-6))
    if prev is not None:
        p_out, p_src = prev
        d_out = np.abs(gray_out - cv2.cvtColor(p_out, cv2.COLOR_RGB2GRAY).astype(np.float32))[face_mask].mean()
        d_src = np.abs(gray_src - cv2.cvtColor(p_src, cv2.COLOR_RGB2GRAY).astype(np.float32))[face_mask].mean()
        m["flicker_out"], m["flicker_src"] = float(d_out), float(d_src)
    return m


def summarise(frames: list[dict[str, Any]]) -> dict[str, float | None]:
    """One number per metric for the shot (keys: ``SUMMARY_KEYS``, and ``IDENTITY_KEYS`` when
    the frames were measured against reference facesets)."""
    with_face = [f for f in frames if f.get("face")]

    def mean(key: str) -> float | None:
        vals = [f[key] for f in with_face if key in f]
        return float(np.mean(vals)) if vals else None

    sharp = [f["sharpness_ratio"] for f in with_face if "sharpness_ratio" in f and f.get("swapped")]
    fo = sum(f.get("flicker_out", 0.0) for f in with_face)
    fs = sum(f.get("flicker_src", 0.0) for f in with_face)
    summary = {
        "coverage": (sum(f.get("swapped", 0) for f in with_face) / len(with_face)) if with_face else None,
        "sharpness_ratio": float(np.median(sharp)) if sharp else None,
        "color_delta_e": mean("color_delta_e"),
        "seam_energy": mean("seam_energy"),
        "edges": mean("edges"),
        "expression_nme": mean("expression_nme"),
        "flicker": fo / fs if fs > 0 else None,
    }
    known = [f for f in with_face if "identity" in f]
    if known:
        summary.update({"identity_dist_a": mean("identity_dist_a"), "identity_dist_b": mean("identity_dist_b"),
                        "identity_b_share": sum(f["identity_dist_b"] < f["identity_dist_a"] for f in known)
                        / len(known),
                        "identity": mean("identity")})
    return summary


def plot_report(frames: list[dict[str, Any]], out: Path) -> None:
    """Per-frame curves of every metric in one PNG at ``out`` (identity only when it was
    measured), saying swapgraph made it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["sharpness_ratio", "color_delta_e", "seam_energy", "edges", "expression_nme", "flicker_out"]
    if any("identity" in f for f in frames):
        keys.append("identity")
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 1.5 * len(keys)), sharex=True, dpi=100)
    for ax, key in zip(axes, keys):
        pts = [(f["frame"], f[key]) for f in frames if key in f]
        if pts:
            ax.plot(*zip(*pts), lw=1, color="#246")
        if key == "flicker_out":
            pts = [(f["frame"], f["flicker_src"]) for f in frames if "flicker_src" in f]
            if pts:
                ax.plot(*zip(*pts), lw=1, color="#c40", label="plate")
                ax.legend(fontsize=7)
        if key == "identity":
            ax.axhline(0, lw=0.8, color="#c40")
            ax.axhline(1, lw=0.8, color="#080")
            ax.set_ylim(min(-0.2, *(v for _, v in pts)), max(1.2, *(v for _, v in pts)))
        ax.set_ylabel(key.replace("_", " "), fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(out, format="png", metadata={PNG_SOFTWARE_KEY: f"swapgraph {swapgraph_version()}"})
    plt.close(fig)


class QualityReportParams(Params):
    path: OutputPath = Field(description="the report to write (JSON); a PNG of the curves goes beside it")
    faceset_a: Annotated[Path | None, PathRole("input")] = Field(
        None, description="faceset of the plate's person, for the identity measure (with faceset_b)")
    faceset_b: Annotated[Path | None, PathRole("input")] = Field(
        None, description="faceset of the person put on, for the identity measure (with faceset_a)")

    @model_validator(mode="after")
    def _both_or_neither(self) -> QualityReportParams:
        if (self.faceset_a is None) != (self.faceset_b is None):
            raise ValueError("give both faceset_a and faceset_b for the identity measure, or neither")
        return self


class QualityReport(Sink):
    """Measure a swapped shot against its plate: coverage, sharpness ratio, colour ΔE,
    seam energy, edges, expression error and flicker, per frame and per shot; with
    ``faceset_a`` and ``faceset_b``, also how far the face moved from A towards B.

    ``frames`` is the output, ``reference`` the plate, ``faces`` the plate's faces and
    ``output_faces`` (optional) the faces found again in the output, for the expression
    error. Writes the JSON report (``summary`` holds one number per metric) and a PNG of
    the per-frame curves.
    """

    schema = NodeSchema(inputs={"frames": Port(Frames, "the swapped output"), "reference": Port(Frames, "the plate"),
                                "faces": Port(Faces, "the plate's faces"),
                                "output_faces": Port(Faces, "faces re-detected in the output", required=False)},
                        params=QualityReportParams, devices=("cpu",), category="report")

    params: QualityReportParams

    def open(self, ctx: RunContext) -> None:
        self.frames: list[dict[str, Any]] = []
        self.prev: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        p = self.params
        self.references: References | None = (load_references(p.faceset_a, p.faceset_b)
                                               if p.faceset_a is not None and p.faceset_b is not None else None)

    def process(self, frames: Frames, reference: Frames, faces: Faces,
                output_faces: Faces | None = None) -> dict[str, Any]:
        outs, srcs = frames_to_rgb8(frames.pixels), frames_to_rgb8(reference.pixels)
        for i, n in enumerate(frames.index):
            record: dict[str, Any] = {"frame": n, "face": bool(faces.faces[i])}
            if faces.faces[i]:
                face = faces.faces[i][0]
                found = output_faces.faces[i] if output_faces is not None else []
                record.update(frame_metrics(outs[i], srcs[i], face, found[0] if found else None,
                                            self.prev.get(n - 1)))
                if self.references is not None:
                    # the face found again in the output fits the new face best; the plate's is the fallback
                    marks = (found[0] if found else face).landmarks
                    record.update(self.references.measure(FaceDescriber.shared().describe(outs[i], marks)))
            self.prev = {n: (outs[i], srcs[i])}
            self.frames.append(record)
        return {}

    def report(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"summary": summarise(self.frames), "frames": self.frames}
        if self.references is not None:
            doc["references"] = {"a": self.references.a_path, "b": self.references.b_path,
                                 "faces": [len(self.references.a), len(self.references.b)]}
        return doc

    def commit(self, ctx: RunContext) -> None:
        path = Path(self.params.path)
        doc = {"generator": f"swapgraph {swapgraph_version()}", **self.report(),
               "graph": {"name": ctx.graph_name, "hash": ctx.graph_hash}}
        self.temps = [temp_path_for(path), temp_path_for(path.with_suffix(".png"))]
        self.temps[0].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        plot_report(self.frames, self.temps[1])
        ctx.publication.stage(self.temps[0], path)
        ctx.publication.stage(self.temps[1], path.with_suffix(".png"))

    @classmethod
    def extra_outputs(cls, params: Params, name: str) -> list[Path]:
        return [Path(params.path).with_suffix(".png")]

    def abort(self) -> None:
        for temp in getattr(self, "temps", []):
            temp.unlink(missing_ok=True)

    def stats(self) -> dict[str, Any]:
        frames = getattr(self, "frames", None)
        return {k: round(v, 4) for k, v in summarise(frames).items() if v is not None} if frames else {}
