"""The editor's local server: the page, and the protocol of ``PROTOCOL.md`` on ``swapgraph.api``.

``create_app`` makes the Starlette app (its routes listed in one place, below); ``serve``
binds 127.0.0.1 and runs it with uvicorn. Handlers only read the request, call the API
and shape its answer: the pipeline is the API's. A request is data (JSON, never
evaluated, at most ``MAX_BODY`` bytes); a malformed one gets a 4xx and one line, a failure
a 500 and one line, and the server keeps serving. The files of a graph the page sends are
checked against the root before the API sees them: one outside it is a validation issue,
and the file is never looked at.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import webbrowser
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Awaitable, Callable, TextIO

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from swapgraph import api
from swapgraph.runtime.errors import GraphValidationError, SwapgraphError, UsageError
from swapgraph.runtime.node import Issue

from .access import (MAX_BODY, PRESET_PREFIX, TOKEN_COOKIE, BadRequest, Conflict, Guard, Refused, RequestError, Root,
                     TooLarge, new_token, own_origins, parse_json)
from .jobs import JobSocket

STATIC = Path(__file__).resolve().parent / "static"
#: the graph file a new, never saved graph resolves its relative paths against
UNSAVED = "untitled.json"
#: the folder under the root (never made) that stands in for files outside it when the engine validates
STAND_IN = ".swapgraph-outside"


def one_line(exc: BaseException) -> str:
    """An error as the one line the page shows: a SwapgraphError's own message (every
    problem of a graph joined), anything else as ``Type: message``."""
    if isinstance(exc, GraphValidationError):
        text = "; ".join(str(i) for i in exc.issues)
    elif isinstance(exc, (SwapgraphError, RequestError)):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def error_status(exc: BaseException) -> int:
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, SwapgraphError):
        return 422 if exc.exit_code == 2 else 500
    return 500


def answers(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Every failure of a handler as ``{"error": one line}`` with its status."""
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:  # noqa: BLE001 - one line to the page, and the server keeps serving
            status = error_status(exc)
            if status == 500 and not isinstance(exc, SwapgraphError):
                print(f"swapgraph edit: {request.url.path}: {one_line(exc)}", file=sys.stderr)
            return JSONResponse({"error": one_line(exc)}, status_code=status)
    return wrapped


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    """``body[name]`` checked against ``kind`` (a bool is no int); BadRequest otherwise."""
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name}: required field missing")
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise BadRequest(f"{name}: expected {names}, found {type(value).__name__}")
    return value


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, refused unread when its body is over ``MAX_BODY``."""
    too_large = TooLarge(f"the request body is over {MAX_BODY // 2**20} MiB; a graph is far smaller: send the graph "
                         "alone")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise too_large
    body = parse_json(bytes(data), "JSON body")
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object, found {type(body).__name__}")
    return body


def holds_a_graph(file: Path) -> bool:
    """Whether ``file`` is a graph document: a JSON object with "version" and "nodes" (read
    only when it is a regular file small enough to be one)."""
    try:
        if not file.is_file() or file.stat().st_size > MAX_BODY:
            return False
        document = parse_json(file.read_bytes(), "graph file")
    except (OSError, BadRequest):
        return False
    return isinstance(document, dict) and {"version", "nodes"} <= document.keys()


class Editor:
    """What the handlers share: the root, the graph opened at start, one preview cache for
    the server's life."""

    def __init__(self, root: Path, graph: Path | None, cache: api.PreviewCache) -> None:
        self.root = Root(root)
        self.graph = self.root.inside(graph) if graph is not None else None
        self.cache = cache

    # --- graphs from requests ------------------------------------------------------
    def graph_file(self, path: str | None) -> Path:
        """Where a document's relative paths resolve: its file under the root; a preset or
        a graph never saved resolves against the root."""
        if path is None:
            return self.root.folder / UNSAVED
        if path.startswith(PRESET_PREFIX):
            return self.root.folder / Path(path.removeprefix(PRESET_PREFIX)).name
        return self.root.resolve(path)

    def checked(self, body: dict[str, Any]) -> tuple[api.GraphSpec, list[api.FileParam]]:
        """The request's graph and its files outside the root (found without asking the file
        system about them)."""
        spec = api.load(field(body, "document", dict), path=self.graph_file(field(body, "path", str, required=False)))
        return spec, [f for f in api.file_params(spec) if not self.root.contains(f.path)]

    def outside_issue(self, f: api.FileParam) -> Issue:
        return Issue(f"node {f.node!r} param {f.param!r}",
                     f"{os.path.abspath(f.path)} is outside the editor's root {self.root.folder}",
                     f"choose a file under {self.root.folder}, or start swapgraph edit with a --root that holds it")

    def spec(self, body: dict[str, Any]) -> api.GraphSpec:
        """The request's graph, refused as a validation error when one of its files lies out of the root."""
        spec, outside = self.checked(body)
        if outside:
            raise GraphValidationError([self.outside_issue(f) for f in outside])
        return spec

    def engine_issues(self, spec: api.GraphSpec, outside: list[api.FileParam]) -> list[Issue]:
        """``api.validate``'s issues, without its looking at the files outside the root: each
        is replaced by a file of the same name in a folder under the root that is never made
        (``STAND_IN``), and what the engine says about that stand-in is dropped, so the page
        still gets every other problem at once. Not probed: those files are issues already."""
        if not outside:
            return api.validate(spec)
        stand_ins: dict[tuple[str, str], str] = {}
        for i, f in enumerate(outside):
            folder = self.root.folder / f"{STAND_IN}-{i}"
            spec = spec.with_params(f.node, **{f.param: str(folder / f.path.name)})
            stand_ins[f.node, f.param] = str(folder)

        def about_a_stand_in(issue: Issue) -> bool:
            subject = api.issue_subject(issue)
            folder = stand_ins.get((subject["node"], subject["param"]))
            return folder is not None and folder in str(issue)

        return [i for i in api.validate(spec, probe=False) if not about_a_stand_in(i)]

    def issue(self, issue: Any) -> dict[str, Any]:
        return {"where": issue.where, "problem": issue.problem, "fix": issue.fix, **api.issue_subject(issue)}

    # --- HTTP handlers ---------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        index = STATIC / "index.html"
        response: Response = (FileResponse(index, headers={"Cache-Control": "no-store"}) if index.is_file() else
                              JSONResponse({"error": "the editor's page is not installed (editor/static/index.html)"},
                                           404))
        token = request.query_params.get("token")
        if token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def session(self, request: Request) -> Response:
        try:
            release = version("swapgraph")
        except PackageNotFoundError:
            release = "unknown"
        return JSONResponse({"root": str(self.root.folder),
                             "graph": self.root.relative(self.graph) if self.graph else None,
                             "presets": sorted(api.presets()), "version": release})

    async def nodes(self, request: Request) -> Response:
        types, port_types = {}, {}

        def port_type(t: type) -> str:
            port_types[t.__name__] = [c.__name__ for c in t.__mro__ if c is not object]
            return t.__name__

        for name, cls in api.node_types().items():
            s = cls.schema
            types[name] = {
                "category": s.category, "doc": cls.doc(), "origin": api.node_origin(name), "devices": list(s.devices),
                "inputs": {p: {"type": port_type(d.type), "required": d.required, "doc": d.doc}
                           for p, d in s.inputs.items()},
                "outputs": {p: {"type": port_type(d.type), "doc": d.doc} for p, d in s.outputs.items()},
                "params": s.params.model_json_schema(),
            }
        return JSONResponse({"types": types, "port_types": port_types})

    async def files(self, request: Request) -> Response:
        rel = request.query_params.get("dir") or "."
        folder = self.root.resolve(rel, "dir")
        if not folder.is_dir():
            return JSONResponse({"error": f"{rel}: not a folder under the root"}, 404)
        entries = []
        for entry in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower())):
            if entry.name.startswith(".") or not entry.exists() or not self.root.contains(entry):
                continue  # hidden (partial outputs), a broken symlink, or one leading out
            is_dir = entry.is_dir()
            entries.append({"name": entry.name, "kind": "dir" if is_dir else "file",
                            "size": None if is_dir else entry.stat().st_size})
        shown = self.root.relative(folder)
        return JSONResponse({"dir": "" if shown == "." else shown, "entries": entries})

    async def open_graph(self, request: Request) -> Response:
        rel = request.query_params.get("path")
        if not rel:
            raise BadRequest("path: required query parameter missing")
        if rel.startswith(PRESET_PREFIX):
            name = rel.removeprefix(PRESET_PREFIX)
            presets = api.presets()
            if name not in presets:
                return JSONResponse({"error": f"{rel}: no such preset; the presets: {', '.join(sorted(presets))}"},
                                    404)
            return JSONResponse({"path": rel, "document": api.load(presets[name]).document, "read_only": True})
        file = self.root.resolve(rel)
        if not file.is_file():
            return JSONResponse({"error": f"{rel}: no such graph file under the root"}, 404)
        return JSONResponse({"path": self.root.relative(file), "document": api.load(file).document,
                             "read_only": not os.access(file, os.W_OK)})

    async def validate(self, request: Request) -> Response:
        body = await json_body(request)
        spec, outside = self.checked(body)
        issues = await run_in_threadpool(self.engine_issues, spec, outside)
        return JSONResponse({"issues": [self.issue(i) for i in issues + [self.outside_issue(f) for f in outside]]})

    async def save(self, request: Request) -> Response:
        body = await json_body(request)
        rel = field(body, "path", str)
        document = field(body, "document", dict)
        if rel.startswith(PRESET_PREFIX):
            raise Refused(f"{rel}: presets are read-only; save under a path in the root")
        if not rel.endswith(".json"):
            raise BadRequest(f"{rel}: a graph file ends with .json")
        file = self.root.resolve(rel)
        if not file.parent.is_dir():
            return JSONResponse({"error": f"{rel}: the folder does not exist under the root"}, 404)
        if file.is_dir():
            raise Conflict(f"{rel}: is a folder; save the graph under a file name that ends with .json")
        if file.exists() and not holds_a_graph(file):
            raise Conflict(f"{rel}: is not a graph file (a JSON object with \"version\" and \"nodes\"), and Save "
                           "replaces only graph files; choose another name")
        try:
            json.dumps(document, allow_nan=False)
        except ValueError:
            raise BadRequest(f"{rel}: the graph holds NaN or Infinity, which standard JSON cannot write; give those "
                             "values a finite number") from None
        written = await run_in_threadpool(api.save_graph, document, file)
        return JSONResponse({"path": self.root.relative(file), "written": written})

    async def shot(self, request: Request) -> Response:
        body = await json_body(request)
        spec = self.spec(body)
        info = await run_in_threadpool(api.shot_info, spec, field(body, "node", str))
        source = self.root.relative(info.source) if self.root.contains(info.source) else str(info.source)
        return JSONResponse({"frames": info.frames, "fps": f"{info.fps.numerator}/{info.fps.denominator}",
                             "source": source, "node": info.node, "width": info.width, "height": info.height})

    async def preview(self, request: Request) -> Response:
        body = await json_body(request)
        spec = self.spec(body)
        node = field(body, "node", str)
        frame = field(body, "frame", int)
        if frame < 0:
            raise BadRequest(f"frame: expected a frame number (0-based), found {frame}")
        output = field(body, "output", str, required=False)

        def render() -> tuple[bytes, str | None]:
            view = api.preview(spec, node, frame, output=output, cache=self.cache)
            return view.png(), view.shown

        png, shown = await run_in_threadpool(render)
        return Response(png, media_type="image/png",
                        headers={"X-Swapgraph-Frame": str(frame), "X-Swapgraph-Output": shown or "",
                                 "Cache-Control": "no-store"})

    async def stats(self, request: Request) -> Response:
        cache = self.cache
        return JSONResponse({"cache": {"hits": cache.hits, "misses": cache.misses, "entries": cache.entries,
                                       "bytes": cache.bytes},
                             "computed": dict(cache.computed)})


