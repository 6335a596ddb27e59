"""Conversion nodes: Swap, FaceMask, ColorCorrect, MaskBlend, and graphs/swap.json."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from swapgraph.nodes import swap as swap_module
from swapgraph.nodes.color import correct_colour, skin_masks
from swapgraph.nodes.mask import crop_landmarks, polygon_masks, regions, square_morphology
from swapgraph.nodes.swap import Swap, SwapParams, held_bucket, nearest_bucket
from swapgraph.nodes.swap_model import ModelInfo, SwapModel, save_model
from swapgraph.nodes.ports import BUCKETS, Face, FaceCrops
from swapgraph.runtime.ports import Frames, VideoInfo

from helpers import GRAPHS, aligned_crops, animate_photo, decode_all, find_face, packaged_photo, stream_facts, write_clip


@pytest.fixture(scope="module")
def grace_crops() -> FaceCrops:
    """Aligned 256 px crops of grace_hopper.jpg (one face), with their frame."""
    image = packaged_photo("grace_hopper")
    return aligned_crops(image, find_face(image))[1]


class TestMatchDetail:
    def test_restores_lost_detail_inside_the_coverage_only(self, grace_crops):
        import kornia

        from swapgraph.nodes.color import MatchDetail, MatchDetailParams
        from swapgraph.nodes.mask import box_masks

        blurred = kornia.filters.gaussian_blur2d(grace_crops.crops, (9, 9), (1.5, 1.5))
        soft = FaceCrops(blurred, grace_crops.frame_from_crop, grace_crops.row, grace_crops.faces, 160, 64,
                         grace_crops.frames)
        node = MatchDetail("detail", MatchDetailParams(), torch.device("cpu"))
        out = node.process(crops=soft, reference=grace_crops)["crops"].crops
        inside = box_masks(soft).bool().expand(-1, 3, -1, -1)
        assert torch.equal(out[~inside], blurred[~inside])  # the model never rendered outside the coverage

        def detail(x):  # high-frequency energy in the coverage
            return float(((x - kornia.filters.gaussian_blur2d(x, (7, 7), (1.0, 1.0))) ** 2)[inside].mean())

        assert detail(blurred) < 0.5 * detail(grace_crops.crops)
        assert detail(out) > 2 * detail(blurred)  # most of the lost detail is back
        # and never more than the plate has: the gain stops at the reference's energy
        assert detail(out) < 1.2 * detail(grace_crops.crops)


class TestColorCorrect:
    @staticmethod
    def region(crops, names):
        pts = crop_landmarks(crops)
        r = regions()
        return torch.from_numpy(polygon_masks(pts, [r[n] for n in names], 256)).bool()[:, None].expand(-1, 3, -1, -1)

    @staticmethod
    def delta_e(a, b, where, channels=slice(0, 3)):
        """CIE76 distance of the mean Lab colours of ``a`` and ``b`` where ``where`` is set;
        ``channels=slice(1, 3)``: of the colour alone (a, b), without lightness."""
        import kornia

        la, lb = kornia.color.rgb_to_lab(a)[:, channels], kornia.color.rgb_to_lab(b)[:, channels]
        sel = where[:, 0]
        return float((la.permute(1, 0, 2, 3)[:, sel].mean(1) - lb.permute(1, 0, 2, 3)[:, sel].mean(1)).norm())

    def test_the_skins_shift_does_not_tint_eyes_brows_and_lips(self, grace_crops):
        # the model's skin is warmer than the plate's; its eyes, brows and lips are the plate's own
        plate = grace_crops.crops
        skin, _ = skin_masks(grace_crops)
        warm = (plate * (1 + skin * (torch.tensor([1.15, 0.9, 0.75])[None, :, None, None] - 1))).clamp(0, 1)
        ours = correct_colour(warm, plate, grace_crops, "lab-stats", 1.0)
        classic = correct_colour(warm, plate, grace_crops, "whole-crop", 1.0)
        from swapgraph.nodes.mask import box_masks

        on_skin = (skin * box_masks(grace_crops)).bool().expand(-1, 3, -1, -1)  # what the model rendered
        assert self.delta_e(ours, plate, on_skin) < 0.25 * self.delta_e(warm, plate, on_skin)  # skin corrected
        for names in (("left_eye", "right_eye"), ("left_eyebrow", "right_eyebrow"), ("lips",)):
            # the feature less its outline pixel, where skin and feature blend
            feature = square_morphology(self.region(grace_crops, names).float(), -1).bool()
            colour = slice(1, 3)  # the tint; lightness follows the skin's transfer, as the light does
            ours_off, classic_off = (self.delta_e(x, plate, feature, colour) for x in (ours, classic))
            assert ours_off < 3.0 and classic_off > 6.0, names  # the classic transfer tints them, ours not
            assert ours_off < 0.4 * classic_off, names

    def test_features_in_the_models_own_wrong_colours_take_the_plates(self, grace_crops):
        # a young model's lips come out as a saturated red bar and its eyes too blue
        plate = grace_crops.crops
        lips, eyes = self.region(grace_crops, ("lips",)), self.region(grace_crops, ("left_eye", "right_eye"))
        model = plate.clone()
        model[lips] = torch.tensor([0.85, 0.1, 0.15])[None, :, None, None].expand_as(plate)[lips]
        model[eyes] = (plate * torch.tensor([0.7, 0.8, 1.3])[None, :, None, None]).clamp(0, 1)[eyes]
        ours = correct_colour(model, plate, grace_crops, "lab-stats", 1.0)
        for feature in (lips, eyes):
            before = self.delta_e(model, plate, feature, slice(1, 3))
            assert before > 8 and self.delta_e(ours, plate, feature, slice(1, 3)) < 0.25 * before
        # the colour moves, the model's own shading stays (lightness follows the skin's transfer),
        # and the soft offset adds no edge of its own at the outline: the step across it shrinks
        def step(x):
            return (x[..., 1:, :] - x[..., :-1, :]).abs().amax(1)

        lip = self.region(grace_crops, ("lips",))[:, 0]
        ring = lip[:, 1:] ^ lip[:, :-1]  # vertical steps across the lips' outline
        assert float(step(ours)[ring].mean()) < 0.8 * float(step(model)[ring].mean())

    def test_features_a_young_model_has_not_rendered_get_no_patch_of_the_plates_colour(self, grace_crops):
        # a young model renders skin where the plate has lips: the plate's lip colour must not
        # be painted onto it as a patch
        plate = grace_crops.crops
        skin, _ = skin_masks(grace_crops)
        lips = self.region(grace_crops, ("lips",))
        skin_colour = (plate * skin).sum((2, 3), keepdim=True) / skin.sum()
        model = torch.where(lips, skin_colour.expand_as(plate), plate)
        ours = correct_colour(model, plate, grace_crops, "lab-stats", 1.0)
        # the lips keep the colour the model rendered them in, not the plate's lip colour
        colour = slice(1, 3)
        painted = self.delta_e(plate, model, lips, colour)
        assert painted > 8 and self.delta_e(ours, model, lips, colour) < 0.25 * painted

    @pytest.mark.parametrize("method", ["lab-stats", "histogram", "whole-crop"])
    def test_nothing_outside_the_rendered_square_changes(self, grace_crops, method):
        from swapgraph.nodes.mask import box_masks

        tinted = (grace_crops.crops * torch.tensor([1.0, 0.8, 0.7])[None, :, None, None]).clamp(0, 1)
        for rendered in (160, 224):
            crops = FaceCrops(grace_crops.crops, grace_crops.frame_from_crop, [0], grace_crops.faces, 160, 64,
                              grace_crops.frames, rendered)
            out = correct_colour(crops.crops, tinted, crops, method, 1.0)
            inside = box_masks(crops).bool().expand(-1, 3, -1, -1)
            assert torch.equal(out[~inside], crops.crops[~inside])
            assert (out[inside] - crops.crops[inside]).abs().mean() > 0.02

    def test_histogram_and_none(self, grace_crops):
        tinted = (grace_crops.crops * 0.8).clamp(0, 1)
        hist = correct_colour(grace_crops.crops, tinted, grace_crops, "histogram", 1.0)
        assert hist.shape == grace_crops.crops.shape and not torch.equal(hist, grace_crops.crops)
        same = correct_colour(grace_crops.crops, tinted, grace_crops, "none", 1.0)
        assert torch.equal(same, grace_crops.crops)


class TestMaskBlend:
    def test_a_dot_in_a_crop_lands_where_frame_from_crop_says(self, cli, grace_crops):
        from swapgraph.nodes.blend import MaskBlend, MaskBlendParams
        from swapgraph.nodes.ports import Masks

        crops = grace_crops.crops.clone()
        crops[0, :, 100, 140] = torch.tensor([0.0, 1.0, 0.0])  # a green pixel at crop (140, 100)
        masks = torch.zeros(1, 1, 256, 256)
        masks[..., 90:111, 130:151] = 1.0
        node = MaskBlend("blend", MaskBlendParams(), torch.device("cpu"))
        fc = FaceCrops(crops, grace_crops.frame_from_crop, [0], grace_crops.faces, 160, 64, grace_crops.frames)
        out = node.process(grace_crops.frames, fc, Masks(masks, fc))["frames"].data
        green = out[0, 1] - out[0, 0]
        y, x = np.unravel_index(int(green.argmax()), green.shape)
        want = grace_crops.frame_from_crop[0].numpy() @ np.array([140.0, 100.0, 1.0])
        assert abs(x - want[0]) <= 1 and abs(y - want[1]) <= 1
        outside = torch.ones_like(out[0, 0], dtype=torch.bool)
        outside[int(want[1]) - 40:int(want[1]) + 40, int(want[0]) - 40:int(want[0]) + 40] = False
        assert torch.equal(out[0][:, outside], grace_crops.frames.data[0][:, outside])


class TestSwapNode:
    def test_nearest_bucket(self):
        assert nearest_bucket("side", ["frontal", "three_quarter"]) == "three_quarter"
        assert nearest_bucket("three_quarter", ["frontal", "side"]) == "frontal"

    @staticmethod
    def bank(tmp_path):
        for bucket in ("frontal", "three_quarter"):
            save_model(tmp_path / "bank" / bucket, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64,
                                                                                    bucket=bucket))
        return tmp_path / "bank"

    def test_model_choice_is_held_across_frames(self, tmp_path):
        node = Swap("swap", SwapParams(model=self.bank(tmp_path), hold=3), torch.device("cpu"))
        node.open(None)
        f, q = "frontal", "three_quarter"
        # settled frontal; flickers of 1 and 2 frames; a turn that lasts; a flicker back
        seq = [f, f, f, f, q, q, f, f, f, f, q, q, q, f, q, q, q, q]
        used = [node._model_bucket(0, b, n) for n, b in enumerate(seq)]
        assert used == [f] * 12 + [q] * 6  # q took over once it had lasted 3 frames, and held
        assert node._model_bucket(1, "side", 0) == "three_quarter"  # no side model: the nearest

    def test_held_bucket_rule(self):
        f, q, s = "frontal", "three_quarter", "side"
        assert held_bucket([f, f, f, q, q], 3) == f  # the latest run of hold frames
        assert held_bucket([f, f, f, q, q, q], 3) == q
        assert held_bucket([q, q, q, f, s, f], 3) == q  # flickers after it do not count
        assert held_bucket([f, q, f, q, q], 3) == q  # no run that long: the most common
        assert held_bucket([f, q, q, f], 3) == f  # ... ties: the first seen in the window
        assert held_bucket([q, f, f, q], 3) == q
        assert held_bucket([f, q], 3) == f  # a track's second frame does not switch
        assert held_bucket([f, q, f, f, q, q], 3) == f  # nor an even mix of flickers
        assert Swap.preroll(SwapParams(model="m")) == 9 and Swap.preroll(SwapParams(model="m", hold=1)) == 1

    def test_model_choice_is_exact_after_the_preroll(self, tmp_path, monkeypatch):
        hold = 4
        node_params = SwapParams(model=self.bank(tmp_path), hold=hold)
        preroll = Swap.preroll(node_params)
        assert preroll == 2 * hold - 1
        rng = np.random.default_rng(5)
        wanted: dict[int, dict[int, str]] = {0: {}, 1: {}}  # track -> frame -> bucket
        for track in wanted:
            n = 0
            while n < 120:  # runs of 1 to 9 frames of a random bucket: flickers and settled stretches
                length, bucket = int(rng.integers(1, 10)), BUCKETS[int(rng.integers(0, 3))]
                for m in range(n, min(120, n + length)):
                    if track == 0 or not 50 <= m <= 57:  # track 1 misses 8 frames
                        wanted[track][m] = bucket
                n += length
        models = {}

        def fake_swap(model, crops, coverage, identity):  # a crop filled with its model's bucket number
            return torch.full_like(crops, float(BUCKETS.index(models[id(model)]))), torch.ones_like(crops[:, :1])

        monkeypatch.setattr(swap_module, "swap_crops", fake_swap)

        def run(start: int, size: int, renumber: int) -> dict[tuple[int, int], str]:
            node = Swap("swap", node_params, torch.device("cpu"))
            node.open(None)
            models.update({id(m): b for b, (m, _) in node.models.items()})
            picked = {}
            for first in range(start, 120, size):
                numbers = list(range(first, min(120, first + size)))
                rows, faces = [], []
                for r, n in enumerate(numbers):
                    for track in wanted:
                        if n in wanted[track]:
                            rows.append(r)
                            faces.append(Face(track + renumber, (0, 0, 8, 8), 1.0, np.zeros((478, 3), np.float32),
                                              bucket=wanted[track][n]))
                frames = Frames(torch.zeros(len(numbers), 3, 8, 8), numbers, numbers, [1] * len(numbers),
                                VideoInfo(8, 8, 25, 1))
                crops = FaceCrops(torch.zeros(len(rows), 3, 8, 8), torch.zeros(len(rows), 2, 3), rows, faces, 160,
                                  64, frames)
                out = node.process(crops)["crops"]
                for i, (r, face) in enumerate(zip(out.row, out.faces)):
                    picked[(numbers[r], face.track - renumber)] = BUCKETS[int(out.crops[i, 0, 0, 0])]
            return picked

        whole = run(0, 8, 0)
        assert set(whole.values()) == {"frontal", "three_quarter"}  # side faces use the nearest model
        changes = sum(whole[(n, 0)] != whole[(n + 1, 0)] for n in range(119))
        flips = sum(wanted[0][n] != wanted[0][n + 1] for n in range(119))
        assert 0 < changes < flips / 2  # held: far fewer model changes than bucket changes
        for start, size in ((1, 1), (20, 5), (45, 16), (71, 3), (100, 32)):
            part = run(start, size, 10)
            assert {k: v for k, v in part.items() if k[0] >= start + preroll} == \
                {k: v for k, v in whole.items() if k[0] >= start + preroll}


class IdentityModel(torch.nn.Module):
    """A 'decoder that returns its input', at the crops' coverage so nothing is resampled."""

    preset = SimpleNamespace(size=160)

    def forward(self, x, identity):
        return x


