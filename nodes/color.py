"""Colour correction of swapped faces against the plate's own face, measured on skin only.

The classic transfer matches the mean and deviation of the whole crop in Lab, which
tints the eyes, brows, lips and beard with the skin's shift. ``lab-stats`` and
``histogram`` measure and apply the transfer only on skin: the face oval less the mesh
regions of the eyes, brows and lips, so those keep their colour exactly.
"""

from __future__ import annotations

from typing import Any, Literal

import kornia
import torch
from pydantic import Field

from swapgraph.runtime.node import Node, NodeSchema, Params, Port
from swapgraph.runtime.ports import FaceCrops

from .mask import crop_landmarks, grow_and_feather, polygon_masks, regions

EXCLUDED = ("left_eye", "right_eye", "left_eyebrow", "right_eyebrow", "lips")


def skin_masks(crops: FaceCrops) -> tuple[torch.Tensor, torch.Tensor]:
    """(skin, excluded) masks (N, 1, S, S) in {0, 1}: the face oval less eyes, brows and lips,
    and those features themselves (grown by 3 px so their edges count as feature)."""
    pts = crop_landmarks(crops)
    r = regions()
    s = crops.crop_size
    oval = torch.from_numpy(polygon_masks(pts, [r["face_oval"]], s)).float()[:, None]
    feats = torch.from_numpy(polygon_masks(pts, [r[name] for name in EXCLUDED], s)).float()[:, None]
    feats = grow_and_feather(feats, 3, 0)
    device = crops.crops.device
    return (oval * (1 - feats)).to(device), feats.to(device)


