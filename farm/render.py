"""The render farm: a shot in frame-range chunks, run on Dask, joined without re-encoding.

A chunk is ``swapgraph run GRAPH --frames A-B`` with the graph's Encode writing a chunk
file and a manifest (``--manifest``). Chunks are exact: sources decode the graph's
pre-roll before A and whole batches, so a chunk's frames are bit for bit the frames a
single run makes (see ``Node.preroll``). ``render`` plans the chunks, skips those whose
manifest says they are done with the same graph, runs the rest on Dask ``distributed``
(a LocalCluster, or a scheduler's workers on a farm; GPU workers carry the ``GPU``
resource), retries a failed chunk on another worker, and joins the chunk files into the
output by copying their packets, adding the source audio. ``--plan`` prints the same
chunks as command lines for farm managers that run commands (Deadline, OpenCue,
Tractor), and ``join`` joins what they made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from swapgraph.runtime.errors import MediaError, SwapgraphError, UsageError
from swapgraph.runtime.graph import Graph
from swapgraph.runtime.files import can_write, remove, write_json_atomic
from swapgraph.runtime.provenance import sidecar_document, sidecar_path

MANIFEST_VERSION = 1
DEFAULT_CHUNK_SIZE = 96


# --- the graph as a farm sees it ---------------------------------------------------------

def output_node(graph: Graph, node: str | None = None) -> str:
    """The Encode node a render writes: ``node``, or the graph's only Encode; every other
    sink is refused, since chunks cannot share one."""
    from swapgraph.runtime.node import Sink

    sinks = [nid for nid in graph.order if issubclass(graph.nodes[nid].cls, Sink)]
    encodes = [nid for nid in sinks if graph.nodes[nid].cls.type_name() == "Encode"]
    if node is not None:
        if node not in encodes:
            raise UsageError(f"--node {node!r}: not an Encode node of the graph; its Encode nodes: "
                             + (", ".join(encodes) or "none"))
    elif len(encodes) != 1:
        raise UsageError(f"{graph.path or 'graph'}: a render writes one Encode output, the graph has "
                         f"{len(encodes)} ({', '.join(encodes) or 'none'}); name one with --node")
    else:
        node = encodes[0]
    others = [nid for nid in sinks if nid != node]
    if others:
        raise UsageError(f"node {others[0]!r} ({graph.nodes[others[0]].cls.type_name()}): a render joins one Encode "
                         "output, and chunks cannot share this sink's files; render a graph without it, or run "
                         "the shot with swapgraph run")
    if graph.nodes[node].params.codec == "png":
        raise UsageError(f"node {node!r}: codec png writes an image sequence, which a render does not join; "
                         "use a video codec (ffv1 or prores_ks for lossless or mastering), or run chunks with "
                         "swapgraph run --frames into separate folders")
    return node


def render_key(graph: Graph, node: str, batch_size: int, device: str | None) -> str:
    """What makes two chunks joinable: the graph and its params (less the output's path,
    which differs between a chunk and the render), the batch size and the device."""
    doc = json.loads(json.dumps(graph.document))
    doc["nodes"][node]["params"].pop("path", None)
    doc["batch_size"] = batch_size
    doc["device"] = device or graph.settings.device
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def range_problems(graph: Graph) -> list[str]:
    """Nodes whose output would depend on where a chunk starts (``Node.range_issues``)."""
    import torch

    found = []
    for nid, b in graph.nodes.items():
        for issue in b.cls(nid, b.params, torch.device("cpu")).range_issues():
            found.append(f"node {nid!r} ({b.cls.type_name()}) {issue}")
    return found


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- manifests ---------------------------------------------------------------------------

def write_manifest(path: Path, graph: Graph, node: str, summary: dict[str, Any], *, key: str,
                   render_frames: tuple[int, int | None] | None = None) -> dict[str, Any]:
    """After a chunk's run committed: what it made, from which graph, and the output's hash."""
    from swapgraph.nodes.video import probe_video

    out = Path(graph.nodes[node].params.path)
    sidecar = json.loads(sidecar_path(out).read_text(encoding="utf-8"))
    source = Path(sidecar["source"])
    first, last = sidecar["source_frames"]
    index = probe_video(source)
    p = graph.nodes[node].params
    doc = {
        "swapgraph_chunk": MANIFEST_VERSION,
        "render_key": key,
        "graph_hash": graph.hash,
        "graph": str(graph.path) if graph.path else None,
        "node": node,
        "frames": [first, last],
        "frame_count": sidecar["frames_written"],
        # the whole render's frames, so join can tell a missing first or last chunk
        "render_frames": list(render_frames) if render_frames else None,
        "output": out.name if out.parent.resolve() == path.parent.resolve() else str(out),
        "output_sha256": sha256_file(out),
        "source": str(source),
        "first_pts": index.pts[first],
        "end_pts": index.pts[last] + index.durations[last],
        "time_base": str(index.info.time_base),
        "encode": {"codec": p.codec, "suffix": out.suffix},
        "params": summary.get("params", {}),
        "devices": summary.get("node_devices", {}),
        "stats": summary.get("stats", {}),
        "preroll": summary.get("preroll", 0),
        "batch_size": summary.get("batch_size"),
        "seconds": summary.get("seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_id": os.environ.get("SWAPGRAPH_RENDER_ID", ""),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, doc)
    return doc


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("swapgraph_chunk") == MANIFEST_VERSION else None


def manifest_output(path: Path, doc: dict[str, Any]) -> Path:
    out = Path(doc["output"])
    return out if out.is_absolute() else path.parent / out


def chunk_is_done(path: Path, key: str, first: int, last: int) -> bool:
    """A chunk is done when its manifest has this render's key and range, and its file is
    there with the hash the manifest recorded."""
    doc = read_manifest(path)
    if doc is None or doc.get("render_key") != key or doc.get("frames") != [first, last]:
        return False
    out = manifest_output(path, doc)
    return out.is_file() and sha256_file(out) == doc.get("output_sha256")


# --- the plan -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Chunk:
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"chunk-{self.first:06d}-{self.last:06d}"

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


def plan_chunks(first: int, last: int, size: int) -> list[Chunk]:
    """Chunks of ``size`` frames covering ``first..last``, on boundaries at multiples of
    ``size`` in frame numbers (so a re-plan of a longer range keeps the chunks it shares)."""
    chunks = []
    start = first
    while start <= last:
        end = min(last, (start // size + 1) * size - 1)
        chunks.append(Chunk(start, end))
        start = end + 1
    return chunks


@dataclass
class RenderPlan:
    graph: Graph
    graph_path: Path
    overrides: list[str]
    node: str
    out: Path
    chunks_dir: Path
    chunks: list[Chunk]
    key: str
    batch_size: int
    device: str | None
    first: int
    last: int
    suffix: str = ""
    done: set[Chunk] = field(default_factory=set)

    def chunk_output(self, c: Chunk) -> Path:
        return self.chunks_dir / f"{c.name}{self.suffix}"

    def chunk_manifest(self, c: Chunk) -> Path:
        return self.chunks_dir / f"{c.name}.manifest.json"

    def run_args(self, c: Chunk) -> list[str]:
        args = ["run", str(self.graph_path)]
        for o in self.overrides:
            args += ["--set", o]
        args += ["--set", f"{self.node}.path={self.chunk_output(c)}", "--frames", f"{c.first}-{c.last}",
                 "--batch-size", str(self.batch_size), "--manifest", str(self.chunk_manifest(c)), "--render-frames", f"{self.first}-{self.last}",
                 "--quiet"]
        if self.device:
            args += ["--device", self.device]
        return args

    def join_args(self) -> list[str]:
        return ["join", str(self.chunks_dir), "--out", str(self.out)]

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


def _absolute_overrides(graph: Graph, overrides: Sequence[str]) -> list[str]:
    """``--set`` values with path params made absolute, so a farm worker anywhere reads the
    same files (the graph already resolved them)."""
    from swapgraph.runtime.graph import parse_override

    out = []
    for text in overrides:
        nid, param, value = parse_override(text)
        b = graph.nodes[nid]
        if param in b.params.path_fields() and value != "null":
            value = str(getattr(b.params, param))
        out.append(f"{nid}.{param}={value}")
    return out


def make_plan(graph_path: Path, overrides: Sequence[str], out: Path, *, chunk_size: int, node: str | None = None,
              frames: tuple[int, int | None] | None = None, batch_size: int | None = None,
              device: str | None = None, chunks_dir: Path | None = None) -> RenderPlan:
    """Validate the graph for a farm and split its shot into chunks."""
    from swapgraph.runtime.graph import load_graph_document, validate_graph
    from swapgraph.runtime.node import RunContext, Source
    from swapgraph.runtime.registry import default_registry

    graph_path = Path(graph_path).resolve()
    doc = load_graph_document(graph_path)
    graph = validate_graph(doc, default_registry(), path=graph_path, overrides=list(overrides), probe=False)
    node = output_node(graph, node)
    out = Path(out).resolve()
    _check_writable(out.parent, "--out")
    # validated again as the render writes it: the codec must suit --out's container
    graph = validate_graph(doc, default_registry(), path=graph_path, overrides=[*overrides, f"{node}.path={out}"])
    problems = range_problems(graph)
    if problems:
        raise UsageError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    if chunk_size < 1:
        raise UsageError(f"--chunk-size {chunk_size}: expected a positive number of frames")
    bs = batch_size or graph.settings.batch_size
    # chunk boundaries on whole batches: no chunk decodes a batch only to drop most of it
    size = max(bs, (chunk_size + bs - 1) // bs * bs)
    import torch

    ctx = RunContext(frame_range=frames, batch_size=bs)
    ranges = [b.cls(nid, b.params, torch.device("cpu")).output_range(ctx) for nid, b in graph.nodes.items()
              if issubclass(b.cls, Source)]
    ranges = [r for r in ranges if r is not None]
    if not ranges:
        raise UsageError(f"{graph_path}: no source node with a frame range; a render needs a Decode")
    first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
    chunks_dir = Path(chunks_dir).resolve() if chunks_dir else out.with_name(out.name + ".chunks")
    _check_writable(chunks_dir, "--chunks")
    plan = RenderPlan(graph=graph, graph_path=graph_path, overrides=_absolute_overrides(graph, overrides), node=node,
                      out=out, chunks_dir=chunks_dir, chunks=plan_chunks(first, last, size),
                      key=render_key(graph, node, bs, device), batch_size=bs, device=device, first=first, last=last,
                      suffix=out.suffix)
    return plan


def _check_writable(folder: Path, flag: str) -> None:
    if not can_write(folder):
        raise UsageError(f"{flag} {folder}: cannot write there (nor make it); choose a writable folder")


def plan_commands(plan: RenderPlan, program: str = "swapgraph") -> list[str]:
    """One shell line per chunk, then the join: what a farm manager runs."""
    lines = [f"# swapgraph render plan: {plan.graph_path.name}, frames {plan.first}-{plan.last} in "
             f"{len(plan.chunks)} chunks; run the chunk lines in any order, on any machines that see these "
             "paths, then the join line", f"# render key {plan.key[:16]}"]
    lines += [shlex.join([program, *plan.run_args(c)]) for c in plan.chunks]
    lines.append(shlex.join([program, *plan.join_args()]))
    return lines


# --- running a chunk (in a Dask worker, or any process) -----------------------------------

class ChunkFailed(Exception):
    """A chunk failed on a worker: which worker, the one-line message, the exit code."""

    def __init__(self, worker: str, message: str, exit_code: int) -> None:
        super().__init__(worker, message, exit_code)
        self.worker, self.message, self.exit_code = worker, message, exit_code

    def __str__(self) -> str:
        return f"{self.message} (on {self.worker})"


def run_chunk(args: list[str], cpus: int | None = None, run_id: str = "") -> dict[str, Any]:
    """Run one chunk's ``swapgraph run`` arguments in this process; return its manifest.

    Called in Dask workers: the process (and its model cache) lives across chunks.
    """
    from swapgraph.cli.main import build_parser, cmd_run

    worker = f"{socket.gethostname()}:{os.getpid()}"
    dask_worker = None
    try:
        try:
            from distributed import get_worker

            dask_worker = get_worker()
            worker = dask_worker.address
        except (ImportError, ValueError):
            pass
        os.environ["SWAPGRAPH_RENDER_ID"] = run_id  # recorded in the manifest
        ns = build_parser().parse_args(args)
        ns.cpus = cpus
        if dask_worker is not None:
            ns.progress_hook = _progress_reporter(dask_worker, run_id, args[args.index("--frames") + 1])
        cmd_run(ns)
        failure = None
    except SwapgraphError as exc:
        failure = ChunkFailed(worker, str(exc), exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - every failure reaches the render as one line
        failure = ChunkFailed(worker, f"{type(exc).__name__}: {exc}", 1)
    if failure is not None:
        # raised outside the handler, so it carries no chain of library exceptions that Dask
        # could not send back (PyAV's do not unpickle): the render gets it as it is
        raise failure
    manifest = Path(args[args.index("--manifest") + 1])
    doc = read_manifest(manifest)
    if doc is None:
        raise ChunkFailed(worker, f"{manifest}: the chunk ran but wrote no manifest", 1)
    return doc


PROGRESS_TOPIC = "swapgraph-progress"


def _progress_reporter(worker, run_id: str, chunk: str, every: float = 0.5) -> Callable[[int], None]:
    """Frames done in this chunk, sent to the render's client as Dask events (twice a second)."""
    last = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            worker.log_event(PROGRESS_TOPIC, {"run": run_id, "chunk": chunk, "done": done})
    return report