def run_swap(cli, clip, model, out, *sets):
    return cli("run", GRAPHS / "swap.json", "--set", f"plate.path={clip}", "--set", f"swap.model={model}",
               "--set", f"out.path={out}", "--set", "faces.workers=1", "--quiet", *sets)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("shot") / "shot.mp4",
                      animate_photo(packaged_photo("grace_hopper"), 16, size=(320, 320)))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "m"
    save_model(folder, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
    return folder


def test_identity_model_leaves_the_frame_unchanged(cli, shot, model_dir, tmp_path, monkeypatch):
    from swapgraph.nodes.swap_model import load_model as real_load
    monkeypatch.setattr(swap_module, "load_model_cached", lambda path, device: (IdentityModel(), real_load(path, device)[1]))
    out = tmp_path / "same.mkv"
    r = run_swap(cli, shot, model_dir, out, "--set", "out.codec=ffv1")
    assert r.code == 0, r.err
    src, _ = decode_all(shot)
    got, _ = decode_all(out)
    diff = np.abs(got.astype(int) - src.astype(int)).max(axis=3)
    changed = diff > 0
    # only the face region may differ (the paste resamples twice), and only a little
    assert changed.mean() < 0.15
    assert diff[changed].mean() < 4 and np.percentile(diff[changed], 99) <= 12  # levels of 255


def test_swap_graph_runs_with_a_model(cli, shot, model_dir, tmp_path):
    out = tmp_path / "swapped.mp4"
    r = run_swap(cli, shot, model_dir, out, "--set", "out.preset=ultrafast")
    assert r.code == 0, r.err
    facts = stream_facts(out)
    assert facts["frames"] == 16 and facts["metadata"]["synthetic_media"] == "true"
    side = json.loads((tmp_path / "swapped.mp4.swapgraph.json").read_text())
    assert side["stats"]["swap"]["faces_swapped"] == 16
    src, _ = decode_all(shot)
    got, _ = decode_all(out)
    assert np.abs(got.astype(int) - src.astype(int)).mean() > 1  # an untrained model does change the face


def test_a_model_with_a_pickle_fails_validation(cli, shot, model_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    (bad / "weights.pt").write_bytes(b"\x80\x04K\x01.")
    r = run_swap(cli, shot, bad, tmp_path / "o.mp4")
    assert r.code == 2 and len(r.error_lines) == 1 and "pickle" in r.err and "node 'swap'" in r.err


def test_seamless_blend_changes_only_the_face(grace_crops):
    from swapgraph.nodes.blend import MaskBlend, MaskBlendParams
    from swapgraph.nodes.mask import face_region_masks
    from swapgraph.nodes.ports import Masks

    swapped = (grace_crops.crops * torch.tensor([1.0, 0.85, 0.85])[None, :, None, None]).clamp(0, 1)
    fc = FaceCrops(swapped, grace_crops.frame_from_crop, [0], grace_crops.faces, 160, 64, grace_crops.frames)
    masks = Masks(face_region_masks(fc, "no_forehead"), fc)
    node = MaskBlend("blend", MaskBlendParams(mode="seamless"), torch.device("cpu"))
    out = node.process(grace_crops.frames, fc, masks)["frames"].data
    plate = grace_crops.frames.data
    x0, y0, x1, y1 = (int(v) for v in grace_crops.faces[0].box)
    inside = (out - plate)[0, :, (y0 + y1) // 2 - 20:(y0 + y1) // 2 + 20, (x0 + x1) // 2 - 20:(x0 + x1) // 2 + 20]
    assert inside.abs().mean() > 0.01  # the face changed
    far = torch.ones(plate.shape[-2:], dtype=torch.bool)
    far[max(0, y0 - 40):y1 + 40, max(0, x0 - 40):x1 + 40] = False
    assert (out - plate)[0][:, far].abs().max() <= 1 / 255 + 1e-6  # the plate away from it did not


@pytest.mark.parametrize("grow", [1, -3, 8, -8])
def test_square_grow_and_shrink_equal_kornia_morphology(grow):
    import kornia

    torch.manual_seed(grow + 10)
    k = 2 * abs(grow) + 1
    op = kornia.morphology.dilation if grow > 0 else kornia.morphology.erosion
    for masks in (torch.rand(3, 1, 48, 40), (torch.rand(3, 1, 48, 40) > 0.3).float()):
        got = square_morphology(masks, grow)
        assert torch.equal(got, op(masks, torch.ones(k, k)))
        assert not torch.equal(got, masks)
