"""Who may talk to the editor's server and which files it may touch.

Every HTTP request and WebSocket carries the session's token (query ``token``, header
``X-Swapgraph-Token`` or cookie ``swapgraph_token``) and comes from the server's own
origin: a page on another site cannot drive it, even though it listens on localhost.
Paths from requests are relative to the root and never lead out of it. A request's JSON is
bounded (``MAX_BODY`` bytes, ``MAX_DEPTH`` levels): a graph is a small, shallow document.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers, QueryParams
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

TOKEN_COOKIE = "swapgraph_token"
TOKEN_HEADER = "x-swapgraph-token"
PRESET_PREFIX = "preset:"
#: the largest request body read (bytes), and the deepest JSON nesting taken
MAX_BODY = 8 * 2**20
MAX_DEPTH = 64
#: the longest file name and path (bytes) a request may give
NAME_MAX, PATH_MAX = 255, 4096


class RequestError(Exception):
    """A request the editor answers with a 4xx and this one line."""

    status = 400


class Refused(RequestError):
    """A request for something the editor does not give: a path out of the root (403)."""

    status = 403


class BadRequest(RequestError):
    """A malformed request: bad JSON, a missing or wrongly typed field, a path too long (400)."""

    status = 400


class Conflict(RequestError):
    """A request the files under the root do not allow: saving over a folder or a plate (409)."""

    status = 409


class TooLarge(RequestError):
    """A request body over ``MAX_BODY`` (413)."""

    status = 413


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON data nests lists and objects more than ``limit`` levels (walked without
    recursion, so any depth is measured)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(data: bytes | str, what: str) -> Any:
    """``data`` as JSON; BadRequest when it is malformed or nested deeper than ``MAX_DEPTH``
    (Python's parser gives up with RecursionError, and deep data breaks later copies too)."""
    try:
        value = json.loads(data)
        deep = too_deep(value)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed {what}: {exc}") from None
    except RecursionError:
        deep = True
    if deep:
        raise BadRequest(f"malformed {what}: nested deeper than {MAX_DEPTH} levels; a graph is a shallow document, "
                         "send it alone")
    return value


def abridged(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters for a one-line message."""
    return text if len(text) <= width else f"{text[:width - 1]}…"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def own_origins(host: str, port: int) -> list[str]:
    """The origins the page is served from: the bound address, and localhost for 127.0.0.1."""
    names = [host] + (["localhost"] if host in ("127.0.0.1", "::1") else [])
    return [f"http://{'[' + n + ']' if ':' in n else n}:{port}" for n in names]


class Guard:
    """ASGI middleware: 403 and a one-line reason for a request or socket without the
    token, from another origin, or addressed to another host (DNS rebinding)."""

    def __init__(self, app: ASGIApp, token: str, origins: list[str]) -> None:
        self.app = app
        self.token = token
        self.origins = set(origins)
        self.hosts = {urlsplit(o).netloc for o in origins}

    def refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        if headers.get("host") not in self.hosts:
            return f"host {headers.get('host')!r} is not this editor's; open the URL it printed"
        origin = headers.get("origin")
        if origin is None and (scope["type"] == "websocket" or scope.get("method") not in ("GET", "HEAD")):
            return "no Origin header; the editor answers only its own page"
        if origin is not None and origin not in self.origins:
            return f"origin {origin!r} is not this editor's; open the URL it printed"
        given = (QueryParams(scope.get("query_string", b"")).get("token") or headers.get(TOKEN_HEADER)
                 or cookie_parser(headers.get("cookie", "")).get(TOKEN_COOKIE))
        if not given or not secrets.compare_digest(given.encode(), self.token.encode()):
            return "missing or wrong token; open the URL with ?token= that swapgraph edit printed"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"error": reason}, status_code=403)
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        socket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            await socket.send_denial_response(response)
        else:
            await socket.close(code=1008, reason=reason)


class Root:
    """The folder the editor reads and writes under; ``resolve`` turns a request's path
    into a file inside it, or refuses."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        #: the root as it was named, before its symlinks were resolved
        self.named = Path(os.path.abspath(folder))

    def resolve(self, rel: str, name: str = "path") -> Path:
        """``rel`` (relative to the root, ``/`` separated; the request's field ``name``) as an
        absolute path inside the root. Absolute paths, ``..``, symlinks that lead out and paths
        longer than a file system takes are refused."""
        if not isinstance(rel, str):
            raise BadRequest(f"{name}: expected a string, found {type(rel).__name__}")
        if "\0" in rel:
            raise BadRequest(f"{name}: contains a NUL character")
        longest = max(Path(rel).parts, key=lambda part: len(os.fsencode(part)), default="")
        if len(os.fsencode(longest)) > NAME_MAX or len(os.fsencode(str(self.folder / rel))) >= PATH_MAX:
            raise BadRequest(f"{name}: {abridged(rel)!r} ({len(rel)} characters) is longer than a file system takes "
                             f"(a name up to {NAME_MAX} bytes, a path up to {PATH_MAX - 1}); choose a shorter path")
        if Path(rel).is_absolute() or rel.startswith("~"):
            raise Refused(f"{rel}: absolute paths are refused; give a path relative to the root {self.folder}")
        if ".." in Path(rel).parts:
            raise Refused(f"{rel}: '..' is refused; give a path inside the root {self.folder}")
        return self.inside(self.folder / rel, rel)

    def inside(self, path: Path, shown: str | None = None) -> Path:
        """``path`` with its symlinks resolved, refused when that leads out of the root."""
        real = Path(path).resolve()
        if real != self.folder and self.folder not in real.parents:
            raise Refused(f"{shown or path}: leads out of the root {self.folder} (a symlink or a path elsewhere); "
                          "refused")
        return real

    def contains(self, path: Path) -> bool:
        """Whether ``path``, its symlinks resolved, lies in the root. A path out of the root as
        written is out without the file system being asked about it: the answer tells nothing
        of a file elsewhere."""
        written = Path(os.path.abspath(path))
        if not any(written == r or r in written.parents for r in (self.folder, self.named)):
            return False
        real = Path(path).resolve()
        return real == self.folder or self.folder in real.parents

    def relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.folder).as_posix()