# --- render -------------------------------------------------------------------------------

def _cluster(workers: int | None, scheduler: str | None, gpu: bool):
    import logging

    import dask
    from distributed import Client, LocalCluster

    dask.config.set({
        # chunks start their own process pools (face detection), which daemon workers may not
        "distributed.worker.daemon": False,
        # the statistical profiler samples every thread's stack 100 times a second
        "distributed.worker.profile.enabled": False,
        # the nanny's default environment caps BLAS/OpenMP at one thread (a chunk's executor
        # shares its cores itself) and sets MALLOC_TRIM_THRESHOLD_=65536, which makes glibc hand
        # every freed frame-sized tensor back to the OS: chunks ran 1.7x slower (measured)
        "distributed.nanny.pre-spawn-environ": {},
        "distributed.scheduler.work-stealing": False,
    })
    if scheduler:
        from urllib.parse import urlsplit

        where = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
        try:  # a refused connection fails at once here; Dask's client would retry until its timeout
            socket.create_connection((where.hostname or "localhost", where.port or 8786), timeout=10).close()
            return Client(scheduler, timeout="30s"), None
        except (OSError, ValueError) as exc:
            raise UsageError(f"--scheduler {scheduler}: cannot reach it ({exc}); check the address and that "
                             "`dask scheduler` runs there") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR, resources={"GPU": 1} if gpu else None)
    return Client(cluster), cluster


