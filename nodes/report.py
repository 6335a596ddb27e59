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
- ``expression_nme``: landmark error between the face re-detected in the output and the
  plate's face, over the inter-ocular distance.
- ``flicker``: frame-to-frame change of the face region in the output over that of the
  plate (1 = as steady as the plate).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from swapgraph.runtime.images import frames_to_rgb8
from swapgraph.runtime.node import NodeSchema, OutputPath, Params, Port, RunContext, Sink
from swapgraph.runtime.ports import Face, Faces, Frames
from swapgraph.runtime.provenance import write_json_atomic

from .color import EXCLUDED
from .mask import polygon_masks, regions

SUMMARY_KEYS = ("coverage", "sharpness_ratio", "color_delta_e", "seam_energy", "expression_nme", "flicker")


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
    """One number per metric for the shot (keys: ``SUMMARY_KEYS``)."""
    with_face = [f for f in frames if f.get("face")]

    def mean(key: str) -> float | None:
        vals = [f[key] for f in with_face if key in f]
        return float(np.mean(vals)) if vals else None

    sharp = [f["sharpness_ratio"] for f in with_face if "sharpness_ratio" in f and f.get("swapped")]
    fo = sum(f.get("flicker_out", 0.0) for f in with_face)
    fs = sum(f.get("flicker_src", 0.0) for f in with_face)
    return {
        "coverage": (sum(f.get("swapped", 0) for f in with_face) / len(with_face)) if with_face else None,
        "sharpness_ratio": float(np.median(sharp)) if sharp else None,
        "color_delta_e": mean("color_delta_e"),
        "seam_energy": mean("seam_energy"),
        "expression_nme": mean("expression_nme"),
        "flicker": fo / fs if fs > 0 else None,
    }


def plot_report(frames: list[dict[str, Any]], out: Path) -> None:
    """Per-frame curves of every metric in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["sharpness_ratio", "color_delta_e", "seam_energy", "expression_nme", "flicker_out"]
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 9), sharex=True, dpi=100)
    for ax, key in zip(axes, keys):
        pts = [(f["frame"], f[key]) for f in frames if key in f]
        if pts:
            ax.plot(*zip(*pts), lw=1, color="#246")
        if key == "flicker_out":
            pts = [(f["frame"], f["flicker_src"]) for f in frames if "flicker_src" in f]
            if pts:
                ax.plot(*zip(*pts), lw=1, color="#c40", label="plate")
                ax.legend(fontsize=7)
        ax.set_ylabel(key.replace("_", " "), fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    tmp = out.with_name(f".{out.stem}.partial.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)


class QualityReportParams(Params):
    path: OutputPath = Field(description="the report to write (JSON); a PNG of the curves goes beside it")


class QualityReport(Sink):
    """Measure a swapped shot against its plate: coverage, sharpness ratio, colour ΔE,
    seam energy, expression error and flicker, per frame and per shot.

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
            self.prev = {n: (outs[i], srcs[i])}
            self.frames.append(record)
        return {}

    def report(self) -> dict[str, Any]:
        return {"summary": summarise(self.frames), "frames": self.frames}

    def commit(self, ctx: RunContext) -> None:
        path = Path(self.params.path)
        doc = {**self.report(), "graph": {"name": ctx.graph_name, "hash": ctx.graph_hash}}
        write_json_atomic(path, doc)
        plot_report(self.frames, path.with_suffix(".png"))

    def stats(self) -> dict[str, Any]:
        frames = getattr(self, "frames", None)
        return {k: round(v, 4) for k, v in summarise(frames).items() if v is not None} if frames else {}


def qc_paths(output: Path, out_dir: Path | None) -> Path:
    """Where ``swapgraph qc`` writes: ``OUTPUT.qc.json`` beside the output, or in ``out_dir``."""
    name = output.name + ".qc.json"
    return (out_dir / name) if out_dir else output.with_name(name)


def run_qc(output: Path, source: Path, out_dir: Path | None = None, workers: int = 0,
           frames: str | None = None) -> dict[str, Any]:
    """Measure ``output`` against its plate ``source`` (its frames ``frames``, ``A-B``, when the
    output was rendered from a range); writes the report and returns it."""
    from swapgraph.runtime.errors import UsageError
    from swapgraph.runtime.executor import Executor
    from swapgraph.runtime.graph import validate_graph
    from swapgraph.runtime.registry import default_registry

    from .video import probe_video

    from .video import parse_frame_range

    a, b = probe_video(output), probe_video(source)
    start, end = parse_frame_range(frames) if frames else (0, None)
    plate_frames = len(b.pts[start:None if end is None else end + 1])
    if len(a.pts) != plate_frames or (a.info.width, a.info.height) != (b.info.width, b.info.height):
        raise UsageError(f"qc: {output} ({len(a.pts)} frames, {a.info.width}x{a.info.height}) and {source} "
                         f"({plate_frames} frames, {b.info.width}x{b.info.height}) must have the same frames and size; "
                         "give the plate the output was made from (and --frames A-B if it was a range)")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    report_path = qc_paths(output, out_dir)
    doc = {"version": 1, "name": "qc", "settings": {"batch_size": 16}, "nodes": {
        "plate": {"type": "Decode", "params": {"path": str(source), "frames": frames}},
        "shot": {"type": "Decode", "params": {"path": str(output)}},
        "faces": {"type": "DetectFaces", "inputs": {"frames": "plate.frames"}, "params": {"workers": workers}},
        "again": {"type": "DetectFaces", "inputs": {"frames": "shot.frames"}, "params": {"workers": workers}},
        "report": {"type": "QualityReport", "inputs": {"frames": "shot.frames", "reference": "plate.frames",
                                                         "faces": "faces.faces", "output_faces": "again.faces"},
                   "params": {"path": str(report_path)}}}}
    graph = validate_graph(doc, default_registry())
    Executor(graph).run()
    return json.loads(report_path.read_text())
