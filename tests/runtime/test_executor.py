"""The streaming executor: bounded queues, failures, cancellation, devices, preview."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from swapgraph.runtime.errors import NodeError, UsageError
from swapgraph.runtime.devices import resolve_device
from swapgraph.runtime.executor import Executor
from swapgraph.runtime.graph import load_graph_document, validate_graph
from swapgraph.runtime.node import Node, NodeSchema, Port, Sink
from swapgraph.runtime.ports import Frames
from swapgraph.runtime.registry import Registry, default_registry

from helpers import GRAPHS, animate_photo, decode_all, packaged_photo, swapgraph_subprocess, write_clip, write_graph
from swapgraph.nodes.builtin import NODES as BUILTIN_NODES


class SlowSink(Sink):
    """Records how far the source had run ahead each time a batch arrived."""

    schema = NodeSchema(inputs={"frames": Port(Frames)}, devices=("cpu",))
    seen: list[int] = []
    executor: Executor | None = None

    def process(self, frames: Frames) -> dict[str, Any]:
        time.sleep(0.02)
        ex = SlowSink.executor
        SlowSink.seen.append(ex.node_frames["plate"] - (ex.node_frames["sink"] + len(frames)))
        return {}


class Boom(Node):
    """Fails on the third batch."""

    schema = NodeSchema(inputs={"frames": Port(Frames)}, outputs={"frames": Port(Frames)})
    calls = 0

    def process(self, frames: Frames) -> dict[str, Any]:
        Boom.calls += 1
        if Boom.calls == 3:
            raise ValueError("synthetic failure")
        return {"frames": frames}


def registry_with(*extra) -> Registry:
    return Registry([*BUILTIN_NODES, *extra])


def test_memory_is_bounded_by_queue_depth(tmp_path, clip):
    graph_path = write_graph(tmp_path / "g.json", {
        "plate": {"type": "Decode", "params": {"path": str(clip)}},
        "sink": {"type": "SlowSink", "inputs": {"frames": "plate.frames"}}},
        settings={"batch_size": 2, "queue_depth": 2})
    graph = validate_graph(load_graph_document(graph_path), registry_with(SlowSink), path=graph_path)
    SlowSink.seen = []
    ex = Executor(graph)
    SlowSink.executor = ex
    result = ex.run()
    assert result.frames == 24 and len(SlowSink.seen) == 12
    # never more than queue_depth batches waiting, plus the one the source holds
    assert max(SlowSink.seen) <= (2 + 1) * 2
    assert max(SlowSink.seen) >= 2  # and the source did run ahead: the stages overlap


def test_node_failure_names_the_node_and_leaves_nothing(tmp_path, clip):
    out = tmp_path / "out.mp4"
    graph_path = write_graph(tmp_path / "g.json", {
        "plate": {"type": "Decode", "params": {"path": str(clip)}},
        "boom": {"type": "Boom", "inputs": {"frames": "plate.frames"}},
        "out": {"type": "Encode", "inputs": {"frames": "boom.frames"}, "params": {"path": str(out)}}},
        settings={"batch_size": 4})
    graph = validate_graph(load_graph_document(graph_path), registry_with(Boom), path=graph_path)
    Boom.calls = 0
    with pytest.raises(NodeError, match=r"node 'boom' \(Boom\) failed: ValueError: synthetic failure"):
        Executor(graph).run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]


def test_device_resolution():
    assert resolve_device("auto", None, ("cpu", "cuda")).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cuda" if torch.cuda.is_available() else "cpu", "cpu", ("cpu", "cuda")).type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve_device("cuda", None, ("cpu", "cuda"))
    else:
        assert resolve_device("cuda", None, ("cpu",)).type == "cpu"  # Decode stays on the CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_a_usage_error(cli, clip, tmp_path):
    r = cli("run", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", f"out.path={tmp_path / 'o.mp4'}",
            "--device", "cuda")
    assert r.code == 2 and len(r.error_lines) == 1 and "no CUDA device" in r.err
    assert not (tmp_path / "o.mp4").exists()


def test_a_node_cannot_be_put_on_a_device_it_does_not_support(cli, clip, tmp_path):
    graph = write_graph(tmp_path / "g.json", {
        "plate": {"type": "Decode", "device": "cuda", "params": {"path": str(clip)}},
        "out": {"type": "Encode", "inputs": {"frames": "plate.frames"}, "params": {"path": "o.mp4"}}})
    r = cli("validate", graph)
    assert r.code == 2 and "Decode runs on cpu, not cuda" in r.err


def test_links_move_tensors_to_the_consumer_device(clip, tmp_path, device):
    graph = write_graph(tmp_path / "g.json", {
        "plate": {"type": "Decode", "params": {"path": str(clip)}},
        "down": {"type": "Resize", "device": device.type, "inputs": {"frames": "plate.frames"},
                 "params": {"factor": 0.5}},
        "out": {"type": "Encode", "inputs": {"frames": "down.frames"},
                "params": {"path": str(tmp_path / "o.mkv"), "codec": "ffv1"}}})
    g = validate_graph(load_graph_document(graph), default_registry(), path=graph)
    ex = Executor(g, device="cpu")
    assert ex.nodes["down"].device.type == device.type and ex.nodes["out"].device.type == "cpu"
    assert ex.run().frames == 24
    assert decode_all(tmp_path / "o.mkv")[0].shape == (24, 128, 128, 3)


class TestPreview:
    def test_preview_equals_that_frame_of_a_full_run(self, cli, clip, tmp_path):
        full = tmp_path / "full.mkv"
        sets = ["--set", f"plate.path={clip}"]
        assert cli("run", GRAPHS / "rescale.json", *sets, "--set", f"out.path={full}", "--set", "out.codec=ffv1",
                   "--quiet").code == 0
        frames, _ = decode_all(full)
        from PIL import Image

        for node, n in (("up", 13), ("out", 0), ("up", 23)):
            png = tmp_path / f"{node}{n}.png"
            r = cli("preview", GRAPHS / "rescale.json", *sets, "--set", f"out.path={full}", "--node", node,
                    "--frame", n, "-o", png)
            assert r.code == 0, r.err
            assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), frames[n])

    def test_preview_of_an_upstream_node(self, cli, clip, tmp_path):
        png = tmp_path / "down.png"
        r = cli("preview", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--node", "down", "--frame", "3",
                "-o", png)
        assert r.code == 0
        from PIL import Image

        assert Image.open(png).size == (128, 128)

    def test_preview_bad_node_or_frame(self, cli, clip, tmp_path):
        sets = ("--set", f"plate.path={clip}")
        r = cli("preview", GRAPHS / "rescale.json", *sets, "--node", "dowm", "--frame", "3")
        assert r.code == 2 and "no such node" in r.err
        r = cli("preview", GRAPHS / "rescale.json", *sets, "--node", "down", "--frame", "99")
        assert r.code == 2 and "past the end" in r.err


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """300 frames, long enough to interrupt mid-run."""
    frames = animate_photo(packaged_photo("astronaut"), 300, size=(320, 320))
    return write_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_run_killed_midway_leaves_nothing_at_the_output_path(long_clip, tmp_path, sig):
    out = tmp_path / "renders" / "shot.mp4"
    proc = swapgraph_subprocess("run", GRAPHS / "rescale.json", "--set", f"plate.path={long_clip}",
                                "--set", f"out.path={out}", "--set", "out.preset=veryslow", "--batch-size", "2")
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(".shot.partial-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)  # well into encoding
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert not out.exists()
    assert not out.with_name(out.name + ".swapgraph.json").exists()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130
        assert err.strip().splitlines()[-1].startswith("error: ")
        assert list(out.parent.iterdir()) == []  # the partial file was removed too