def _needs_gpu(plan: RenderPlan, client) -> bool:
    wanted = plan.device or plan.graph.settings.device
    if any(b.device == "cuda" for b in plan.graph.nodes.values()) or wanted == "cuda":
        return True
    if wanted == "auto":
        workers = client.scheduler_info().get("workers", {}).values()
        return any(w.get("resources", {}).get("GPU") for w in workers)
    return False


def run_jobs(client, jobs: dict[str, tuple], fn: Callable[..., Any], *, retries: int, prefix: str = "swapgraph",
             resources: dict[str, float] | None = None, on_done: Callable[[str, Any], None] | None = None,
             log: Callable[[str], None] = print) -> dict[str, int]:
    """Run ``fn(*args)`` for every job on the client's workers; return each job's attempts.

    A job that fails (``ChunkFailed`` with exit code 1, or any error) is retried up to
    ``retries`` times, each time on workers it has not failed on while there are any.
    A user error (exit code 2: bad input, a full disk) stops everything at once: another
    worker would fail the same way. A worker that dies mid-job is Dask's to replace, and
    its job runs again elsewhere without counting as a try.
    """
    from distributed import as_completed

    workers = list(client.scheduler_info().get("workers", {}))
    attempts = {name: 0 for name in jobs}
    failed_on: dict[str, set[str]] = {name: set() for name in jobs}

    def submit(name: str):
        attempts[name] += 1
        others = [w for w in workers if w not in failed_on[name]]
        return client.submit(fn, *jobs[name], key=f"{prefix}-{name}-{attempts[name]}", resources=resources,
                             pure=False, workers=others or None, allow_other_workers=not others)

    futures = {submit(name): name for name in jobs}
    queue = as_completed(list(futures))
    for future in queue:
        name = futures.pop(future)
        if future.status == "finished":
            if on_done:
                on_done(name, future.result())
            continue
        exc = future.exception()
        exit_code = getattr(exc, "exit_code", 1)
        where = getattr(exc, "worker", "")
        failed_on[name].add(where)
        if exit_code == 2 or attempts[name] > retries:
            for f in futures:
                f.cancel()
            reason = exc.message if isinstance(exc, ChunkFailed) else f"{type(exc).__name__}: {exc}"
            tries = f" after {attempts[name]} tries" if attempts[name] > 1 else ""
            err = (UsageError if exit_code == 2 else SwapgraphError)(f"{name} failed{tries}: {reason}")
            err.exit_code = 2 if exit_code == 2 else 1
            raise err
        elsewhere = " on another worker" if len(workers) > len(failed_on[name]) else ""
        log(f"render: {name} failed on {where or 'a worker'} ({exc}); retrying{elsewhere}")
        retry = submit(name)
        futures[retry] = name
        queue.add(retry)
    return attempts


