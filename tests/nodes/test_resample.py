"""Resize: the function, then the node in graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from swapgraph.nodes.resample import resize_images, target_size
from swapgraph.runtime.errors import ShapeError

from helpers import GRAPHS, decode_all, stream_facts


class TestResizeImages:
    def test_shape_and_range(self, device):
        x = torch.rand(3, 3, 40, 60, device=device)
        y = resize_images(x, (20, 30))
        assert y.shape == (3, 3, 20, 30) and y.device == x.device
        assert y.min() >= 0 and y.max() <= 1

    def test_bad_shape(self):
        with pytest.raises(ShapeError, match=r"expected shape \['B', 3, 'H', 'W'\], found \(3, 40, 60\)"):
            resize_images(torch.rand(3, 40, 60), (20, 30))

    def test_antialias_turns_fine_detail_into_grey(self, device):
        checker = (torch.arange(64).view(1, -1) + torch.arange(64).view(-1, 1)) % 2
        x = checker.float().expand(1, 3, 64, 64).to(device)
        smooth = resize_images(x, (16, 16), "bilinear", antialias=True)
        aliased = resize_images(x, (16, 16), "nearest", antialias=False)
        assert (smooth - 0.5).abs().max() < 0.05  # averaged to grey
        assert set(aliased.unique().tolist()) <= {0.0, 1.0}  # nearest keeps one phase: aliasing

    def test_constant_image_is_unchanged(self, device):
        x = torch.full((2, 3, 31, 47), 0.25, device=device)
        assert torch.allclose(resize_images(x, (64, 94), "bicubic"), torch.full((2, 3, 64, 94), 0.25, device=device),
                              atol=1e-6)

    def test_round_trip_of_smooth_image_is_close(self, grace_frames):
        x = torch.from_numpy(grace_frames[:2]).permute(0, 3, 1, 2).float() / 255
        back = resize_images(resize_images(x, (128, 128), "area"), (256, 256), "bicubic")
        assert (back - x).abs().mean() < 0.03

    @pytest.mark.parametrize("h,w,kw,want", [
        (480, 640, {"factor": 0.5}, (240, 320)),
        (1080, 1920, {"to_height": 256}, (256, 456)),  # 455.1 rounds to the even 456
        (481, 641, {"factor": 1.0}, (480, 640)),  # 240.5 pairs round half to even
        (481, 641, {"factor": 1.0, "even": False}, (481, 641)),
    ])
    def test_target_size(self, h, w, kw, want):
        assert target_size(h, w, **kw) == want


class TestResizeNode:
    def test_rescale_graph_runs_and_keeps_size_and_timing(self, cli, clip, tmp_path):
        out = tmp_path / "r.mp4"
        r = cli("run", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", f"out.path={out}", "--quiet")
        assert r.code == 0, r.err
        src, got = stream_facts(clip), stream_facts(out)
        assert got["frames"] == 24 and got["video_duration"] == pytest.approx(src["video_duration"], abs=0.04)
        a, _ = decode_all(clip)
        b, _ = decode_all(out)
        assert b.shape == a.shape
        assert np.abs(b.astype(int) - a.astype(int)).mean() < 6  # half resolution, then back up

    def test_target_height(self, cli, clip, tmp_path):
        out = tmp_path / "h.mkv"
        r = cli("run", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", f"out.path={out}",
                "--set", "out.codec=ffv1", "--set", "down.factor=null", "--set", "down.height=100", "--quiet")
        assert r.code == 0, r.err
        # 'up' follows the reference, so the output is back at 256
        assert decode_all(out)[0].shape == (24, 256, 256, 3)

    def test_no_target_is_a_validation_error(self, cli, clip, tmp_path):
        r = cli("validate", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", "down.factor=null",
                "--set", f"out.path={tmp_path / 'o.mp4'}")
        assert r.code == 2 and "no target size" in r.err and "node 'down'" in r.err

    def test_factor_and_height_together(self, cli, clip, tmp_path):
        r = cli("validate", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", "down.height=64",
                "--set", f"out.path={tmp_path / 'o.mp4'}")
        assert r.code == 2 and "give factor or height, not both" in r.err
