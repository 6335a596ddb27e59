"""Face masks in crop space, from the landmarks: which pixels of a crop are the face.

Regions are MediaPipe mesh regions (``mesh_regions.json``, landmark indices from
MediaPipe 0.10.21), rasterised as convex polygons in crop pixels, then grown or shrunk
and feathered with a separable Gaussian on the crops' device.
"""

from __future__ import annotations

import json
import math
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import cv2
import kornia
import numpy as np
import torch
from pydantic import Field

from swapgraph.runtime.node import Issue, Node, NodeSchema, Params, Port, RunContext

from .ports import FaceCrops, Masks

REGIONS_FILE = Path(__file__).with_name("mesh_regions.json")
BROWS_AND_BELOW_FROM = ("left_eyebrow", "right_eyebrow")


@lru_cache(maxsize=1)
def regions() -> dict[str, list[int]]:
    """``{region name: landmark indices}``: face_oval, left/right_eye, left/right_eyebrow, lips, irises."""
    return json.loads(REGIONS_FILE.read_text())["regions"]


def crop_landmarks(crops: FaceCrops) -> np.ndarray:
    """Each crop's face landmarks in crop pixels: (N, 478, 2) float64."""
    if not len(crops):
        return np.zeros((0, 478, 2))
    from .align import invert_affine  # closed form: a LAPACK call would wake a spinning BLAS thread

    m = invert_affine(crops.frame_from_crop.detach().cpu().to(torch.float64)).numpy()
    pts = np.stack([f.landmarks[:, :2] for f in crops.faces]).astype(np.float64)
    return np.einsum("nij,nkj->nki", m[:, :, :2], pts) + m[:, None, :, 2]


def polygon_masks(points: np.ndarray, index_sets: list[list[int]], size: int) -> np.ndarray:
    """Union of the convex hulls of ``index_sets`` for each face: (N, size, size) uint8 0/1."""
    out = np.zeros((points.shape[0], size, size), np.uint8)
    for n, pts in enumerate(points):
        for idx in index_sets:
            hull = cv2.convexHull(np.round(pts[idx] * 16).astype(np.int32))
            cv2.fillConvexPoly(out[n], hull, 1, lineType=cv2.LINE_AA, shift=4)
    return out


def face_region_masks(crops: FaceCrops, mode: Literal["hull", "no_forehead"]) -> torch.Tensor:
    """Hard face masks (N, 1, S, S) in {0, 1} on the crops' device.

    ``hull``: the face oval, forehead included. ``no_forehead``: the face from the brows
    down (the oval's points above the brows are cut at the brow line).
    """
    pts = crop_landmarks(crops)
    oval = regions()["face_oval"]
    if mode == "no_forehead" and len(pts):
        brows = regions()["left_eyebrow"] + regions()["right_eyebrow"]
        top = pts[:, brows, 1].min(1)  # per face: the highest brow point (y grows down)
        clipped = pts.copy()
        clipped[:, oval, 1] = np.maximum(clipped[:, oval, 1], top[:, None])
        pts = clipped
    masks = polygon_masks(pts, [oval], crops.crop_size)
    return torch.from_numpy(masks).to(crops.crops.device, torch.float32)[:, None]


def square_morphology(masks: torch.Tensor, grow: int) -> torch.Tensor:
    """Dilate (``grow`` > 0) or erode (< 0) by a (2|grow| + 1)-pixel square.

    A square's max (min) is a row max of column maxes, so this is two 1-D max-pools; the
    image's outside never counts (as kornia's geodesic border). Equal to
    ``kornia.morphology.dilation/erosion`` with a square kernel (tested), at a few percent
    of its time: kornia shifts the image once per kernel cell (289 shifts for 8 px).
    """
    r = abs(grow)
    sign = 1.0 if grow > 0 else -1.0
    x = masks * sign
    x = torch.nn.functional.max_pool2d(x, (1, 2 * r + 1), stride=1, padding=(0, r))
    x = torch.nn.functional.max_pool2d(x, (2 * r + 1, 1), stride=1, padding=(r, 0))
    return x * sign


def grow_and_feather(masks: torch.Tensor, grow: int, feather: float) -> torch.Tensor:
    """Dilate (``grow`` > 0) or erode (< 0) by ``grow`` pixels, then blur with a Gaussian of
    sigma ``feather`` pixels (separable). masks: (N, 1, S, S) in [0, 1]."""
    if grow:
        masks = square_morphology(masks, grow)
    if feather > 0:
        k = 2 * int(3 * feather) + 1
        masks = kornia.filters.gaussian_blur2d(masks, (k, k), (feather, feather), border_type="constant")
    return masks.clamp(0, 1)


def box_masks(crops: FaceCrops) -> torch.Tensor:
    """The classic mask: the square each crop's model rendered (``crops.rendered_size``,
    central), (N, 1, S, S) in {0, 1}. Outside it a swapped crop holds the plate's pixels."""
    s, c = crops.crop_size, crops.rendered_size
    pad = (s - c) // 2
    m = torch.zeros(len(crops), 1, s, s, device=crops.crops.device)
    m[..., pad:pad + c, pad:pad + c] = 1.0
    return m


