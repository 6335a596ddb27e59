"""The streaming executor: bounded queues, failures, life cycles, cancellation, devices."""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch

from swapgraph.runtime.errors import Cancelled, NodeError, UsageError
from swapgraph.runtime.devices import resolve_device
from swapgraph.runtime.executor import CancelToken, Executor
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.node import Node, NodeSchema, Params, Port, RunContext, Sink
from swapgraph.runtime.ports import Frames
from swapgraph.runtime.registry import Registry, default_registry

from helpers import (GRAPHS, animate_photo, decode_all, interrupt_at_progress, packaged_photo, swapgraph_subprocess,
                     write_clip, write_graph)
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


class LifeParams(Params):
    fail_in: Literal["", "open", "process", "finish", "commit"] = ""


class Life(Node):
    """Passes frames through, counting its life-cycle calls by node id; raises in ``fail_in``."""

    schema = NodeSchema(inputs={"frames": Port(Frames)}, outputs={"frames": Port(Frames)}, params=LifeParams)
    calls: ClassVar[defaultdict[str, Counter]] = defaultdict(Counter)
    params: LifeParams

    def _step(self, step: str) -> None:
        if self.params.fail_in == step:
            raise ValueError(f"synthetic failure in {step}")
        Life.calls[self.id][step] += 1

    def open(self, ctx: RunContext) -> None:
        self._step("open")

    def process(self, frames: Frames) -> dict[str, Any]:
        self._step("process")
        return {"frames": frames}

    def finish(self) -> None:
        self._step("finish")

    def commit(self, ctx: RunContext) -> None:
        self._step("commit")

    def abort(self) -> None:
        Life.calls[self.id]["abort"] += 1


def life_cycles(*ids: str) -> dict[str, str]:
    """How each node's life went: "committed" (open, finish, commit, each once), "aborted"
    (opened once, aborted exactly once), "never opened" (no call at all), else the counts."""
    told = {}
    for nid in ids:
        c = Life.calls[nid]
        if not any(c[k] for k in ("open", "process", "finish", "commit", "abort")):
            told[nid] = "never opened"
        elif (c["open"], c["finish"], c["commit"], c["abort"]) == (1, 1, 1, 0):
            told[nid] = "committed"
        elif c["open"] == 1 and c["abort"] == 1 and c["finish"] <= 1 and c["commit"] <= 1:
            told[nid] = "aborted"
        else:
            told[nid] = repr(dict(c))
    return told


def registry_with(*extra) -> Registry:
    return Registry([*BUILTIN_NODES, *extra])


def life_chain(tmp_path: Path, clip: Path, fail_in: str = "", out: Path | None = None):
    """plate -> a -> b -> c (three Life nodes, ``b`` failing in ``fail_in``), and an Encode
    of ``c`` to ``out`` when given; Life's counts start from zero."""
    nodes = {"plate": {"type": "Decode", "params": {"path": str(clip)}},
             "a": {"type": "Life", "inputs": {"frames": "plate.frames"}},
             "b": {"type": "Life", "inputs": {"frames": "a.frames"}, "params": {"fail_in": fail_in}},
             "c": {"type": "Life", "inputs": {"frames": "b.frames"}}}
    if out is not None:
        nodes["out"] = {"type": "Encode", "inputs": {"frames": "c.frames"}, "params": {"path": str(out)}}
    graph_path = write_graph(tmp_path / "g.json", nodes, settings={"batch_size": 4})
    Life.calls.clear()
    return validate_graph(load_graph_document(graph_path), registry_with(Life), path=graph_path)


