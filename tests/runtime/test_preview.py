"""Preview: one node on one frame, exactly as a whole run makes it, reusing what a cache holds."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from pydantic import Field

from swapgraph.nodes.builtin import NODES as BUILTIN_NODES
from swapgraph.nodes.video.decode import Decode
from swapgraph.runtime.executor import Executor
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.model import Graph
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.node import Node, NodeSchema, Params, Port, RunContext, Sink
from swapgraph.runtime.ports import Frames
from swapgraph.runtime.preview import PreviewCache, evaluate_at
from swapgraph.runtime.registry import Registry

from helpers import GRAPHS, decode_all, write_graph

#: node id -> how many times each life-cycle call was made (``process`` counts decoded batches for a source)
CALLS: defaultdict[str, Counter] = defaultdict(Counter)


class CountedDecode(Decode):
    """Decode, counting its calls."""

    def open(self, ctx: RunContext) -> None:
        CALLS[self.id]["open"] += 1
        super().open(ctx)

    def batches(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        for out in super().batches(ctx):
            CALLS[self.id]["process"] += 1
            yield out

    def finish(self) -> None:
        CALLS[self.id]["finish"] += 1

    def abort(self) -> None:
        CALLS[self.id]["abort"] += 1


class ShadeParams(Params):
    add: float = Field(0.0, description="added to every pixel")
    window: int = Field(0, ge=0, description="earlier frames averaged in: the pre-roll")
    fail: bool = Field(False, description="raise in process")


class Shade(Node):
    """Each frame averaged with the ``window`` frames before it, plus ``add``; counts its calls.

    Stateful when ``window`` > 0: the average reaches back into earlier batches, so a
    sequence started later gives different values for its first ``window`` frames.
    """

    schema = NodeSchema(inputs={"frames": Port(Frames)}, outputs={"frames": Port(Frames)}, params=ShadeParams)
    params: ShadeParams

    @classmethod
    def preroll(cls, params: ShadeParams) -> int:  # type: ignore[override]
        return params.window

    def open(self, ctx: RunContext) -> None:
        CALLS[self.id]["open"] += 1
        self.recent: list[torch.Tensor] = []

    def process(self, frames: Frames) -> dict[str, Any]:
        CALLS[self.id]["process"] += 1
        if self.params.fail:
            raise ValueError("synthetic failure")
        shaded = []
        for image in frames.data:
            self.recent = [*self.recent, image][-(self.params.window + 1):]
            shaded.append(torch.stack(self.recent).mean(0) + self.params.add)
        return {"frames": frames.with_data(torch.stack(shaded))}

    def finish(self) -> None:
        CALLS[self.id]["finish"] += 1

    def commit(self, ctx: RunContext) -> None:
        CALLS[self.id]["commit"] += 1

    def abort(self) -> None:
        CALLS[self.id]["abort"] += 1


class Shelf(Sink):
    """Keeps the frames it is given, by frame number; counts its calls."""

    schema = NodeSchema(inputs={"frames": Port(Frames)}, devices=("cpu",))
    kept: dict[int, torch.Tensor] = {}

    def open(self, ctx: RunContext) -> None:
        CALLS[self.id]["open"] += 1

    def process(self, frames: Frames) -> dict[str, Any]:
        CALLS[self.id]["process"] += 1
        Shelf.kept.update(zip(frames.index, frames.data))
        return {}

    def abort(self) -> None:
        CALLS[self.id]["abort"] += 1


def chain(tmp_path: Path, clip: Path, *overrides: str, window: int = 0) -> Graph:
    """plate -> a -> b -> c -> out (three Shades, ``b`` stateful with ``window``, a Shelf)."""
    path = tmp_path / "g.json"
    if not path.exists():
        write_graph(path, {
            "plate": {"type": "CountedDecode", "params": {"path": str(clip)}},
            "a": {"type": "Shade", "inputs": {"frames": "plate.frames"}, "params": {"add": 0.1}},
            "b": {"type": "Shade", "inputs": {"frames": "a.frames"}, "params": {"add": 0.2, "window": window}},
            "c": {"type": "Shade", "inputs": {"frames": "b.frames"}, "params": {"add": -0.3}},
            "out": {"type": "Shelf", "inputs": {"frames": "c.frames"}}}, settings={"batch_size": 4})
    registry = Registry([*BUILTIN_NODES, CountedDecode, Shade, Shelf])
    return validate_graph(load_graph_document(path), registry, path=path, overrides=overrides)


def preview(graph: Graph, node: str, frame: int, cache: PreviewCache | None) -> Frames:
    """``evaluate_at``'s frames, with the calls it made in ``CALLS`` (counted from zero)."""
    CALLS.clear()
    return evaluate_at(graph, node, frame, cache=cache)["frames"]


def processed() -> dict[str, int]:
    """The nodes that processed (or decoded) batches in the last preview, and how many."""
    return {nid: c["process"] for nid, c in CALLS.items() if c["process"]}


def closed_after_preview() -> dict[str, str]:
    """Every node the last preview opened got ``finish`` then ``abort`` once, nothing else."""
    return {nid: "closed" if (c["open"], c["finish"], c["abort"], c["commit"]) == (1, 1, 1, 0) else repr(dict(c))
            for nid, c in CALLS.items()}


