"""The Python API end to end, in one process: validate, run a range, preview from the cache,
edit a param and preview again, render two chunks on a LocalCluster."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from helpers import decode_all
from swapgraph import api
from swapgraph.nodes.resample import Resize
from swapgraph.nodes.video.decode import Decode
from swapgraph.runtime.errors import Cancelled


def shot(clip, out) -> dict:
    """Decode, half size, back up to the plate's size, encode losslessly (FFV1)."""
    return {"version": 1, "name": "api-shot", "settings": {"batch_size": 8}, "nodes": {
        "plate": {"type": "Decode", "params": {"path": str(clip)}},
        "down": {"type": "Resize", "inputs": {"frames": "plate.frames"}, "params": {"factor": 0.5, "mode": "area"}},
        "up": {"type": "Resize", "inputs": {"frames": "down.frames", "reference": "plate.frames"},
               "params": {"mode": "bicubic"}},
        "out": {"type": "Encode", "inputs": {"frames": "up.frames", "audio": "plate.audio"},
                "params": {"path": str(out), "codec": "ffv1"}}}}


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """Batches each node computed, by node id, in this process."""
    counted: Counter = Counter()
    process, batches = Resize.process, Decode.batches

    def counting_process(self, **inputs):
        counted[self.id] += 1
        return process(self, **inputs)

    def counting_batches(self, ctx):
        for batch in batches(self, ctx):
            counted[self.id] += 1
            yield batch

    monkeypatch.setattr(Resize, "process", counting_process)
    monkeypatch.setattr(Decode, "batches", counting_batches)
    return counted


def test_validate_returns_every_problem_without_running(clip, tmp_path):
    spec = api.load(shot(clip, tmp_path / "o.mkv"))
    assert api.validate(spec) == []
    bad = spec.with_params("down", factor=-1).with_params("out", codec="mpeg2")
    issues = api.validate(bad)
    assert len(issues) == 2 and {i.where.split()[1] for i in issues} == {"'down'", "'out'"}
    assert not (tmp_path / "o.mkv").exists()


def test_run_preview_cache_and_render_in_one_process(clip, tmp_path, calls):
    out = tmp_path / "whole.mkv"
    spec = api.load(shot(clip, out))

    # a range, with progress, exactly the frames the whole shot has there
    seen = []
    report = api.run(spec, frames=(4, 11), progress=lambda done, total: seen.append(done))
    assert report.frames == 8 and report.outputs == [out] and seen[-1] == 8
    ranged, _ = decode_all(out)
    api.run(spec)
    whole, _ = decode_all(out)
    assert len(whole) == 24 and np.array_equal(ranged, whole[4:12])

    cache = api.PreviewCache()
    calls.clear()
    first = api.preview(spec, "down", 12, cache=cache)
    assert first.image is not None and first.image.shape == (3, 128, 128) and calls["down"] >= 1
    calls.clear()
    again = api.preview(spec, "down", 12, cache=cache)
    assert sum(calls.values()) == 0 and np.array_equal(again.image.numpy(), first.image.numpy())

    # a downstream node: only it runs, on the cached upstream results
    up = api.preview(spec, "up", 12, cache=cache)
    assert calls == Counter({"up": 1}) and up.image.shape == (3, 256, 256)
    # a downstream param changed: that node again, nothing upstream
    calls.clear()
    sharp = api.preview(spec.with_params("up", mode="nearest"), "up", 12, cache=cache)
    assert calls == Counter({"up": 1}) and not np.array_equal(sharp.image.numpy(), up.image.numpy())
    # an upstream param changed: it and its descendants, never the decode
    calls.clear()
    api.preview(spec.with_params("down", factor=0.25), "up", 12, cache=cache)
    assert calls == Counter({"down": 1, "up": 1})
    # the preview is the frame the run writes
    assert np.array_equal(np.round(up.image.permute(1, 2, 0).numpy() * 255).astype(np.uint8), whole[12])

    # two chunks on a LocalCluster, joined: the same frames as the single run
    rendered = tmp_path / "rendered.mkv"
    progress = []
    result = api.render(spec, rendered, chunk_size=12, workers=1, progress=lambda d, t: progress.append((d, t)))
    assert result["chunks"] == 2 and result["chunks_run"] == 2 and progress[-1] == (24, 24)
    assert np.array_equal(decode_all(rendered)[0], whole)


def test_cancel_stops_a_run_and_writes_nothing(clip, tmp_path):
    token = api.CancelToken()
    out = tmp_path / "cancelled.mkv"

    def progress(done, total):
        if done:
            token.cancel()

    with pytest.raises(Cancelled):
        api.run(api.load(shot(clip, out)), batch_size=2, progress=progress, cancel=token)
    assert list(tmp_path.iterdir()) == []
