"""Chunks on Dask ``distributed``: a LocalCluster, or a scheduler's workers on a farm.

``render`` runs a plan's unfinished chunks (GPU workers carry the ``GPU`` resource),
retries a failed chunk on another worker, reports frames done as the workers send them,
stops on a cancel, then joins. What a worker does with a chunk is the caller's ``task``
(the Python API's chunk runner): the farm knows no graph loading and no CLI.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from swapgraph.runtime.errors import ArgumentError, Cancelled, SwapgraphError, UsageError
from swapgraph.runtime.files import OutputLocks, folder_marker, remove, write_folder_marker
from swapgraph.runtime.provenance import sidecar_path

from .join import join_chunks
from .manifests import chunk_is_done, manifest_files, read_manifest
from .plan import ChunkJob, RenderPlan

class ChunkFailed(Exception):
    """A chunk failed on a worker: which worker, the one-line message, the exit code."""

    def __init__(self, worker: str, message: str, exit_code: int) -> None:
        super().__init__(worker, message, exit_code)
        self.worker, self.message, self.exit_code = worker, message, exit_code

    def __str__(self) -> str:
        return f"{self.message} (on {self.worker})"


PROGRESS_TOPIC = "swapgraph-progress"


def worker_address() -> str:
    """This Dask worker's address, or host:pid outside a worker."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def progress_reporter(run_id: str, chunk: str, every: float = 0.5) -> Callable[[int, int | None], None] | None:
    """A progress callback for a chunk run in a Dask worker: frames done, sent to the
    render's client as Dask events (twice a second). None outside a worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last = [0.0]

    def report(done: int, total: int | None = None) -> None:
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
            raise ArgumentError("scheduler", scheduler, f"cannot reach it ({exc}); check the address and that "
                                "`dask scheduler` runs there") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR, resources={"GPU": 1} if gpu else None)
    return Client(cluster), cluster


@dataclass
class Farm:
    """A Dask client and what chunks need to know of it: whether its workers are this
    machine's (then each gets an equal share of the cores) and how many. No client (0
    workers): chunks run one after another in this process."""

    client: Any
    local: bool
    workers: int


def _check_workers(workers: int | None, scheduler: str | None) -> None:
    if workers is not None and not 0 <= workers <= 256:
        raise ArgumentError("workers", str(workers), "expected 0..256 (0: in this process, without Dask)")
    if workers == 0 and scheduler:
        raise ArgumentError("workers", "0", "runs chunks in this process; a scheduler's workers cannot")


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None) -> Iterator[Farm]:
    """A LocalCluster of ``workers`` processes (default 1), or a farm's ``scheduler``,
    closed when the block ends. A LocalCluster's workers carry ``GPU=1`` on a CUDA machine.
    ``workers=0``: no Dask at all, chunks run in this process (no cluster to start: short
    renders on one machine)."""
    import torch

    _check_workers(workers, scheduler)
    if workers == 0:
        yield Farm(None, True, 0)
        return
    client, cluster = _cluster(workers or 1, scheduler, gpu=torch.cuda.is_available() and not scheduler)
    try:
        yield Farm(client, cluster is not None, workers or 1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


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
             log: Callable[[str], None] = print, cancel: Any = None) -> dict[str, int]:
    """Run ``fn(*args)`` for every job on the client's workers; return each job's attempts.

    A job that fails (``ChunkFailed`` with exit code 1, or any error) is retried up to
    ``retries`` times, each time on workers it has not failed on while there are any.
    A user error (exit code 2: bad input, a full disk) stops everything at once: another
    worker would fail the same way. A worker that dies mid-job is Dask's to replace, and
    its job runs again elsewhere without counting as a try. ``cancel`` (anything with a
    ``cancelled`` flag, such as the executor's ``CancelToken``) stops every job and raises
    ``Cancelled``.
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
    while not queue.is_empty():
        if cancel is not None and cancel.cancelled:
            client.cancel(list(futures))
            raise Cancelled("render cancelled; the chunks done so far are kept for the next render")
        if not queue.has_ready():
            time.sleep(0.05)
            continue
        future = queue.next()
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
            raise _job_error(name, attempts[name], reason, exit_code)
        elsewhere = " on another worker" if len(workers) > len(failed_on[name]) else ""
        log(f"render: {name} failed on {where or 'a worker'} ({exc}); retrying{elsewhere}")
        retry = submit(name)
        futures[retry] = name
        queue.add(retry)
    return attempts


def _job_error(name: str, attempts: int, reason: str, exit_code: int) -> SwapgraphError:
    tries = f" after {attempts} tries" if attempts > 1 else ""
    err = (UsageError if exit_code == 2 else SwapgraphError)(f"{name} failed{tries}: {reason}")
    err.exit_code = 2 if exit_code == 2 else 1
    return err


def run_inline(jobs: dict[str, tuple], fn: Callable[..., Any], *, retries: int,
               on_done: Callable[[str, Any], None] | None = None, log: Callable[[str], None] = print,
               cancel: Any = None) -> dict[str, int]:
    """``run_jobs`` without Dask: each job in this process, in order, with the same retries
    (a user error stops at once) and the same one-line errors."""
    attempts = {name: 0 for name in jobs}
    for name, args in jobs.items():
        while True:
            if cancel is not None and cancel.cancelled:
                raise Cancelled("render cancelled; the chunks done so far are kept for the next render")
            attempts[name] += 1
            try:
                result = fn(*args)
            except ChunkFailed as exc:
                if exc.exit_code == 2 or attempts[name] > retries:
                    raise _job_error(name, attempts[name], exc.message, exc.exit_code) from None
                log(f"render: {name} failed ({exc.message}); retrying")
                continue
            if on_done:
                on_done(name, result)
            break
    return attempts


def render(plan: RenderPlan, task: Callable[[ChunkJob, int | None, str], dict[str, Any]], *,
           workers: int | None = None, scheduler: str | None = None, retries: int = 2,
           on_progress: Callable[[int, int], None] | None = None, log: Callable[[str], None] = print,
           cancel: Any = None, farm: Farm | None = None) -> dict[str, Any]:
    """Run the plan's unfinished chunks on Dask, then join them into ``plan.out``.

    ``task(job, cpus, run_id)`` runs one chunk in a worker and returns its manifest; it
    must be importable by the workers (a module-level function). ``farm``: a connection
    from :func:`connect` that several renders share (else one is opened for this render).
    """
    _check_workers(workers, scheduler)
    if retries < 0:
        raise ArgumentError("retries", str(retries), "expected 0 or more")
    with OutputLocks([plan.chunks_dir]):  # one render per chunks folder at a time
        return _render(plan, task, workers=workers, scheduler=scheduler, retries=retries, on_progress=on_progress,
                       log=log, cancel=cancel, farm=farm)


def _render(plan: RenderPlan, task: Callable[[ChunkJob, int | None, str], dict[str, Any]], *,
            workers: int | None, scheduler: str | None, retries: int, on_progress: Callable[[int, int], None] | None,
            log: Callable[[str], None], cancel: Any, farm: Farm | None) -> dict[str, Any]:
    plan.chunks_dir.mkdir(parents=True, exist_ok=True)
    if folder_marker(plan.chunks_dir) is None:
        write_folder_marker(plan.chunks_dir, "chunks")  # its files are the ones its manifests name
    for stale in plan.chunks_dir.glob(".chunk-*.partial-*"):  # left by a killed run
        remove(stale)
    # chunks of another plan (another chunk size or range, or another graph): the render owns
    # its chunks folder, and join would refuse a mix
    names = {c.name for c in plan.chunks}
    for manifest in plan.chunks_dir.glob("chunk-*.manifest.json"):
        doc = read_manifest(manifest)
        name = manifest.name.removesuffix(".manifest.json")
        if name not in names or doc is None or doc.get("render_key") != plan.key:
            outputs = manifest_files(manifest, doc) if doc else [manifest.with_name(name + plan.suffix)]
            for path in (manifest, *outputs, *map(sidecar_path, outputs)):
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
        opened = contextlib.nullcontext(farm) if farm is not None else connect(workers, scheduler)
        with opened as farm:
            client = farm.client
            cpus = max(1, (os.cpu_count() or 1) // farm.workers) if farm.local and farm.workers else None
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

            jobs = {name: (plan.job(c), cpus, run_id) for name, c in by_name.items()}
            if client is None:  # no Dask: in this process, one chunk after another
                attempts = run_inline(jobs, task, retries=retries, on_done=on_done, log=log, cancel=cancel)
            else:
                client.subscribe_topic(PROGRESS_TOPIC, on_event)
                attempts = run_jobs(client, jobs, task, retries=retries, prefix=plan.key[:12],
                                    resources={"GPU": 1} if _needs_gpu(plan, client) else None, on_done=on_done,
                                    log=log, cancel=cancel)
    chunk_seconds = time.perf_counter() - started
    result = join_chunks(plan.chunks_dir, plan.out, expect=plan)
    result.update({"chunks_run": len(todo), "chunks_skipped": len(plan.chunks) - len(todo),
                   "retries": sum(n - 1 for n in attempts.values()), "chunk_seconds": round(chunk_seconds, 3),
                   "run_id": run_id})
    return result
