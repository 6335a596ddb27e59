"""Preview: one node's outputs for one frame, computing only what a cache does not hold.

A preview runs the node's ancestors on the graph's own batches (frames ``k * batch_size``
to ``(k + 1) * batch_size - 1``), from as early as the stateful nodes' pre-roll needs, so
the frame comes out exactly as in a whole run. Each node's outputs for one batch are
cached under a key made of everything they depend on: the node (id, type, params,
device), the batch's frames, the keys of its inputs for that batch (so any upstream
change changes the key), and for a stateful node the batch its sequence started at.
Scrubbing, previewing a downstream node or changing a downstream param then recomputes
only what changed; nodes not needed for a cached result are not even opened, and a
source whose consumers are all served from the cache decodes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .devices import resolve_device
from .errors import NodeError
from .executor import abort_nodes, frame_numbers
from .graph.model import Graph
from .node import Node, RunContext, Sink, Source
from .ports import PortType, move

#: bytes charged to a cache entry besides its tensors: the dicts and small values around them
ENTRY_OVERHEAD = 1024


def value_bytes(value: Any) -> int:
    """Bytes of the tensors and arrays that ``value`` holds (port values, lists, dicts, dataclasses).

    A tensor's whole storage counts, once however many views share it (a view keeps its
    storage alive); other objects count nothing.
    """
    storages: set[tuple[str, int]] = set()
    seen: set[int] = set()
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, torch.Tensor):
            storage = v.untyped_storage()
            if (str(v.device), storage.data_ptr()) not in storages:
                storages.add((str(v.device), storage.data_ptr()))
                total += storage.nbytes()
        elif isinstance(v, np.ndarray):
            total += v.nbytes
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, PortType) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
            # every attribute, not only the fields: lazily made tensors (Frames.data) count too
            stack.extend(vars(v).values() if hasattr(v, "__dict__")
                         else (getattr(v, f.name) for f in dataclasses.fields(v)))
    return total


class PreviewCache:
    """Node outputs kept between previews; the least recently used go first past ``max_bytes``.

    ``max_bytes`` bounds the tensors held (:func:`value_bytes`, plus ``ENTRY_OVERHEAD`` an
    entry); an entry larger than the whole limit is not kept. ``hits`` and ``misses``
    count lookups of one node's outputs for one batch; ``computed`` counts, by node type,
    the batches previews computed rather than took from the cache. Safe to share between
    threads.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.computed: Counter[str] = Counter()
        self._entries: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def entries(self) -> int:
        """How many node outputs (one node, one batch) are held."""
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """What the entries held count for, at most ``max_bytes``."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end(key)
            return entry[0]

    def count_computed(self, type_name: str) -> None:
        """One batch of a node of type ``type_name`` was computed (not served from the cache)."""
        with self._lock:
            self.computed[type_name] += 1

    def put(self, entries: dict[str, dict[str, Any]]) -> None:
        """Keep ``entries`` as the most recently used, in their order, and evict past the limit.

        Entries already held are measured again: a consumer may have grown a value since
        (``Frames.data`` keeps the float copy of uint8 pixels).
        """
        with self._lock:
            for key, outputs in entries.items():
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= old[1]
                size = ENTRY_OVERHEAD + value_bytes(outputs)
                self._entries[key] = (outputs, size)
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, size) = self._entries.popitem(last=False)
                self._bytes -= size


def _file_stamps(node: Node) -> dict[str, list[int] | None]:
    """Size and modification time of each file the node reads: a file rewritten under the
    same name (a plate re-rendered, a model retrained) changes its node's key."""
    stamps: dict[str, list[int] | None] = {}
    for name, role in node.params.path_fields().items():
        path = getattr(node.params, name)
        if role == "input" and path is not None:
            try:
                st = Path(path).stat()
                stamps[name] = [st.st_size, st.st_mtime_ns]
            except OSError:
                stamps[name] = None
    return stamps


def _identity(graph: Graph, node: Node) -> dict[str, Any]:
    """What a node's outputs depend on besides its inputs and frames."""
    bound = graph.nodes[node.id]
    return {"node": node.id, "type": bound.cls.type_name(), "params": bound.params.model_dump(mode="json"),
            "files": _file_stamps(node), "device": str(node.device)}


def _key(identity: dict[str, Any], frames: tuple[int, int], start: int | None,
         inputs: dict[str, tuple[str, str]]) -> str:
    """The cache key of one node's outputs for one batch (``frames``, inclusive): its
    ``identity``, the batch, the batch its stateful sequence started at, and ``inputs``
    (port -> (upstream key, upstream port))."""
    doc = {**identity, "frames": frames, "sequence_start": start, "inputs": inputs}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _source_batch(node: Source, batches: Iterator[dict[str, Any]], batch: int, size: int) -> dict[str, Any] | None:
    """The source's outputs for batch number ``batch`` (earlier ones are passed over); None
    when the source ends first."""
    for out in batches:
        numbers = frame_numbers(out)
        if numbers is None:
            return out
        lo, hi = numbers[0] // size, numbers[-1] // size
        if hi < batch:
            continue
        if lo != batch or hi != batch:
            raise NodeError(f"node {node.id!r} ({node.type_name()}) emitted frames {numbers[0]}-{numbers[-1]}, "
                            f"across the graph's batches of {size}; a source's batches must end at multiples "
                            "of batch_size (as Decode's do) for preview")
        return out
    return None


