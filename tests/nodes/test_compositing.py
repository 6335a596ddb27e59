"""Compositing without seams: every mask mode, colour method and blend mode, with an identity
model, gives back the plate; a model's face changes only the square it rendered, with no edge
(the QC ``edges`` measure) anywhere."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from swapgraph.nodes.align import paste_crops
from swapgraph.nodes.blend import MaskBlend, MaskBlendParams
from swapgraph.nodes.color import ColorCorrect, ColorCorrectParams, MatchDetail, MatchDetailParams
from swapgraph.nodes.mask import (FaceMask, FaceMaskParams, box_masks, clipped_mask_advice, face_region_masks,
                                   grow_and_feather)
from swapgraph.nodes.report import edges_measure
from swapgraph.nodes.swap import swap_crops
from swapgraph.runtime.images import frames_to_rgb8
from swapgraph.nodes.ports import FaceCrops, Masks
from swapgraph.runtime.ports import Frames

from helpers import aligned_crops, find_face, packaged_photo

CPU = torch.device("cpu")
MODES = ["hull", "no_forehead", "box", "learned"]
COLOURS = ["lab-stats", "histogram", "whole-crop", "none"]


class IdentityModel(torch.nn.Module):
    """The decoder returns its input, at the resolution of the square it renders: nothing is
    resampled, so the swap gives back the plate's crop."""

    def __init__(self, render: int, change=None) -> None:
        super().__init__()
        self.preset = SimpleNamespace(size=render)
        self.change = change

    def forward(self, x, identity):
        y = x if self.change is None else self.change(x)
        return torch.cat([y, torch.ones_like(y[:, :1])], 1)  # a learned mask: the whole square


@pytest.fixture(scope="module")
def plate() -> tuple[Frames, FaceCrops]:
    image = packaged_photo("grace_hopper")
    return aligned_crops(image, find_face(image))


def composite(frames: Frames, crops: FaceCrops, model: IdentityModel, mode: str, colour: str, blend: str,
              feather: float = 14.0) -> torch.Tensor:
    """swap.json's conversion nodes on one frame: Swap, ColorCorrect, MatchDetail, FaceMask, MaskBlend."""
    out, learned = swap_crops(model, crops.crops, model.preset.size, "b")
    swapped = replace(crops, crops=out, rendered=model.preset.size)
    colour_node = ColorCorrect("color", ColorCorrectParams(method=colour), CPU)
    corrected = colour_node.process(crops=swapped, reference=crops)["crops"]
    detailed = MatchDetail("detail", MatchDetailParams(), CPU).process(crops=corrected, reference=crops)["crops"]
    mask_node = FaceMask("mask", FaceMaskParams(mode=mode, grow=-8, feather=feather), CPU)
    masks = mask_node.process(detailed, Masks(learned, swapped) if mode == "learned" else None)["masks"]
    return MaskBlend("blend", MaskBlendParams(mode=blend), CPU).process(frames, detailed, masks)["frames"].data


def rendered_footprint(crops: FaceCrops, render: int, shape: tuple[int, int]) -> torch.Tensor:
    """Frame pixels under the rendered square (bilinear reach included): (H, W) bool."""
    square = box_masks(replace(crops, rendered=render))
    blank = torch.zeros(1, 3, *shape)
    pasted = paste_crops(blank, torch.ones_like(crops.crops), torch.tensor([0]), crops.frame_from_crop, square)
    return pasted[0, 0] > 0


@pytest.mark.parametrize("blend", ["feather", "seamless"])
@pytest.mark.parametrize("mode", MODES)
def test_an_identity_model_gives_back_the_plate(plate, mode, blend):
    frames, crops = plate
    src = frames_to_rgb8(frames.data)[0]
    box = crops.faces[0].box
    # every colour method on a model that renders most of the crop; the tightest square once
    for render, colour in [(224, c) for c in COLOURS] + [(160, "lab-stats")]:
        got = frames_to_rgb8(composite(frames, crops, IdentityModel(render), mode, colour, blend))[0]
        diff = np.abs(got.astype(int) - src.astype(int)).max(2)
        where = f"{mode}/{colour}/{blend}/render {render}"
        # the paste resamples the crop once more; nothing else may differ
        assert diff.mean() < 0.6 and np.percentile(diff, 99.9) <= 24, where
        assert edges_measure(got, src, box) < 0.3, where  # no edge anywhere: "invisible"


