"""GPU tier, training: bf16 on CUDA, then a resume (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

from swapgraph.training.config import TrainConfig
from swapgraph.training.trainer import Trainer

from helpers import write_photo_faceset

pytestmark = pytest.mark.gpu


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