def rendered_fade(crops: FaceCrops, sigma: float) -> torch.Tensor:
    """1 well inside the rendered square, falling smoothly to exactly 0 at its edge and
    outside it: (N, 1, S, S) in [0, 1]. The square is shrunk by 3 ``sigma`` + 1 px and blurred
    with a Gaussian of ``sigma`` (whose kernel reaches 3 sigma), so the fade ends inside."""
    box = box_masks(crops)
    # a ring of zeros around the crop, so a square as large as the crop fades at its edge too
    # (erosion does not see past the image's border)
    padded = torch.nn.functional.pad(box, (1, 1, 1, 1))
    fade = grow_and_feather(padded, -max(1, math.ceil(3 * sigma)) - 1, sigma)[..., 1:-1, 1:-1]
    return fade * box


def clip_to_rendered(masks: torch.Tensor, crops: FaceCrops, sigma: float) -> torch.Tensor:
    """``masks`` (N, 1, S, S) limited to the rendered square with a soft edge inside it."""
    return masks * rendered_fade(crops, sigma)


def outside_share(hard: torch.Tensor, crops: FaceCrops) -> float:
    """The share of the wanted (hard) mask's area that lies outside the rendered square."""
    total = float(hard.sum())
    return float((hard * (1 - box_masks(crops))).sum()) / total if total > 0 else 0.0


def clipped_mask_advice(mode: str, grow: int, rendered: int, crop: int) -> str:
    """What to do about a mask clipped by the rendered square: a larger render than the
    model's own, when the crop has room for one, else (or as well) a smaller mask."""
    smaller = (f"shrink the mask (grow below {grow}" + (", or mode no_forehead" if mode != "no_forehead" else "")
               + ")")
    larger = next((r for r in (160, 192, 224, 256) if rendered < r <= crop), None)
    if larger is None:
        return f"The model renders the whole {crop} px crop already: {smaller}"
    return (f"To swap that part too, train the model to render a larger square than its {rendered} px (render "
            f"{larger} or more, up to {crop}), or {smaller}")


class FaceMaskParams(Params):
    mode: Literal["hull", "no_forehead", "box", "learned"] = Field(
        "no_forehead", description="hull: the face oval; no_forehead: from the brows down; box: the classic "
                                   "coverage square; learned: the model's mask (link Swap's masks to 'learned')")
    grow: int = Field(-4, ge=-64, le=64, description="pixels (crop space) to grow (+) or shrink (-) the mask")
    feather: float = Field(6.0, ge=0, le=64, description="Gaussian sigma of the soft edge, crop pixels")


class FaceMask(Node):
    """Masks of the face in each crop: a soft edge for blending.

    The region (the face oval from the landmarks, with or without forehead; the classic
    square; or the swap model's learned mask) is taken in crop space, shrunk or grown by
    ``grow`` pixels and feathered with a separable Gaussian. Whatever the mode, the mask
    then lives inside the square the model rendered (``crops.rendered_size``) and fades to
    0 inside its edge (over 3 x ``feather``/2 pixels): outside that square a crop holds the
    plate's pixels, so a mask reaching past it would paste a straight edge into the shot.
    When the wanted region reaches past the square (a jaw, a forehead) the node says so
    once and clips it; a model trained with a larger ``--render`` covers it.
    """

    schema = NodeSchema(inputs={"crops": Port(FaceCrops, "aligned crops with their faces"),
                                "learned": Port(Masks, "a model's masks (Swap's masks), for mode learned",
                                                required=False)},
                        outputs={"masks": Port(Masks, "(N, 1, S, S) in [0, 1]")},
                        params=FaceMaskParams, category="blend")

    params: FaceMaskParams

    def check(self, connected: set[str]) -> list[Issue]:
        if (self.params.mode == "learned") != ("learned" in connected):
            return [Issue("param 'mode'", "mode 'learned' needs the 'learned' input linked, and only it uses it",
                          "link Swap's masks to 'learned' with mode learned, or unlink it")]
        return []

    def open(self, ctx: RunContext) -> None:
        self.warned = False
        self.clipped = 0

    def process(self, crops: FaceCrops, learned: Masks | None = None) -> dict[str, Any]:
        p = self.params
        if p.mode == "learned":
            hard = learned.masks.to(crops.crops.device)
        elif p.mode == "box":
            hard = box_masks(crops)
        else:
            hard = face_region_masks(crops, p.mode)
        grown = grow_and_feather(hard, p.grow, 0)
        share = outside_share((grown > 0.5).float(), crops) if len(crops) else 0.0
        if share > 0.02:
            self.clipped = getattr(self, "clipped", 0) + len(crops)
            if not getattr(self, "warned", False):
                self.warned = True
                print(f"warning: node {self.id!r}: the {p.mode} mask reaches past the square the model rendered "
                      f"({share:.0%} of it lies outside the central {crops.rendered_size} px of the "
                      f"{crops.crop_size} px crop); it is clipped there. "
                      + clipped_mask_advice(p.mode, p.grow, crops.rendered_size, crops.crop_size), file=sys.stderr)
        soft = grow_and_feather(grown, 0, p.feather)
        return {"masks": Masks(clip_to_rendered(soft, crops, max(p.feather / 2, 2.0)), crops)}

    def stats(self) -> dict[str, Any]:
        return {"faces_clipped": getattr(self, "clipped", 0)}