def tinted(x: torch.Tensor) -> torch.Tensor:
    """A model face that is clearly not the plate's: warmer and softer."""
    import kornia

    warm = x * torch.tensor([1.25, 0.95, 0.75])[None, :, None, None]
    return kornia.filters.gaussian_blur2d(warm.clamp(0, 1), (7, 7), (1.5, 1.5))


@pytest.mark.parametrize("mode", MODES)
def test_a_different_face_changes_only_the_rendered_square_without_an_edge(plate, mode):
    frames, crops = plate
    src = frames_to_rgb8(frames.data)[0]
    render = 160  # the tightest square: the hull and no_forehead masks reach past it, and are clipped
    footprint = rendered_footprint(crops, render, src.shape[:2]).numpy()
    for colour in ("none", "lab-stats"):
        got = frames_to_rgb8(composite(frames, crops, IdentityModel(render, tinted), mode, colour, "feather"))[0]
        changed = np.abs(got.astype(int) - src.astype(int)).max(2) > 2
        assert changed.sum() > 2000, colour  # the face did change
        assert not (changed & ~footprint).any(), colour  # and nothing outside the model's square did
    # corrected, the warmer, softer face sits in the plate with no edge a viewer would see
    assert edges_measure(got, src, crops.faces[0].box) < 0.3


def test_the_unclipped_mask_of_before_left_an_edge_the_measure_sees(plate):
    """Negative control: the old compositing (a face mask reaching past the rendered square,
    the crop holding the plate's pixels there) puts a straight edge along the square."""
    frames, crops = plate
    src = frames_to_rgb8(frames.data)[0]
    out, _ = swap_crops(IdentityModel(160, tinted), crops.crops, 160, "b")
    old_mask = grow_and_feather(face_region_masks(crops, "no_forehead"), -8, 14)
    old = paste_crops(frames.data, out, torch.tensor([0]), crops.frame_from_crop, old_mask)
    new = composite(frames, crops, IdentityModel(160, tinted), "no_forehead", "none", "feather")
    e_old = edges_measure(frames_to_rgb8(old)[0], src, crops.faces[0].box)
    e_new = edges_measure(frames_to_rgb8(new)[0], src, crops.faces[0].box)
    assert e_old > 2.0 and e_new < 0.5 * e_old  # uncorrected, the new one is soft but still visible


def test_the_mask_says_once_that_it_was_clipped(plate, capsys):
    frames, crops = plate
    swapped = replace(crops, rendered=160)
    node = FaceMask("mask", FaceMaskParams(mode="hull"), CPU)
    node.open(None)
    for _ in range(3):
        masks = node.process(swapped)["masks"].masks
    err = capsys.readouterr().err
    assert err.count("warning: node 'mask'") == 1 and "render a larger square than its 160 px (render 192" in err
    assert node.stats()["faces_clipped"] == 3
    # advice that names a render larger than the model's own, or the mask to shrink
    assert "render 256" in clipped_mask_advice("hull", 0, 224, 256)
    assert "render" not in clipped_mask_advice("hull", 4, 256, 256).split(":")[1]
    assert "shrink the mask (grow below 4, or mode no_forehead)" in clipped_mask_advice("hull", 4, 256, 256)
    assert float(masks[~box_masks(swapped).bool()].max()) == 0.0  # nothing outside the square
    wide = replace(crops, rendered=256)
    grown = FaceMask("mask", FaceMaskParams(mode="hull", grow=30, feather=4), CPU)
    masks = grown.process(wide)["masks"].masks
    assert grown.stats()["faces_clipped"] == 0  # the whole crop rendered: nothing to clip
    assert float(masks[..., 0, :].max()) == 0.0 and float(masks[..., 128, :].max()) > 0.999  # the crop's edge fades
