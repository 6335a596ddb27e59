"""GPU tier, resize: graphs/rescale.json on CUDA against the CPU run (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import GRAPHS, decode_all

pytestmark = pytest.mark.gpu


def test_rescale_graph_on_cuda_matches_cpu(cli, clip, tmp_path):
    outs = {}
    for device in ("cpu", "cuda"):
        outs[device] = tmp_path / f"{device}.mkv"
        r = cli("run", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", f"out.path={outs[device]}",
                "--set", "out.codec=ffv1", "--device", device, "--quiet")
        assert r.code == 0, r.err
    a, b = decode_all(outs["cpu"])[0].astype(int), decode_all(outs["cuda"])[0].astype(int)
    assert np.abs(a - b).max() <= 2