class TestLifeCycle:
    """Every node opened is closed: committed on success, else aborted exactly once."""

    def test_success_commits_every_node(self, tmp_path, clip):
        Executor(life_chain(tmp_path, clip)).run()
        assert life_cycles("a", "b", "c") == {"a": "committed", "b": "committed", "c": "committed"}
        assert [Life.calls[n]["process"] for n in "abc"] == [6, 6, 6]

    @pytest.mark.parametrize("step", ["process", "finish", "commit"])
    def test_a_failure_aborts_every_opened_node_once(self, tmp_path, clip, step):
        out = tmp_path / "renders" / "shot.mp4"
        with pytest.raises(NodeError if step != "commit" else ValueError, match=f"synthetic failure in {step}"):
            Executor(life_chain(tmp_path, clip, step, out)).run()
        assert life_cycles("a", "b", "c") == {"a": "aborted", "b": "aborted", "c": "aborted"}
        assert not out.exists() and list(out.parent.iterdir()) == []

    def test_a_failing_open_aborts_the_nodes_opened_before_it(self, tmp_path, clip):
        with pytest.raises(ValueError, match="synthetic failure in open"):
            Executor(life_chain(tmp_path, clip, "open")).run()
        # b cleans up its own failed open; c was never opened
        assert life_cycles("a", "b", "c") == {"a": "aborted", "b": "never opened", "c": "never opened"}

    def test_ctrl_c_aborts_every_node(self, tmp_path, clip):
        def interrupt(done: int, total: int | None) -> None:
            raise KeyboardInterrupt

        with pytest.raises(Cancelled):
            Executor(life_chain(tmp_path, clip), on_progress=interrupt).run()
        assert life_cycles("a", "b", "c") == {"a": "aborted", "b": "aborted", "c": "aborted"}


class TestCancel:
    def test_cancel_from_the_progress_callback_writes_nothing(self, tmp_path, clip):
        out = tmp_path / "renders" / "shot.mp4"
        token = CancelToken()
        reports = []

        def progress(done: int, total: int | None) -> None:
            reports.append(done)
            token.cancel()

        with pytest.raises(Cancelled, match="no output was written"):
            Executor(life_chain(tmp_path, clip, out=out), on_progress=progress, cancel=token).run()
        assert token.cancelled and reports
        assert life_cycles("a", "b", "c") == {"a": "aborted", "b": "aborted", "c": "aborted"}
        assert not out.exists() and list(out.parent.iterdir()) == []  # no temporary file left either

    def test_a_run_cancelled_before_it_starts_opens_nothing(self, tmp_path, clip):
        token = CancelToken()
        token.cancel()
        with pytest.raises(Cancelled):
            Executor(life_chain(tmp_path, clip), cancel=token).run()
        assert life_cycles("a", "b", "c") == {"a": "never opened", "b": "never opened", "c": "never opened"}


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


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """300 frames, long enough to interrupt mid-run."""
    frames = animate_photo(packaged_photo("astronaut"), 300, size=(320, 320))
    return write_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["TERM", "INT", "KILL"])
def test_a_run_killed_midway_leaves_nothing_at_the_output_path(long_clip, tmp_path, sig):
    # the signal lands at frame 20 of 300 as the progress bar shows it, so the run is mid-way
    # whatever the machine's load (a sleep before the signal once let a loaded run reach its end)
    out = tmp_path / "renders" / "shot.mp4"
    code, shown = interrupt_at_progress(["run", GRAPHS / "rescale.json", "--set", f"plate.path={long_clip}",
                                         "--set", f"out.path={out}", "--set", "out.preset=veryslow",
                                         "--batch-size", "2"], sig, at=20)
    assert not out.exists()
    assert not out.with_name(out.name + ".swapgraph.json").exists()
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert list(out.parent.glob(".shot.partial-*"))  # killed before the commit: the partial is all there is
    else:
        assert code == 130
        assert shown.strip().splitlines()[-1].strip() == "error: run cancelled; no output was written"
        assert [p.name for p in out.parent.iterdir()] == []  # the partial file and the lock were removed too


def test_a_signal_during_the_commit_waits_for_it_and_says_what_was_written(clip, tmp_path, monkeypatch):
    """Ctrl-C while the outputs are renamed into place: the renames finish (all outputs, not
    some), then the run stops as cancelled, naming what it wrote."""
    import os

    from swapgraph.runtime import files

    graph = write_graph(tmp_path / "two.json", {
        "plate": {"type": "Decode", "params": {"path": str(clip)}},
        "a": {"type": "Encode", "inputs": {"frames": "plate.frames"}, "params": {"path": "a.mkv", "codec": "ffv1"}},
        "b": {"type": "Encode", "inputs": {"frames": "plate.frames"}, "params": {"path": "b.mkv", "codec": "ffv1"}}})
    real = files.Publication.commit

    def commit_interrupted(self):
        os.kill(os.getpid(), signal.SIGINT)  # arrives as the renames begin
        return real(self)

    monkeypatch.setattr(files.Publication, "commit", commit_interrupted)
    g = validate_graph(load_graph_document(graph), default_registry(), path=graph)
    with pytest.raises(Cancelled, match="outputs were written whole: .*a.mkv, .*b.mkv"):
        Executor(g, device="cpu").run()
    assert decode_all(tmp_path / "a.mkv")[0].shape[0] == 24 and decode_all(tmp_path / "b.mkv")[0].shape[0] == 24