class TestCache:
    def test_a_second_preview_of_the_same_batch_runs_nothing(self, tmp_path, clip):
        graph, cache = chain(tmp_path, clip), PreviewCache()
        first = preview(graph, "c", 9, cache)
        assert processed() == {"plate": 1, "a": 1, "b": 1, "c": 1}  # one batch of 4, decoded from 8
        assert closed_after_preview() == {n: "closed" for n in ("plate", "a", "b", "c")}
        misses = cache.misses
        for frame in (9, 10):  # the same frame, then scrubbing within its batch
            again = preview(graph, "c", frame, cache)
            assert CALLS == {}  # nothing opened, nothing decoded
            assert torch.equal(again.data, first.data)
        assert cache.misses == misses and cache.hits == 2

    def test_a_downstream_node_reuses_the_upstream_results(self, tmp_path, clip):
        graph, cache = chain(tmp_path, clip), PreviewCache()
        preview(graph, "b", 9, cache)
        c = preview(graph, "c", 9, cache)
        assert processed() == {"c": 1} and closed_after_preview() == {"c": "closed"}
        assert torch.equal(c.data, preview(graph, "c", 9, None).data)
        out = preview(graph, "out", 9, cache)  # a sink's inputs stand in for it; it is not opened
        assert CALLS == {} and torch.equal(out.data, c.data)

    @pytest.mark.parametrize(("changed", "rerun"), [("a", ["a", "b", "c"]), ("b", ["b", "c"]), ("c", ["c"])])
    def test_a_param_change_reruns_that_node_and_its_descendants(self, tmp_path, clip, changed, rerun):
        cache = PreviewCache()
        before = preview(chain(tmp_path, clip), "c", 9, cache)
        changed_graph = chain(tmp_path, clip, f"{changed}.add=0.25")
        after = preview(changed_graph, "c", 9, cache)
        assert processed() == {n: 1 for n in rerun}  # the plate is not decoded again
        assert closed_after_preview() == {n: "closed" for n in rerun}
        assert not torch.equal(after.data, before.data)
        assert torch.equal(after.data, preview(changed_graph, "c", 9, None).data)
        assert torch.equal(preview(chain(tmp_path, clip), "c", 9, cache).data, before.data)  # still cached
        assert CALLS == {}

    def test_a_stateful_node_gives_the_same_output_with_and_without_the_cache(self, tmp_path, clip):
        graph, cache = chain(tmp_path, clip, window=2), PreviewCache()
        Shelf.kept = {}
        Executor(graph).run()
        for frame in (5, 6, 2, 9, 6, 5, 4):
            cached = preview(graph, "c", frame, cache)
            assert torch.equal(cached.data, preview(graph, "c", frame, None).data), frame
            assert torch.equal(cached.preview_image(frame), Shelf.kept[frame]), frame
        # every frame of a batch comes from one sequence, started by the pre-roll of the batch's
        # first frame: scrubbing through batch 1 (frames 4-7) computes nothing after its first frame
        cache = PreviewCache()
        preview(graph, "c", 4, cache)
        for frame in (5, 6, 7):
            preview(graph, "c", frame, cache)
            assert processed() == {}, frame

    def test_a_stateful_node_runs_its_whole_pre_roll_sequence(self, tmp_path, clip):
        graph, cache = chain(tmp_path, clip, window=2), PreviewCache()
        preview(graph, "a", 5, cache)  # a alone: batch 1 only
        assert processed() == {"plate": 1, "a": 1}
        preview(graph, "c", 5, cache)  # b needs frame 3: its batches 0 and 1; a's batch 1 is cached
        assert processed() == {"plate": 1, "a": 1, "b": 2, "c": 1}
        assert closed_after_preview() == {n: "closed" for n in ("plate", "a", "b", "c")}

    def test_the_least_recently_used_are_evicted_past_the_limit(self, tmp_path, clip):
        graph, probe = chain(tmp_path, clip), PreviewCache()
        preview(graph, "plate", 1, probe)
        one = probe.bytes  # the plate's outputs for one batch
        assert probe.entries == 1 and one > 4 * 3 * 256 * 256  # 4 frames of uint8 at least

        cache = PreviewCache(max_bytes=2 * one)
        for frame in (1, 9, 1, 17):  # batch 0, batch 2, batch 0 again, batch 4: batch 2 goes
            preview(graph, "plate", frame, cache)
        assert cache.entries == 2 and cache.bytes == 2 * one
        preview(graph, "plate", 1, cache)
        assert CALLS == {}
        preview(graph, "plate", 9, cache)
        assert processed() == {"plate": 1}

        tiny = PreviewCache(max_bytes=1)
        for _ in range(2):
            preview(graph, "a", 1, tiny)
            assert processed() == {"plate": 1, "a": 1}
        assert tiny.entries == 0 and tiny.bytes == 0 and tiny.hits == 0
        cache.clear()
        assert cache.entries == 0 and cache.bytes == 0

    def test_a_failing_preview_aborts_every_opened_node(self, tmp_path, clip):
        graph, cache = chain(tmp_path, clip, "b.fail=true"), PreviewCache()
        with pytest.raises(ValueError, match="synthetic failure"):
            preview(graph, "c", 9, cache)
        assert {n: (c["open"], c["finish"], c["abort"]) for n, c in CALLS.items()} == {
            n: (1, 0, 1) for n in ("plate", "a", "b", "c")}
        assert cache.entries == 0  # nothing of a failed preview is kept


class TestPreviewCommand:
    """`swapgraph preview` writes the frame a whole run makes, as a PNG."""

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
