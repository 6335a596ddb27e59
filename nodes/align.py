"""Alignment: similarity transforms to the canonical face, crops, and pasting back.

Convention: matrices are named by the frames they map between. ``crop_from_frame``
takes frame pixel coordinates to crop pixel coordinates, ``frame_from_crop`` the other
way; both are (N, 2, 3) affines acting on (x, y, 1) with pixel centres at integer
coordinates (OpenCV's convention). They are float64 so that a crop pastes back to the
pixel.
"""

from __future__ import annotations

from typing import Any

import kornia
import torch
from pydantic import Field, model_validator

from swapgraph.runtime.node import Node, NodeSchema, Params, Port
from swapgraph.runtime.ports import Frames, check_shape

from .face.template import STABLE, template_array
from .geometry import fit_similarity
from .ports import FaceCrops, Faces, iter_faces
from .resample import resize_images


def invert_affine(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (N, 2, 3) affines."""
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c  # closed form: cheaper than a batched LAPACK call for 2x2 blocks
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[:, None, None]
    return torch.cat([inv, -inv @ m[:, :, 2:]], dim=2)


def template_points(crop: int, coverage: int) -> torch.Tensor:
    """Where the rigid template points sit in a crop: (K, 2) float64 crop pixels.

    The template's alignment box (brow ends across, brows to lower lip down) fills the
    central ``coverage`` pixels of a ``crop``-pixel square: the classic geometry.
    """
    pad = (crop - coverage) // 2
    t = torch.from_numpy(template_array(STABLE)[:, :2])
    # the box's edges fall on the edges of the coverage pixels, whose centres are integers
    return pad - 0.5 + t * coverage


def crop_from_frame_matrices(landmarks: torch.Tensor, crop: int, coverage: int) -> torch.Tensor:
    """(N, 2, 3) float64 ``crop_from_frame`` for faces' landmarks (N, 478, >=2) in frame pixels."""
    src = landmarks[:, list(STABLE), :2].to(torch.float64)
    return fit_similarity(src, template_points(crop, coverage))


def cut_crops(images: torch.Tensor, rows: torch.Tensor, crop_from_frame: torch.Tensor, size: int) -> torch.Tensor:
    """Aligned crops.

    images: RGB (B, 3, H, W), float in [0, 1] or uint8. rows: (N,) long, the image each
    crop comes from. crop_from_frame: (N, 2, 3). Returns (N, 3, size, size) float in
    [0, 1]; outside the frame the border pixels repeat, so a face at the frame edge has
    no black wedge.

    Only the window of the frame under each crop is gathered (with clamped indices, which
    is what repeats the border) and converted to float, and all crops are sampled in one
    ``grid_sample`` call, so the cost follows the crops, not the frame size.
    """
    check_shape(images, ["B", 3, "H", "W"], "images")
    h, w = images.shape[-2:]
    device = images.device
    crop_from_frame = crop_from_frame.to(torch.float64).cpu()
    frame_from_crop = invert_affine(crop_from_frame)
    corners = torch.tensor([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]],
                           dtype=torch.float64)
    xy = torch.einsum("kj,nij->nki", corners, frame_from_crop)  # (N, 4, 2) crop corners in the frame
    origin = xy.amin(1).floor() - 1  # (N, 2) window corners, whole pixels
    extent = (xy.amax(1).ceil() + 2 - origin).amax(0).long()  # one window size for all crops
    wx, wy = int(extent[0]), int(extent[1])
    xs = (origin[:, :1].long() + torch.arange(wx)).clamp_(0, w - 1).to(device)  # (N, wx)
    ys = (origin[:, 1:].long() + torch.arange(wy)).clamp_(0, h - 1).to(device)  # (N, wy)
    # gather rows then columns in (H, W, 3) order: whole rows of pixels at a time
    windows = torch.stack([images[r].permute(1, 2, 0).index_select(0, ys[i]).index_select(1, xs[i])
                           for i, r in enumerate(rows.tolist())]).permute(0, 3, 1, 2)  # (N, 3, wy, wx)
    windows = windows.float().mul_(1 / 255) if windows.dtype == torch.uint8 else windows.float()
    # grid_sample's theta: output-normalised -> input-normalised coordinates (align_corners)
    shift = torch.eye(3, dtype=torch.float64).repeat(len(rows), 1, 1)
    shift[:, :2, 2] = origin
    window_from_crop = torch.linalg.solve(shift, torch.cat([frame_from_crop, shift[:, 2:]], 1))
    norm_in = torch.tensor([[2 / (wx - 1), 0, -1], [0, 2 / (wy - 1), -1], [0, 0, 1]], dtype=torch.float64)
    denorm_out = torch.tensor([[(size - 1) / 2, 0, (size - 1) / 2], [0, (size - 1) / 2, (size - 1) / 2], [0, 0, 1]],
                              dtype=torch.float64)
    theta = (norm_in @ window_from_crop @ denorm_out)[:, :2]
    grid = torch.nn.functional.affine_grid(theta.to(device=device, dtype=windows.dtype), [len(rows), 3, size, size],
                                           align_corners=True)
    out = torch.nn.functional.grid_sample(windows, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(images.dtype) if images.is_floating_point() else out


def paste_crops(images: torch.Tensor, crops: torch.Tensor, rows: torch.Tensor, frame_from_crop: torch.Tensor,
                masks: torch.Tensor | None = None) -> torch.Tensor:
    """Paste crops back into their frames; the inverse of :func:`cut_crops`.

    images: (B, 3, H, W); crops: (N, 3, S, S); rows: (N,) long; frame_from_crop: (N, 2, 3);
    masks: (N, 1, S, S) in [0, 1], 1 = take the crop (default: the whole crop). Crops are
    pasted in order, so a later face covers an earlier one. Returns new (B, 3, H, W).

    Each crop is warped only onto the window of the frame it covers (the bounding box of
    its corners, one size for the batch), not onto the whole frame, so the cost follows
    the faces' size, not the plate's.
    """
    check_shape(crops, ["N", 3, "S", "S"], "crops")
    out = images.clone()
    if not len(rows):
        return out
    h, w = images.shape[-2:]
    s = crops.shape[-1]
    if masks is None:
        masks = torch.ones_like(crops[:, :1])
    fc = frame_from_crop.detach().to("cpu", torch.float64)
    corners = torch.tensor([[0, 0, 1], [s - 1, 0, 1], [0, s - 1, 1], [s - 1, s - 1, 1]], dtype=torch.float64)
    pts = corners @ fc.transpose(1, 2)  # (N, 4, 2) frame pixels
    # bilinear sampling reaches one crop pixel past the corners: that far in frame pixels
    reach = fc[:, :, :2].abs().sum(2).amax(1, keepdim=True).ceil() + 1
    lo = (pts.amin(1).floor() - reach).clamp_min(0)
    hi = pts.amax(1).ceil() + reach
    x0, y0 = lo[:, 0].long().clamp_max(w - 1), lo[:, 1].long().clamp_max(h - 1)
    ww = int((hi[:, 0].clamp_max(w - 1) - x0 + 1).clamp_min(1).max())
    wh = int((hi[:, 1].clamp_max(h - 1) - y0 + 1).clamp_min(1).max())
    window_from_crop = fc.clone()
    window_from_crop[:, 0, 2] -= x0
    window_from_crop[:, 1, 2] -= y0
    m = window_from_crop.to(crops)
    warped = kornia.geometry.transform.warp_affine(crops, m, (wh, ww), mode="bilinear", padding_mode="zeros",
                                                   align_corners=True)
    alpha = kornia.geometry.transform.warp_affine(masks.to(crops), m, (wh, ww), mode="bilinear",
                                                  padding_mode="zeros", align_corners=True)
    for i, r in enumerate(rows.tolist()):
        ya, xa = int(y0[i]), int(x0[i])
        yb, xb = min(h, ya + wh), min(w, xa + ww)
        a = alpha[i, :, :yb - ya, :xb - xa]
        region = out[r, :, ya:yb, xa:xb]
        out[r, :, ya:yb, xa:xb] = region * (1 - a) + warped[i, :, :yb - ya, :xb - xa] * a
    return out


def model_input(crops: torch.Tensor, coverage: int, size: int) -> torch.Tensor:
    """The model's view of crops: the central ``coverage`` pixels resized to ``size``.

    crops: (N, 3, S, S) in [0, 1]. Returns (N, 3, size, size).
    """
    s = crops.shape[-1]
    pad = (s - coverage) // 2
    centre = crops[..., pad:pad + coverage, pad:pad + coverage]
    return resize_images(centre, (size, size), "area" if size < coverage else "bicubic")


class AlignParams(Params):
    crop: int = Field(256, ge=16, le=4096, description="side of the aligned crop, in pixels")
    coverage: int = Field(160, ge=8, le=4096, description="central pixels of the crop that the model sees")
    size: int = Field(64, ge=8, le=1024, description="model input side: the coverage is resized to this")

    @model_validator(mode="after")
    def _fits(self) -> "AlignParams":
        if self.coverage > self.crop:
            raise ValueError(f"coverage {self.coverage} is larger than crop {self.crop}")
        return self


class Align(Node):
    """Cut an aligned crop of every face: a similarity transform to the canonical face.

    The rigid landmarks (eyes, brows, nose) are fitted by least squares (Umeyama) to the
    canonical template placed in the central ``coverage`` pixels of a ``crop``-pixel
    square: by default the classic geometry, a 256 px crop whose central 160 px are
    resized to the 64 px model input. ``frame_from_crop`` is kept exactly (float64), so
    crops paste back to the pixel.
    """

    schema = NodeSchema(inputs={"frames": Port(Frames, "the frames the faces are in"),
                                "faces": Port(Faces, "faces with landmarks")},
                        outputs={"crops": Port(FaceCrops, "aligned crops (N, 3, crop, crop)")},
                        params=AlignParams, category="align")

    params: AlignParams

    def process(self, frames: Frames, faces: Faces) -> dict[str, Any]:
        p = self.params
        picked = list(iter_faces(faces))
        device = frames.pixels.device
        if not picked:
            empty = torch.zeros(0, 3, p.crop, p.crop, device=device)
            return {"crops": FaceCrops(empty, torch.zeros(0, 2, 3, dtype=torch.float64), [], [], p.coverage, p.size,
                                       frames)}
        rows = torch.tensor([r for r, _, _ in picked])
        landmarks = torch.stack([torch.from_numpy(f.landmarks) for _, _, f in picked])
        crop_from_frame = crop_from_frame_matrices(landmarks, p.crop, p.coverage)
        crops = cut_crops(frames.pixels, rows, crop_from_frame, p.crop)
        return {"crops": FaceCrops(crops, invert_affine(crop_from_frame), rows.tolist(), [f for _, _, f in picked],
                                   p.coverage, p.size, frames)}
