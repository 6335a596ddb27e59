"""Real tier: a chunked render of real footage, with every default pre-roll, is the single run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import GRAPHS, SHARED_CLIPS, decode_all, stream_facts
from swapgraph.nodes.swap_model import ModelInfo, SwapModel, save_model

pytestmark = pytest.mark.real


def test_render_of_a_real_shot_in_chunks_is_the_single_run(cli, tmp_path):
    clip = SHARED_CLIPS / "d18.mp4"  # 216 frames with audio: chunks 0-95, 96-191, 192-215
    torch.manual_seed(0)
    save_model(tmp_path / "model", SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
    sets = ["--set", f"plate.path={clip}", "--set", f"swap.model={tmp_path / 'model'}", "--set", "out.codec=ffv1"]
    single, rendered = tmp_path / "single.mkv", tmp_path / "rendered.mkv"
    r = cli("run", GRAPHS / "swap.json", *sets, "--set", f"out.path={single}", "--quiet")
    assert r.code == 0, r.err
    r = cli("render", GRAPHS / "swap.json", *sets, "--out", rendered, "--workers", "2")
    assert r.code == 0, r.err
    assert "3 chunks" in r.err
    a, pa = decode_all(single)
    b, pb = decode_all(rendered)
    assert a.shape == b.shape and pa == pb
    differ = [i for i in range(len(a)) if not np.array_equal(a[i], b[i])]
    assert not differ, f"frames differ: {differ}"
    # the swap changed the face (an untrained model paints noise), so equal frames mean equal swaps
    assert np.abs(a.astype(int) - decode_all(clip)[0][: len(a)].astype(int)).max() > 50
    facts, plate = stream_facts(rendered), stream_facts(clip)
    assert facts["frames"] == 216 and facts["audio"][0]["duration"] == pytest.approx(plate["audio"][0]["duration"],
                                                                                     abs=0.05)