def render(plan: RenderPlan, *, workers: int | None = None, scheduler: str | None = None, retries: int = 2,
           on_progress: Callable[[int, int], None] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the plan's unfinished chunks on Dask, then join them into ``plan.out``."""
    import torch

    plan.chunks_dir.mkdir(parents=True, exist_ok=True)
    for stale in plan.chunks_dir.glob(".chunk-*.partial-*"):  # left by a killed run
        remove(stale)
    # chunks of another plan (another chunk size or range, or another graph): the render owns
    # its chunks folder, and join would refuse a mix
    names = {c.name for c in plan.chunks}
    for manifest in plan.chunks_dir.glob("chunk-*.manifest.json"):
        doc = read_manifest(manifest)
        name = manifest.name.removesuffix(".manifest.json")
        if name not in names or doc is None or doc.get("render_key") != plan.key:
            output = manifest_output(manifest, doc) if doc else manifest.with_name(name + plan.suffix)
            for path in (manifest, output, sidecar_path(output)):
                remove(path)
    plan.done = {c for c in plan.chunks if chunk_is_done(plan.chunk_manifest(c), plan.key, c.first, c.last)}
    todo = [c for c in plan.chunks if c not in plan.done]
    log(f"render: frames {plan.first}-{plan.last} in {len(plan.chunks)} chunks; {len(plan.done)} already done, "
        f"{len(todo)} to run")
    run_id = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    finished = [sum(c.frames for c in plan.done)]
    if on_progress:
        on_progress(finished[0], plan.frames)
    started = time.perf_counter()
    attempts: dict[str, int] = {}
    if todo:
        workers = workers or 1
        client, cluster = _cluster(workers, scheduler, gpu=torch.cuda.is_available() and not scheduler)
        try:
            cpus = max(1, (os.cpu_count() or 1) // workers) if cluster is not None else None
            by_name = {f"chunk {c.name} (frames {c.first}-{c.last})": c for c in todo}
            in_flight: dict[str, int] = {}  # "A-B" -> frames done, from the workers' events
            closed: set[str] = set()  # chunks already counted whole: late events are ignored

            def on_event(event) -> None:
                msg = event[1] if isinstance(event, tuple) else event
                if isinstance(msg, dict) and msg.get("run") == run_id and msg.get("chunk") not in closed:
                    in_flight[msg["chunk"]] = int(msg["done"])
                    if on_progress:
                        on_progress(finished[0] + sum(in_flight.values()), plan.frames)

            def on_done(name: str, manifest: dict[str, Any]) -> None:
                c = by_name[name]
                closed.add(f"{c.first}-{c.last}")
                in_flight.pop(f"{c.first}-{c.last}", None)
                finished[0] += c.frames
                plan.done.add(c)
                if on_progress:
                    on_progress(finished[0] + sum(in_flight.values()), plan.frames)

            client.subscribe_topic(PROGRESS_TOPIC, on_event)
            attempts = run_jobs(client, {name: (plan.run_args(c), cpus, run_id) for name, c in by_name.items()},
                                run_chunk, retries=retries, prefix=plan.key[:12],
                                resources={"GPU": 1} if _needs_gpu(plan, client) else None, on_done=on_done, log=log)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    chunk_seconds = time.perf_counter() - started
    result = join_chunks(plan.chunks_dir, plan.out, expect=plan)
    result.update({"chunks_run": len(todo), "chunks_skipped": len(plan.chunks) - len(todo),
                   "retries": sum(n - 1 for n in attempts.values()), "chunk_seconds": round(chunk_seconds, 3),
                   "run_id": run_id})
    return result


# --- join ---------------------------------------------------------------------------------

def read_chunk_manifests(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The chunk manifests of a folder, checked: one render key, contiguous frames, files intact."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such chunks folder; give the folder the render plan names (OUT.chunks)")
    found = []
    for path in sorted(folder.glob("chunk-*.manifest.json")):
        doc = read_manifest(path)
        if doc is None:
            raise UsageError(f"{path}: not a swapgraph chunk manifest; remove it or rerun that chunk's command")
        found.append((path, doc))
    if not found:
        raise UsageError(f"{folder}: no chunk manifests (chunk-*.manifest.json); run the chunks first")
    found.sort(key=lambda pd: pd[1]["frames"][0])
    keys = {d["render_key"] for _, d in found}
    if len(keys) > 1:
        raise UsageError(f"{folder}: chunks from {len(keys)} different graphs or settings (render keys "
                         f"{', '.join(sorted(k[:12] for k in keys))}); delete the stale chunks and rerun them")
    wholes = {tuple(d["render_frames"]) for _, d in found if d.get("render_frames")}
    if len(wholes) > 1:
        raise UsageError(f"{folder}: chunks of different renders (frames " + ", ".join(f"{a}-{b}" for a, b in
                         sorted(wholes)) + "); delete the stale chunks and rerun them")
    if wholes:
        (a, b), = wholes
        if found[0][1]["frames"][0] != a or (b is not None and found[-1][1]["frames"][1] != b):
            raise UsageError(f"{folder}: the chunks cover frames {found[0][1]['frames'][0]}-"
                             f"{found[-1][1]['frames'][1]} of the render's {a}-{b}; run the missing chunks")
    for (pa, a), (pb, b) in zip(found, found[1:]):
        if b["frames"][0] != a["frames"][1] + 1:
            what = "overlap" if b["frames"][0] <= a["frames"][1] else "leave a gap"
            raise UsageError(f"{pb}: frames {b['frames'][0]}-{b['frames'][1]} {what} after {pa.name} "
                             f"({a['frames'][0]}-{a['frames'][1]}); run the missing chunks or remove the extra one")
    for path, doc in found:
        out = manifest_output(path, doc)
        if not out.is_file():
            raise UsageError(f"{out}: chunk file missing; rerun that chunk (its manifest is {path.name})")
        if sha256_file(out) != doc["output_sha256"]:
            raise UsageError(f"{out}: does not match the hash in {path.name} (changed or damaged); rerun that chunk")
    return found


def join_chunks(folder: Path, out: Path, *, expect: RenderPlan | None = None) -> dict[str, Any]:
    """Join chunk files into ``out`` by copying their packets (no re-encode), add the source
    audio for the whole range, check the frame count, then rename into place."""
    from fractions import Fraction

    import av

    from swapgraph.nodes.video import AudioMuxer, disk_errors, open_output, probe_video
    from swapgraph.runtime.files import publish, temp_path_for
    from swapgraph.runtime.ports import Audio

    out = Path(out).resolve()
    found = read_chunk_manifests(folder)
    docs = [d for _, d in found]
    if expect is not None:
        want = [[c.first, c.last] for c in expect.chunks]
        have = [d["frames"] for d in docs]
        if have != want or docs[0]["render_key"] != expect.key:
            raise MediaError(f"{folder}: the chunks there ({len(have)}) are not the plan's ({len(want)}); "
                             "rerun the render")
    from swapgraph.nodes.video import _container_format

    suffix = docs[0]["encode"]["suffix"]
    if _container_format(Path("x" + suffix)) != _container_format(out):
        raise UsageError(f"--out {out.name}: the chunks are {suffix} files; give the output a {suffix} name")
    _check_writable(out.parent, "--out")
    out.parent.mkdir(parents=True, exist_ok=True)
    source = Path(docs[0]["source"])
    index = probe_video(source)
    shot_first, shot_end = docs[0]["first_pts"], docs[-1]["end_pts"]
    tb = Fraction(docs[0]["time_base"])
    expected = sum(d["frame_count"] for d in docs)
    if expected != docs[-1]["frames"][1] - docs[0]["frames"][0] + 1:
        raise MediaError(f"{folder}: the chunks hold {expected} frames for frames {docs[0]['frames'][0]}-"
                         f"{docs[-1]['frames'][1]}; rerun the chunks whose manifests disagree")
    temp = temp_path_for(out)
    container = None
    try:
        container = open_output(temp, out)
        with disk_errors(out):
            with av.open(str(manifest_output(*found[0]))) as first:
                vstream = container.add_stream_from_template(first.streams.video[0])
            seconds = lambda pts: float((pts - index.info.start_pts) * tb)  # noqa: E731
            audio = AudioMuxer(container, out, Audio(source, list(index.audio), seconds(shot_first), seconds(shot_end)),
                               **_encode_params(docs[0]))
            last_dts = None
            for path, doc in found:
                chunk_file = str(manifest_output(path, doc))
                with av.open(chunk_file) as chunk:  # where the chunk's own video starts
                    starts = [p.pts for p in chunk.demux(chunk.streams.video[0]) if p.size and p.pts is not None]
                with av.open(chunk_file) as chunk:
                    vs = chunk.streams.video[0]
                    # the chunk's frames go where they are in the shot, in the chunk stream's units
                    shift = int(round((doc["first_pts"] - shot_first) * tb / vs.time_base)) - min(starts)
                    for packet in chunk.demux(vs):
                        if packet.size == 0 or packet.pts is None:
                            continue
                        packet.pts += shift
                        if packet.dts is not None:
                            dts = packet.dts + shift
                            if last_dts is not None and dts <= last_dts:
                                dts = min(last_dts + 1, packet.pts)  # keep decode order rising
                            packet.dts = last_dts = dts
                        packet.stream = vstream
                        container.mux(packet)
                audio.pump(float((doc["end_pts"] - shot_first) * tb))
            audio.close()
            container.close()
        with av.open(str(temp)) as check:
            counted = sum(1 for p in check.demux(check.streams.video[0]) if p.size)
        if counted != expected:
            raise MediaError(f"{out}: the joined file has {counted} frames, the chunks {expected}; nothing was "
                             "written; rerun the render")
        first_doc = docs[0]
        summary = {"frames": expected, "render_key": first_doc["render_key"], "params": first_doc.get("params"),
                   "node_devices": first_doc.get("devices"), "preroll": first_doc.get("preroll"),
                   "batch_size": first_doc.get("batch_size"),
                   "chunks": [{"frames": d["frames"], "output_sha256": d["output_sha256"], "host": d.get("host"),
                               "seconds": d.get("seconds")} for d in docs]}
        extra = {"source": str(source), "source_frames": [first_doc["frames"][0], docs[-1]["frames"][1]],
                 "frames_written": counted, "codec": first_doc["encode"]["codec"], "audio": audio.modes_used,
                 "joined_from": str(Path(folder).resolve())}
        graph = first_doc.get("graph")
        sidecar = sidecar_document(out, summary, graph_hash=first_doc["graph_hash"],
                                   graph_name=Path(graph).stem if graph else "graph",
                                   graph_path=Path(graph) if graph else None, node_id=first_doc["node"], extra=extra)
        with disk_errors(out):
            write_json_atomic(sidecar_path(out), sidecar)
            publish(temp, out)
    except BaseException:
        if container is not None:
            try:
                container.close()
            except Exception:  # already closed, or the disk is full: the file goes anyway
                pass
        temp.unlink(missing_ok=True)
        raise
    return {"frames": counted, "chunks": len(docs), "output": str(out), "audio": audio.modes_used}


def _encode_params(doc: dict[str, Any]) -> dict[str, Any]:
    """The rendered Encode node's audio settings, from a chunk's recorded params."""
    p = doc.get("params", {}).get(doc["node"], {})
    return {"mode": p.get("audio", "auto"), "bitrate": p.get("audio_bitrate", 192_000)}
