"""GPU tier: the CUDA path of the same code, against the CPU result (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from swapgraph.nodes.align import cut_crops, paste_crops
from swapgraph.nodes.training import TrainConfig, Trainer
from swapgraph.runtime.images import rgb_to_tensor

from helpers import GRAPHS, decode_all, packaged_photo, write_photo_faceset

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def test_crops_and_paste_match_the_cpu():
    frames = rgb_to_tensor(packaged_photo("astronaut")[None])
    m = torch.tensor([[[0.8, -0.2, -60.0], [0.2, 0.8, -30.0]]], dtype=torch.float64)
    rows = torch.tensor([0])
    cpu = cut_crops(frames, rows, m, 256)
    gpu = cut_crops(frames.to(CUDA), rows, m, 256)
    assert gpu.device.type == "cuda" and torch.allclose(cpu, gpu.cpu(), atol=1e-4)
    back = paste_crops(frames.to(CUDA), gpu, rows, torch.linalg.inv(torch.cat([m[0], torch.tensor(
        [[0.0, 0.0, 1.0]], dtype=torch.float64)]))[None, :2])
    assert back.device.type == "cuda"


def test_rescale_graph_on_cuda_matches_cpu(cli, clip, tmp_path):
    outs = {}
    for device in ("cpu", "cuda"):
        outs[device] = tmp_path / f"{device}.mkv"
        r = cli("run", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", f"out.path={outs[device]}",
                "--set", "out.codec=ffv1", "--device", device, "--quiet")
        assert r.code == 0, r.err
    a, b = decode_all(outs["cpu"])[0].astype(int), decode_all(outs["cuda"])[0].astype(int)
    assert np.abs(a - b).max() <= 2


def test_training_on_cuda_in_bf16_and_resume(tmp_path):
    a = write_photo_faceset(tmp_path / "g", "grace_hopper")
    b = write_photo_faceset(tmp_path / "a", "astronaut", seed=1)
    cfg = dict(a=a, b=b, out=tmp_path / "m", preset="classic-64", device="cuda",
               batch_schedule=[(0, 32)], val_every=10, preview_every=20, checkpoint_every=10, quiet=True)
    summary = Trainer(TrainConfig(steps=20, **cfg)).run()
    assert summary["device"].startswith("cuda") and np.isfinite(summary["val"])
    resumed = Trainer(TrainConfig(steps=30, resume=True, **cfg))
    assert resumed.step == 20
    assert resumed.run()["steps"] == 30


def test_render_on_a_gpu_worker_matches_a_single_cuda_run(cli, clip, tmp_path):
    from swapgraph.farm.render import read_manifest

    single, rendered = tmp_path / "single.mkv", tmp_path / "rendered.mkv"
    sets = ["--set", f"plate.path={clip}", "--set", "out.codec=ffv1", "--device", "cuda", "--batch-size", "8"]
    r = cli("run", GRAPHS / "rescale.json", *sets, "--set", f"out.path={single}", "--quiet")
    assert r.code == 0, r.err
    r = cli("render", GRAPHS / "rescale.json", *sets, "--out", rendered, "--chunk-size", "8", "--workers", "1")
    assert r.code == 0, r.err
    docs = [read_manifest(p) for p in sorted((tmp_path / "rendered.mkv.chunks").glob("*.manifest.json"))]
    assert len(docs) == 3 and all("cuda" in set(d["devices"].values()) for d in docs)
    assert np.array_equal(decode_all(single)[0], decode_all(rendered)[0])
