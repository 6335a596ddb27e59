"""Fixtures: clips the tests write, the CLI in-process, tiers (real footage, GPU), devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import DEVICES, SHARED_CLIPS, CLIResult, animate_photo, packaged_photo, write_clip
from swapgraph.cli.main import main


def pytest_collection_modifyitems(config, items):
    no_data = pytest.mark.skip(reason=f"real tier: {SHARED_CLIPS} is absent")
    no_gpu = pytest.mark.skip(reason="gpu tier: no CUDA device")
    for item in items:
        if "real" in item.keywords and not SHARED_CLIPS.is_dir():
            item.add_marker(no_data)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(scope="session")
def grace_frames() -> np.ndarray:
    """24 frames (256x256) of a slow move over matplotlib's grace_hopper.jpg."""
    return animate_photo(packaged_photo("grace_hopper"), 24, size=(256, 256))


@pytest.fixture(scope="session")
def clip(tmp_path_factory, grace_frames) -> Path:
    """A 24-frame 256x256 H.264 clip at 25 fps with an AAC tone, written once per session."""
    return write_clip(tmp_path_factory.mktemp("clips") / "grace.mp4", grace_frames)


@pytest.fixture
def cli(capsys):
    """Run ``swapgraph ARGS`` in this process; returns exit code, stdout and stderr."""
    def run(*args: str | Path) -> CLIResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CLIResult(code, captured.out, captured.err)
    return run