def _masked_stats(lab: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = mask.expand_as(lab)
    n = w.sum((2, 3), keepdim=True).clamp_min(1)
    mean = (lab * w).sum((2, 3), keepdim=True) / n
    var = ((lab - mean) ** 2 * w).sum((2, 3), keepdim=True) / n
    return mean, var.sqrt().clamp_min(1e-3)


def transfer_lab_stats(src: torch.Tensor, ref: torch.Tensor, measure: torch.Tensor) -> torch.Tensor:
    """Lab crops ``src`` (N, 3, S, S) with the mean and deviation of Lab crops ``ref``, both
    measured where ``measure`` (N, 1, S, S) is 1. Returns the corrected Lab image."""
    ms, ss = _masked_stats(src, measure)
    mr, sr = _masked_stats(ref, measure)
    return (src - ms) / ss * sr + mr


def transfer_histogram(src: torch.Tensor, ref: torch.Tensor, measure: torch.Tensor, levels: int = 64) -> torch.Tensor:
    """Histogram matching per channel of Lab crops, quantiles measured where ``measure`` is 1."""
    out = src.clone()
    q = torch.linspace(0, 1, levels, device=src.device)
    for n in range(src.shape[0]):
        sel = measure[n, 0] > 0.5
        if sel.sum() < levels:
            continue
        for c in range(3):
            qs = torch.quantile(src[n, c][sel], q)
            qr = torch.quantile(ref[n, c][sel], q)
            flat = src[n, c].reshape(-1).contiguous()
            i = torch.searchsorted(qs.contiguous(), flat).clamp(1, levels - 1)
            lo, hi = qs[i - 1], qs[i]
            t = ((flat - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
            out[n, c] = (qr[i - 1] + t * (qr[i] - qr[i - 1])).reshape(src.shape[-2:])
    return out


def correct_colour(source: torch.Tensor, reference: torch.Tensor, crops: FaceCrops,
                   method: Literal["lab-stats", "histogram", "whole-crop", "none"], strength: float) -> torch.Tensor:
    """Colour-corrected ``source`` crops (N, 3, S, S) in [0, 1]; see the module docstring."""
    if method == "none" or strength == 0 or not len(crops):
        return source
    if method == "whole-crop":
        src_lab, ref_lab = kornia.color.rgb_to_lab(source), kornia.color.rgb_to_lab(reference)
        everywhere = torch.ones_like(source[:, :1])
        lab = transfer_lab_stats(src_lab, ref_lab, everywhere)
        out = kornia.color.lab_to_rgb(src_lab + (lab - src_lab) * strength).clamp(0, 1)
        return out
    skin, feats = skin_masks(crops)
    # fade in over the skin, and exactly nothing on eyes, brows and lips
    weight = grow_and_feather(skin, -2, 2.0) * (1 - feats)
    # only the box around the batch's skin is converted to Lab and back: outside it the
    # weight is 0 and the crops stay as they are (about half a crop's pixels are skipped)
    inside = ((skin + weight) > 0).any(0)[0]
    rows, cols = inside.any(1).nonzero(), inside.any(0).nonzero()
    if not len(rows):
        return source
    box = (..., slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    src_lab, ref_lab = kornia.color.rgb_to_lab(source[box]), kornia.color.rgb_to_lab(reference[box])
    fn = transfer_lab_stats if method == "lab-stats" else transfer_histogram
    lab = fn(src_lab, ref_lab, skin[box])
    w = weight[box]
    mixed = src_lab + (lab - src_lab) * (w * strength)
    out = source.clone()
    out[box] = torch.where(w > 0, kornia.color.lab_to_rgb(mixed).clamp(0, 1), source[box])
    return out  # untouched pixels stay bit-identical


class ColorCorrectParams(Params):
    method: Literal["lab-stats", "histogram", "whole-crop", "none"] = Field(
        "lab-stats", description="lab-stats: Lab mean/deviation on skin; histogram: masked histogram match; "
                                 "whole-crop: the classic transfer over the whole crop; none")
    strength: float = Field(1.0, ge=0, le=1, description="0 leaves the swap as it is, 1 applies the full transfer")


class ColorCorrect(Node):
    """Match the swapped face's colour to the plate's face, on skin only.

    ``crops`` are the swapped crops, ``reference`` the plate's crops of the same faces.
    ``lab-stats`` (default) transfers Lab mean and deviation measured and applied on skin
    (the face oval less the mesh regions of eyes, brows and lips, which keep their colour
    exactly); ``histogram`` matches histograms there; ``whole-crop`` is the classic
    whole-crop transfer, kept as a baseline.
    """

    schema = NodeSchema(inputs={"crops": Port(FaceCrops, "swapped crops"),
                                "reference": Port(FaceCrops, "the plate's crops of the same faces")},
                        outputs={"crops": Port(FaceCrops, "colour-corrected crops")},
                        params=ColorCorrectParams, category="color")

    params: ColorCorrectParams

    def process(self, crops: FaceCrops, reference: FaceCrops) -> dict[str, Any]:
        out = correct_colour(crops.crops, reference.crops.to(crops.crops.device), crops, self.params.method,
                             self.params.strength)
        from dataclasses import replace

        return {"crops": replace(crops, crops=out)}


def match_detail(source: torch.Tensor, reference: torch.Tensor, measure: torch.Tensor, sigmas=(1.0, 2.5),
                 max_gain: float = 6.0) -> torch.Tensor:
    """Raise the fine detail of ``source`` towards that of ``reference``, band by band.

    A model renders faces at 64-256 px that are then enlarged into a sharper plate; their
    high frequencies are weak. For each band (difference of Gaussians at ``sigmas``), the
    source's band is scaled so its energy on ``measure`` (N, 1, S, S) matches the
    reference's, by at most ``max_gain``; it never softens. Crops (N, 3, S, S) in [0, 1].
    """
    out = source
    n = measure.sum((1, 2, 3)).clamp_min(1)
    for sigma in sigmas:
        k = 2 * int(3 * sigma) + 1
        blur_s = kornia.filters.gaussian_blur2d(out, (k, k), (sigma, sigma))
        blur_r = kornia.filters.gaussian_blur2d(reference, (k, k), (sigma, sigma))
        hf_s, hf_r = out - blur_s, reference - blur_r
        e_s = (hf_s.pow(2) * measure).sum((1, 2, 3)) / n
        e_r = (hf_r.pow(2) * measure).sum((1, 2, 3)) / n
        gain = (e_r / e_s.clamp_min(1e-10)).sqrt().clamp(1.0, max_gain)[:, None, None, None]
        out = (blur_s + hf_s * gain).clamp(0, 1)
    return out


class MatchDetailParams(Params):
    strength: float = Field(1.0, ge=0, le=1, description="0 leaves the swap as it is, 1 matches the plate's detail")
    max_gain: float = Field(6.0, ge=1, le=32, description="the most a band of detail is amplified")


class MatchDetail(Node):
    """Bring the swapped face's fine detail up to the plate's, so it is not blurrier than
    its surroundings.

    Two bands of detail (differences of Gaussians) of each swapped crop are amplified until
    their energy on the skin matches the plate's crop of the same face (``reference``),
    never softened, at most ``max_gain`` times.
    """

    schema = NodeSchema(inputs={"crops": Port(FaceCrops, "swapped crops"),
                                "reference": Port(FaceCrops, "the plate's crops of the same faces")},
                        outputs={"crops": Port(FaceCrops, "crops with the plate's level of detail")},
                        params=MatchDetailParams, category="color")

    params: MatchDetailParams

    def process(self, crops: FaceCrops, reference: FaceCrops) -> dict[str, Any]:
        from dataclasses import replace

        if not len(crops) or self.params.strength == 0:
            return {"crops": crops}
        from .mask import box_masks

        # the model rendered only the central coverage: measure and change detail there
        rendered = box_masks(crops)
        skin, _ = skin_masks(crops)
        ref = reference.crops.to(crops.crops.device)
        sharp = match_detail(crops.crops, ref, skin * rendered, max_gain=self.params.max_gain)
        out = crops.crops + (sharp - crops.crops) * (rendered * self.params.strength)
        return {"crops": replace(crops, crops=out)}
