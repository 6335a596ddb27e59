"""GPU tier, the farm: a render on a CUDA worker is the single CUDA run (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

from swapgraph.farm.manifests import read_manifest

from helpers import GRAPHS, decode_all

pytestmark = pytest.mark.gpu


def test_render_on_a_gpu_worker_matches_a_single_cuda_run(cli, clip, tmp_path):
    single, rendered = tmp_path / "single.mkv", tmp_path / "rendered.mkv"
    sets = ["--set", f"plate.path={clip}", "--set", "out.codec=ffv1", "--device", "cuda", "--batch-size", "8"]
    r = cli("run", GRAPHS / "rescale.json", *sets, "--set", f"out.path={single}", "--quiet")
    assert r.code == 0, r.err
    r = cli("render", GRAPHS / "rescale.json", *sets, "--out", rendered, "--chunk-size", "8", "--workers", "1")
    assert r.code == 0, r.err
    docs = [read_manifest(p) for p in sorted((tmp_path / "rendered.mkv.chunks").glob("*.manifest.json"))]
    assert len(docs) == 3 and all("cuda" in set(d["devices"].values()) for d in docs)
    assert np.array_equal(decode_all(single)[0], decode_all(rendered)[0])