def test_several_outputs_appear_together_or_not_at_all(clip, tmp_path, monkeypatch):
    """The second output's rename fails: the first, already renamed, is taken back, and an
    earlier output at its path is put back as it was."""
    import os

    from swapgraph.runtime import files

    graph = write_graph(tmp_path / "two.json", {
        "plate": {"type": "Decode", "params": {"path": str(clip)}},
        "a": {"type": "Encode", "inputs": {"frames": "plate.frames"}, "params": {"path": "a.mkv", "codec": "ffv1"}},
        "b": {"type": "Encode", "inputs": {"frames": "plate.frames"}, "params": {"path": "b.mkv", "codec": "ffv1"}}})
    g = validate_graph(load_graph_document(graph), default_registry(), path=graph)
    Executor(g, device="cpu", frame_range=(0, 3)).run()  # an earlier run's outputs, 4 frames each
    before = (tmp_path / "a.mkv").read_bytes()
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == "b.mkv" and ".partial-" in Path(src).name:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(Exception, match="No space left|disk is full"):
        Executor(g, device="cpu").run()
    monkeypatch.undo()
    assert (tmp_path / "a.mkv").read_bytes() == before  # the earlier a.mkv, not the new one
    assert decode_all(tmp_path / "b.mkv")[0].shape[0] == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left


def test_two_runs_writing_one_output_the_second_is_refused_naming_the_first(long_clip, tmp_path):
    out = tmp_path / "shot.mp4"
    args = ["run", GRAPHS / "rescale.json", "--set", f"plate.path={long_clip}", "--set", f"out.path={out}",
            "--set", "out.preset=veryslow", "--batch-size", "2"]
    first = swapgraph_subprocess(*args)
    deadline = time.monotonic() + 60
    while not (tmp_path / ".shot.mp4.swapgraph-lock").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = swapgraph_subprocess(*args)
    _, err = second.communicate(timeout=120)
    assert first.poll() is None, "the first run ended before the second was refused"
    assert second.returncode == 2
    assert err.strip() == err.strip().splitlines()[0] and f"process {first.pid} " in err and "is writing" in err
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither left a file, a temporary or a lock


def test_a_stale_lock_of_a_dead_process_is_taken_over(clip, tmp_path, cli):
    import json
    import socket

    dead = swapgraph_subprocess("nodes")
    dead.communicate(timeout=60)  # a pid that is no longer running
    out = tmp_path / "o.mp4"
    (tmp_path / ".o.mp4.swapgraph-lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    r = cli("run", GRAPHS / "transcode.json", "--set", f"plate.path={clip}", "--set", f"out.path={out}")
    assert r.code == 0, r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4", "o.mp4.swapgraph.json"]


def test_two_runs_in_one_process_never_share_a_temporary_name_and_the_second_is_refused(long_clip, tmp_path):
    """What two runs from one editor server did: each run's temporary names are its own, and
    the output's lock refuses the second run while the first writes."""
    import threading

    from swapgraph import api
    from swapgraph.runtime.errors import OutputError

    out = tmp_path / "shot.mp4"
    spec = api.load(GRAPHS / "rescale.json", [f"plate.path={long_clip}", f"out.path={out}", "out.preset=veryslow"])
    cancel = CancelToken()
    first_error: list[BaseException] = []

    def first() -> None:
        try:
            api.run(spec, batch_size=2, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - looked at below
            first_error.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".shot.partial-*")):
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(OutputError, match=r"is writing this output now"):
        api.run(spec, batch_size=2)
    cancel.cancel()
    thread.join(timeout=60)
    assert isinstance(first_error[0], Cancelled)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
