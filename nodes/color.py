"""Colour correction of swapped faces against the plate's own face, inside the pixels the
model rendered.

The classic transfer matches the mean and deviation of the whole crop in Lab, which
tints the eyes, brows, lips and beard with the skin's shift. ``lab-stats`` and
``histogram`` measure the skin's transfer on skin only (the face oval less the mesh
regions of the eyes, brows and lips) and apply it to everything the model rendered; then
each feature group (eyes, brows, lips) has its colour (Lab a, b) moved to the mean colour
of the plate's same feature: the features keep the skin's lightness transfer but neither
the model's raw colour nor the skin's tint, and the soft offset leaves no edge at their
outline. Every correction changes only the square the model rendered
(``FaceCrops.rendered_size``); the plate's pixels around it are never touched.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import kornia
import torch
from pydantic import Field

from swapgraph.runtime.node import Node, NodeSchema, Params, Port

from .mask import crop_landmarks, grow_and_feather, polygon_masks, regions, rendered_fade
from .ports import FaceCrops

EXCLUDED = ("left_eye", "right_eye", "left_eyebrow", "right_eyebrow", "lips")
FEATURES = {"eyes": ("left_eye", "right_eye"), "brows": ("left_eyebrow", "right_eyebrow"), "lips": ("lips",)}
MIN_FEATURE_PIXELS = 24  # fewer (a closed eye, a profile) and the feature follows the skin's transfer


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


def feature_masks(crops: FaceCrops) -> dict[str, torch.Tensor]:
    """``{group: (N, 1, S, S) in {0, 1}}`` for the groups of ``FEATURES`` (eyes, brows, lips)."""
    pts = crop_landmarks(crops)
    r = regions()
    return {g: torch.from_numpy(polygon_masks(pts, [r[n] for n in names], crops.crop_size)).float()[:, None]
            .to(crops.crops.device) for g, names in FEATURES.items()}


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


def feature_presence(model: torch.Tensor, plate: torch.Tensor, skin: torch.Tensor) -> torch.Tensor:
    """How far the model rendered a feature, in [0, 1], shape (N, 1, 1, 1): the distance of
    the model's mean Lab colour of the feature from the plate's skin, over the plate's own
    feature's distance from it (its contrast), ramped: none below a quarter of it (the
    model's shading of skin), whole above three quarters. All (N, 3, 1, 1) Lab means; the
    model's after the skin's transfer."""
    ours = (model - skin).norm(dim=1, keepdim=True)
    theirs = (plate - skin).norm(dim=1, keepdim=True).clamp_min(2.0)
    return ((ours / theirs - 0.25) / 0.5).clamp(0, 1)


def _rendered_box(crops: FaceCrops) -> tuple[Any, ...]:
    """Index of the square the model rendered, for (..., S, S) tensors."""
    pad = (crops.crop_size - crops.rendered_size) // 2
    return (..., slice(pad, pad + crops.rendered_size), slice(pad, pad + crops.rendered_size))


def correct_colour(source: torch.Tensor, reference: torch.Tensor, crops: FaceCrops,
                   method: Literal["lab-stats", "histogram", "whole-crop", "none"], strength: float) -> torch.Tensor:
    """Colour-corrected ``source`` crops (N, 3, S, S) in [0, 1]; see the module docstring.

    ``reference``: the plate's crops of the same faces. Only the rendered square changes;
    pixels outside it stay bit-identical.
    """
    if method == "none" or strength == 0 or not len(crops):
        return source
    box = _rendered_box(crops)
    src_lab, ref_lab = kornia.color.rgb_to_lab(source[box]), kornia.color.rgb_to_lab(reference[box])
    if method == "whole-crop":  # the classic: one transfer measured over everything the model rendered
        lab = transfer_lab_stats(src_lab, ref_lab, torch.ones_like(src_lab[:, :1]))
    else:
        skin, _ = skin_masks(crops)
        skin = skin[box]
        fn = transfer_lab_stats if method == "lab-stats" else transfer_histogram
        lab_skin = fn(src_lab, ref_lab, skin)
        # each feature's colour (a, b) is moved towards the plate's same feature's mean colour,
        # on top of the skin's transfer (which sets its lightness): the feature neither keeps
        # the model's raw colour nor takes the skin's tint. Only as far as the model rendered
        # the feature: a young model's eyes that are still skin must not get the plate's eye
        # colour painted on as a patch. An offset, softly weighted: no edge at the outline.
        lab = lab_skin.clone()
        skin_ref, _ = _masked_stats(ref_lab, skin)
        for mask in feature_masks(crops).values():
            hard = mask[box]
            enough = (hard.sum((1, 2, 3)) >= MIN_FEATURE_PIXELS)[:, None, None, None]
            model_f, _ = _masked_stats(lab_skin, hard)
            plate_f, _ = _masked_stats(ref_lab, hard)
            rendered = feature_presence(model_f, plate_f, skin_ref)
            w = grow_and_feather(hard, 2, 1.0) * (enough * rendered)
            lab[:, 1:] = lab[:, 1:] + w * (plate_f[:, 1:] - model_f[:, 1:])
    out = source.clone()
    out[box] = kornia.color.lab_to_rgb(src_lab + (lab - src_lab) * strength).clamp(0, 1)
    return out


class ColorCorrectParams(Params):
    method: Literal["lab-stats", "histogram", "whole-crop", "none"] = Field(
        "lab-stats", description="lab-stats: Lab mean/deviation on skin, eyes, brows and lips each their own; "
                                 "histogram: the skin's histograms instead; whole-crop: the classic transfer over "
                                 "everything the model rendered; none")
    strength: float = Field(1.0, ge=0, le=1, description="0 leaves the swap as it is, 1 applies the full transfer")


class ColorCorrect(Node):
    """Match the swapped face's colour to the plate's face, inside the square the model rendered.

    ``crops`` are the swapped crops, ``reference`` the plate's crops of the same faces.
    ``lab-stats`` (default) transfers Lab mean and deviation measured on skin (the face
    oval less eyes, brows and lips) to the whole rendered square, and gives eyes, brows and
    lips each the transfer measured between the model's and the plate's same feature, so
    they are neither left in the model's raw colours nor tinted with the skin's shift;
    ``histogram`` matches the skin's histograms instead; ``whole-crop`` is the classic
    transfer over everything rendered, kept as a baseline. Pixels outside the rendered
    square (the plate's own) are never changed.
    """

    schema = NodeSchema(inputs={"crops": Port(FaceCrops, "swapped crops"),
                                "reference": Port(FaceCrops, "the plate's crops of the same faces")},
                        outputs={"crops": Port(FaceCrops, "colour-corrected crops")},
                        params=ColorCorrectParams, category="color")

    params: ColorCorrectParams

    def process(self, crops: FaceCrops, reference: FaceCrops) -> dict[str, Any]:
        out = correct_colour(crops.crops, reference.crops.to(crops.crops.device), crops, self.params.method,
                             self.params.strength)
        return {"crops": replace(crops, crops=out)}


def match_detail(source: torch.Tensor, reference: torch.Tensor, measure: torch.Tensor, sigmas=(1.0, 2.5),
                 max_gain: float = 3.0) -> torch.Tensor:
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
    max_gain: float = Field(3.0, ge=1, le=32, description="the most a band of detail is amplified (a young "
                                                            "model's upscaling grid grows with it)")


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
        if not len(crops) or self.params.strength == 0:
            return {"crops": crops}
        # the model rendered only the central square: measure and change detail there, fading
        # to nothing before its edge, where the blur would see the plate's pixels beyond it
        fade = rendered_fade(crops, 3.0)
        skin, _ = skin_masks(crops)
        ref = reference.crops.to(crops.crops.device)
        sharp = match_detail(crops.crops, ref, skin * (fade >= 1 - 1e-6), max_gain=self.params.max_gain)
        out = crops.crops + (sharp - crops.crops) * (fade * self.params.strength)
        return {"crops": replace(crops, crops=out)}
