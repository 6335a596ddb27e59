"""The editor's WebSocket: runs and renders started from the page, their progress, cancel.

Each run or render goes in a thread of its own (``api.run`` / ``api.render`` with a
progress callback and a ``CancelToken``); its messages reach the socket through the
event loop, progress at most ``PROGRESS_EVERY`` seconds apart. Closing the socket
cancels the runs it started.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

from swapgraph import api
from swapgraph.runtime.errors import Cancelled

from .access import BadRequest, Root, parse_json

#: seconds between two progress messages of one job (the last one is always sent)
PROGRESS_EVERY = 0.1
#: outputs the QC runner can measure against their plate
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv"}

Post = Callable[[dict[str, Any]], None]
#: a job's work in its thread: the graph it ran, the files written, the frames
Work = Callable[["Progress", api.CancelToken], tuple[api.GraphSpec, list[Path], int]]


class Progress:
    """``progress(done, total)`` for the API: frames, frames/s and ETA as messages, throttled."""

    def __init__(self, post: Post, job: Any, chunks: int | None = None) -> None:
        self.post, self.job, self.chunks = post, job, chunks
        self.started = time.monotonic()
        self.last_sent = float("-inf")
        self.done, self.total = 0, None

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self.last_sent < PROGRESS_EVERY and done != total:
            return
        self.last_sent = now
        elapsed = now - self.started
        fps = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / fps if total is not None and fps > 0 else None
        message = {"op": "progress", "id": self.job, "done": done, "total": total, "fps": round(fps, 2),
                   "eta": None if eta is None else round(eta, 1)}
        if self.chunks is not None:
            message["chunks"] = self.chunks
        self.post(message)


def field(message: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = message.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRequest(f"{name}: expected {kind.__name__}, found {type(value).__name__}")
    return value


def qc_summary(spec: api.GraphSpec, outputs: list[Path]) -> dict[str, Any] | None:
    """The QC runner's summary of a swapped video the run wrote, against its plate; None
    when the graph swaps no face or writes no video."""
    if not spec.nodes_of_type("Swap"):
        return None
    written = {p.resolve() for p in outputs}
    encodes = spec.nodes_of_type("Encode")
    for f in api.file_params(spec):
        if (f.node in encodes and f.role == "output" and f.path.resolve() in written
                and f.path.suffix.lower() in VIDEO_SUFFIXES):
            from swapgraph.qc.runner import run_qc

            plate = api.shot_info(spec, f.node).source
            summary = run_qc(f.path, plate)["summary"]
            # JSON has no NaN: a measure QC could not take is null
            return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}
    return None


class JobSocket:
    """The ``/ws`` endpoint: one instance for the app, a job table per socket."""

    def __init__(self, root: Root, spec: Callable[[dict[str, Any]], api.GraphSpec],
                 one_line: Callable[[BaseException], str]) -> None:
        self.root, self.spec, self.one_line = root, spec, one_line

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        jobs: dict[Any, api.CancelToken] = {}

        def post(message: dict[str, Any]) -> None:  # from any thread
            try:
                loop.call_soon_threadsafe(outbox.put_nowait, message)
            except RuntimeError:
                pass  # the server stopped: nobody listens

        async def pump() -> None:
            try:
                while True:
                    await websocket.send_json(await outbox.get())
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass  # the page went away

        sender = asyncio.create_task(pump())
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                self.handle(text, post, jobs, loop)
        except WebSocketDisconnect:
            pass
        finally:
            for token in jobs.values():
                token.cancel()
            sender.cancel()

    def handle(self, text: str, post: Post, jobs: dict[Any, api.CancelToken], loop: asyncio.AbstractEventLoop) -> None:
        job = None
        try:
            message = parse_json(text, "message")
            if not isinstance(message, dict):
                raise BadRequest(f"malformed message: expected a JSON object, found {type(message).__name__}")
            job = message.get("id")
            if not isinstance(job, (str, int)) or isinstance(job, bool):
                job = None
            op = message.get("op")
            if op == "ping":
                post({"op": "pong"})
            elif op == "cancel":
                if job not in jobs:
                    raise BadRequest(f"cancel: no run {job!r} is going")
                jobs[job].cancel()
            elif op in ("run", "render"):
                if job is None:
                    raise BadRequest(f"{op}: id: expected a string or a number")
                if job in jobs:
                    raise BadRequest(f"{op}: a run with id {job!r} is already going")
                work = self.run_job(message) if op == "run" else self.render_job(message)
                token = jobs[job] = api.CancelToken()
                threading.Thread(target=self.work, args=(work, job, token, post, jobs, loop),
                                 name=f"swapgraph-edit-{op}-{job}", daemon=True).start()
            else:
                raise BadRequest(f"op: expected run, render, cancel or ping, found {op!r}")
        except Exception as exc:  # noqa: BLE001 - one line to the page; the socket stays open
            post({"op": "error", "id": job, "message": self.one_line(exc)})

    def run_job(self, message: dict[str, Any]) -> Work:
        spec = self.spec(message)
        frames_text = field(message, "frames", str, required=False)
        frames = api.parse_frames(frames_text) if frames_text else None

        def work(progress: Progress, cancel: api.CancelToken) -> tuple[api.GraphSpec, list[Path], int]:
            report = api.run(spec, frames=frames, progress=progress, cancel=cancel)
            return spec, report.outputs, report.frames
        return work

    def render_job(self, message: dict[str, Any]) -> Work:
        spec = self.spec(message)
        out = self.root.resolve(field(message, "out", str), "out")
        chunk_size = field(message, "chunk_size", int, required=False) or api.DEFAULT_CHUNK_SIZE
        workers = field(message, "workers", int, required=False) or 1
        if chunk_size < 1 or not 1 <= workers <= 64:
            raise BadRequest("render: chunk_size must be at least 1 and workers 1..64")
        frames_text = field(message, "frames", str, required=False)
        frames = api.parse_frames(frames_text) if frames_text else None

        def work(progress: Progress, cancel: api.CancelToken) -> tuple[api.GraphSpec, list[Path], int]:
            plan = api.plan_render(spec, out, chunk_size=chunk_size, frames=frames)
            progress.chunks = len(plan.chunks)
            result = api.render(plan, workers=workers, progress=progress, cancel=cancel)
            return spec, [Path(result["output"])], int(result["frames"])
        return work

    def work(self, work: Work, job: Any, token: api.CancelToken, post: Post, jobs: dict[Any, api.CancelToken],
             loop: asyncio.AbstractEventLoop) -> None:
        progress = Progress(post, job)
        started = time.monotonic()
        try:
            spec, outputs, frames = work(progress, token)
            if progress.total is not None and progress.done != progress.total:
                progress(progress.total, progress.total)
            try:
                qc = qc_summary(spec, outputs)
            except Exception as exc:  # noqa: BLE001 - the output is written; QC's failure is a note
                qc = {"error": self.one_line(exc)}
            shown = [self.root.relative(p) if self.root.contains(p) else str(p) for p in outputs]
            answer = {"op": "done", "id": job, "outputs": shown, "frames": frames,
                      "seconds": round(time.monotonic() - started, 3), "qc": qc}
        except Cancelled:
            answer = {"op": "cancelled", "id": job}
        except Exception as exc:  # noqa: BLE001 - the page shows the one line
            answer = {"op": "error", "id": job, "message": self.one_line(exc)}
        try:
            loop.call_soon_threadsafe(jobs.pop, job, None)
        except RuntimeError:
            pass  # the server stopped
        post(answer)