def create_app(root: Path, graph: Path | None = None, token: str | None = None, *,
               origins: list[str] | None = None, cache: api.PreviewCache | None = None) -> Starlette:
    """The editor's app: the page and its protocol, for files under ``root``.

    ``graph``: the graph file opened at start. ``token``: what every request must carry
    (default: a new random one, in ``app.state.token``). ``origins``: the page's own
    origins (default: ``http://127.0.0.1:8000`` and ``http://localhost:8000``; ``serve``
    passes the bound port's). ``cache``: the preview cache (default: a new one, kept for
    the app's life).
    """
    editor = Editor(Path(root), Path(graph) if graph else None, cache or api.PreviewCache())
    token = token or new_token()
    origins = origins or own_origins("127.0.0.1", 8000)
    sockets = JobSocket(editor.root, editor.spec, one_line)
    routes = [
        Route("/", answers(editor.page)),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        Route("/api/session", answers(editor.session)),
        Route("/api/nodes", answers(editor.nodes)),
        Route("/api/files", answers(editor.files)),
        Route("/api/graph", answers(editor.open_graph)),
        Route("/api/validate", answers(editor.validate), methods=["POST"]),
        Route("/api/save", answers(editor.save), methods=["POST"]),
        Route("/api/shot", answers(editor.shot), methods=["POST"]),
        Route("/api/preview", answers(editor.preview), methods=["POST"]),
        Route("/api/stats", answers(editor.stats)),
        WebSocketRoute("/ws", sockets.serve),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, token=token, origins=origins)])
    app.state.token = token
    app.state.editor = editor
    return app


