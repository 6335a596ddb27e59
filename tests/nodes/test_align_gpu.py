"""GPU tier, alignment: crops cut and pasted on CUDA match the CPU's (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from swapgraph.nodes.align import cut_crops, paste_crops
from swapgraph.runtime.images import rgb_to_tensor

from helpers import packaged_photo

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