def evaluate_at(graph: Graph, node_id: str, frame: int, *, device: str | None = None,
                cache: PreviewCache | None = None) -> dict[str, Any]:
    """Outputs of ``node_id`` for the batch that holds ``frame``: only its ancestors run.

    Each node processes the batches a run of this one frame gives it (from as early as
    its pre-roll needs), so the frame is computed as in a whole run. With a ``cache``,
    what it holds is reused and only the rest is computed; without, everything is.
    A sink's inputs stand in for its outputs, so previewing an Encode shows what it
    would write. Every node opened gets ``finish`` then ``abort``: a preview writes
    nothing. The caller picks the frame out (``preview_image(frame)``).
    """
    keep = graph.ancestors(node_id)
    size = graph.settings.batch_size
    last = frame // size
    need = graph.input_prerolls(keep)
    requested = device or graph.settings.device
    bound = {nid: graph.nodes[nid] for nid in keep}
    nodes: dict[str, Node] = {nid: b.cls(nid, b.params, resolve_device(requested, b.device, b.cls.schema.devices))
                              for nid, b in bound.items()}
    target = nodes[node_id]
    links = {nid: b.inputs for nid, b in bound.items()}
    # the first batch each node processes: the pre-roll of the whole batch that holds the
    # frame, so every frame of that batch comes out exact and one cache entry serves them all
    first = {nid: max(0, last * size - need[nid]) // size for nid in keep}
    stateful = {nid: b.cls.preroll(b.params) > 0 for nid, b in bound.items()}

    keys: dict[tuple[str, int], str] = {}
    for nid in keep:  # upstream first; an upstream node starts no later than its consumers
        identity = _identity(graph, nodes[nid])
        for k in range(first[nid], last + 1):
            keys[nid, k] = _key(identity, (k * size, (k + 1) * size - 1), first[nid] if stateful[nid] else None,
                                {port: (keys[src, k], sport) for port, (src, sport) in links[nid].items()})

    # Plan from the target up: which outputs are wanted, which the cache holds, which batches
    # each node must run. A stateful node that must run rebuilds its state from its first batch.
    wanted: dict[str, set[int]] = {nid: set() for nid in keep}
    runs: dict[str, set[int]] = {nid: set() for nid in keep}
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for src, _ in (links[node_id].values() if isinstance(target, Sink) else [(node_id, "")]):
        wanted[src].add(last)
    for nid in reversed(keep):
        for k in sorted(wanted[nid]):
            hit = cache.get(keys[nid, k]) if cache is not None else None
            if hit is not None:
                found[nid, k] = hit
            else:
                runs[nid].update(range(first[nid], k + 1) if stateful[nid] else [k])
        for src, _ in links[nid].values():
            wanted[src].update(runs[nid])

    ctx = RunContext(frame_range=(frame, frame), batch_size=size, preroll=graph.preroll(keep),
                     graph_hash=graph.hash, graph_name=graph.name, graph_path=graph.path)
    opened: list[Node] = []
    sources: dict[str, Iterator[dict[str, Any]]] = {}
    computed: dict[tuple[str, int], dict[str, Any]] = {}

    def value(nid: str, k: int) -> dict[str, Any]:
        return computed[nid, k] if (nid, k) in computed else found[nid, k]

    try:
        for nid in keep:
            node = nodes[nid]
            if not runs[nid]:
                continue  # served from the cache, or not needed: never opened
            if isinstance(node, Source):
                # the source starts at the first batch not served from the cache
                source_ctx = dataclasses.replace(ctx, preroll=frame - min(runs[nid]) * size)
                node.open(source_ctx)
                opened.append(node)
                sources[nid] = iter(node.batches(source_ctx))
            else:
                node.open(ctx)
                opened.append(node)
        for k in range(min((min(r) for r in runs.values() if r), default=last), last + 1):
            for nid in keep:
                node = nodes[nid]
                if k not in runs[nid]:
                    continue
                if isinstance(node, Source):
                    out = _source_batch(node, sources[nid], k, size)
                    if out is None:
                        return {}  # the frame is past the source's end
                    computed[nid, k] = out
                else:
                    computed[nid, k] = node.process(**{port: move(value(src, k)[sport], node.device)
                                                       for port, (src, sport) in links[nid].items()})
                if cache is not None:
                    cache.count_computed(node.type_name())
        for node in opened:
            node.finish()
    finally:
        for batches in sources.values():
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # a generator's files (the decoder's container) close now, not when collected
        abort_nodes(opened)

    if cache is not None:
        cache.put({keys[k]: v for k, v in found.items()} | {keys[k]: v for k, v in computed.items()})
    if isinstance(target, Sink):
        return {port: move(value(src, last)[sport], target.device) for port, (src, sport) in links[node_id].items()}
    return value(node_id, last)