def serve(graph: Path | None = None, root: Path | None = None, *, host: str = "127.0.0.1", port: int = 0,
          open_browser: bool = True, out: TextIO | None = None) -> None:
    """Run the editor until interrupted: bind ``host:port`` (0: a free port), print the
    URL with its token, open it in the browser unless told not to."""
    import uvicorn

    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: expected 0..65535 (0: a free port)")
    if graph is not None and not Path(graph).is_file():
        raise UsageError(f"{graph}: graph file not found; check the path, or start without one")
    root = Path(root) if root else (Path(graph).resolve().parent if graph else Path.cwd())
    if not root.is_dir():
        raise UsageError(f"--root {root}: not a folder")
    if graph is not None and not Root(root).contains(Path(graph)):
        raise UsageError(f"{graph}: not under the root {root}; give a --root that holds it")
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise UsageError(f"--port {port}: cannot listen on {host} ({exc.strerror or exc}); choose another port, "
                         "or 0 for a free one") from None
    # listening before the URL is printed: a browser (or a script reading the URL) that
    # connects while uvicorn still starts is queued, not refused
    listener.listen(128)
    bound = listener.getsockname()[1]
    token = new_token()
    app = create_app(root, graph, token, origins=own_origins(host, bound))
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}/?token={token}"
    print(f"swapgraph edit: {url}", file=out or sys.stdout, flush=True)
    if open_browser:
        webbrowser.open(url)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
