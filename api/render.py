"""Rendering a shot in chunks on Dask: the plan, and what each worker runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from swapgraph.farm.cluster import ChunkFailed, Farm, connect, progress_reporter, render as render_plan, worker_address
from swapgraph.farm.join import clean_chunks as clean_folder, join_chunks as join_folder
from swapgraph.farm.plan import DEFAULT_CHUNK_SIZE, ChunkJob, RenderPlan, make_plan
from swapgraph.runtime.errors import Cancelled, SwapgraphError
from swapgraph.runtime.executor import CancelToken

from .graphs import GraphSpec, load
from .run import run_chunk


def plan_render(spec: GraphSpec | str | Path, out: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                node: str | None = None, frames: tuple[int, int | None] | None = None, batch_size: int | None = None,
                device: str | None = None, chunks_dir: Path | None = None) -> RenderPlan:
    """Validate a graph for a render into ``out`` and split its shot into chunks (on whole
    batches) in ``chunks_dir`` (default ``OUT.chunks``). ``node``: the sink to join, when
    the graph has several that can be chunked."""
    spec = load(spec)
    return make_plan(spec.document, spec.path, list(spec.overrides), Path(out), chunk_size=chunk_size, node=node,
                     frames=frames, batch_size=batch_size, device=device, chunks_dir=chunks_dir)


def render(spec: GraphSpec | str | Path | RenderPlan, out: Path | None = None, *, workers: int | None = None,
           scheduler: str | None = None, retries: int = 2, progress: Callable[[int, int], None] | None = None,
           cancel: CancelToken | None = None, log: Callable[[str], None] | None = None, farm: Farm | None = None,
           **plan_args: Any) -> dict[str, Any]:
    """Render a shot in chunks on Dask and join them into one file with the source audio.

    ``workers`` local worker processes (a LocalCluster; default 1), or ``scheduler``, the
    address of a farm's Dask scheduler (GPU workers carry the resource ``GPU=1``). Chunks
    already done with the same graph and settings are skipped; a failed chunk is retried
    ``retries`` times on other workers. ``progress(done, total)`` counts frames over all
    chunks; ``cancel.cancel()`` stops the render (chunks done are kept for the next one).
    ``plan_args`` go to :func:`plan_render` (or pass a plan). ``farm``: a connection
    several renders share, from :func:`connect_farm` (the Dask cluster starts once).
    """
    plan = spec if isinstance(spec, RenderPlan) else plan_render(spec, out, **plan_args)
    return render_plan(plan, chunk_task, workers=workers, scheduler=scheduler, retries=retries,
                       on_progress=progress, log=log or (lambda line: None), cancel=cancel, farm=farm)


def connect_farm(workers: int | None = None, scheduler: str | None = None):
    """A context manager: a Dask connection (a LocalCluster of ``workers``, or a farm's
    ``scheduler``) for several :func:`render` calls, closed when the block ends."""
    return connect(workers, scheduler)


def chunk_task(job: ChunkJob, cpus: int | None, run_id: str) -> dict[str, Any]:
    """A render's chunk in a Dask worker: :func:`run_chunk`, reporting frames to the render,
    failures as ``ChunkFailed`` (one line, the worker, the exit code). The worker process
    (and its model cache) lives across chunks."""
    worker = worker_address()
    try:
        manifest = run_chunk(job, cpus=cpus, run_id=run_id,
                             progress=progress_reporter(run_id, f"{job.first}-{job.last}")).manifest
        failure = None
    except Cancelled:
        raise  # a stop, not a failure: never retried
    except SwapgraphError as exc:
        failure = ChunkFailed(worker, str(exc), exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - every failure reaches the render as one line
        failure = ChunkFailed(worker, f"{type(exc).__name__}: {exc}", 1)
    if failure is not None:
        # raised outside the handler, so it carries no chain of library exceptions that Dask
        # could not send back (PyAV's do not unpickle): the render gets it as it is
        raise failure
    return manifest


def chunk_job(spec: GraphSpec | str | Path, *, frames: tuple[int, int], manifest: Path,
              render_frames: tuple[int, int] | None = None, batch_size: int | None = None,
              device: str | None = None, node: str | None = None) -> ChunkJob:
    """One chunk as a job, from a graph whose overrides already point the sink at the
    chunk's own file (what a farm manager's command line gives)."""
    graph = load(spec).graph()
    document = {**graph.document, "name": graph.name}
    return ChunkJob(document, graph.path, frames[0], frames[1], Path(manifest), render_frames, batch_size, device, node)


def clean_chunks(chunks: Path) -> int:
    """Delete what a render wrote in its chunks folder (the files its manifests name, and the
    folder when nothing else is left); returns the files deleted."""
    return clean_folder(Path(chunks))


def join_chunks(chunks: Path, out: Path) -> dict[str, Any]:
    """Join the finished chunks in the folder ``chunks`` (their manifests) into ``out``."""
    return join_folder(Path(chunks), Path(out))
