"""The editor in a real browser: Debian's chromium driven by Playwright (no browser download),
the editor's server in a thread of this process, on a root folder each test fills itself."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from helpers import GRAPHS

PLAYWRIGHT_MISSING = "playwright is not installed (pip install -e '.[test]')"
#: a page waits at most this long for a state (a preview on the CPU runs the detector)
TIMEOUT_MS = 60_000


def find_chromium() -> tuple[str | None, str]:
    """chromium's path, installing Debian's package where it is absent and this process may
    (root, apt-get); else None and the one-line reason."""
    path = shutil.which("chromium")
    if path:
        return path, ""
    if not shutil.which("apt-get"):
        return None, "chromium is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "chromium is not installed; install it as root: apt-get install -y chromium"
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(step, capture_output=True, text=True,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"chromium could not be installed ({' '.join(step)}: {tail})"
    path = shutil.which("chromium")
    return (path, "") if path else (None, "apt-get installed chromium but it is not on PATH")


@pytest.fixture(scope="session")
def chromium() -> str:
    path, reason = find_chromium()
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def browser(chromium):
    sync_api = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING)
    with sync_api.sync_playwright() as p:
        # as root, chromium refuses to start without --no-sandbox
        b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class EditorServer:
    """The editor's app served by uvicorn in a thread, on a port chosen once, so that a test can
    stop it and start it again at the same address (the page's reconnection)."""

    def __init__(self, root: Path, graph: str | None) -> None:
        self.root, self.graph = root, graph
        self.token = secrets.token_urlsafe(24)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, **query: str) -> str:
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"{self.origin}/?token={self.token}{extra}"

    def start(self) -> None:
        import uvicorn

        from swapgraph.editor.access import own_origins
        from swapgraph.editor.server import create_app

        app = create_app(self.root, self.root / self.graph if self.graph else None, self.token,
                         origins=own_origins("127.0.0.1", self.port))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(app, log_level="warning", ws_ping_interval=None, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        while self._thread.is_alive() and not self._server.started:
            time.sleep(0.01)  # uvicorn has no start event to wait on
        if not self._server.started:
            raise RuntimeError("the editor's server did not start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = None

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(self.origin + path, params=params, headers={"X-Swapgraph-Token": self.token}, timeout=60)

    def stats(self) -> dict[str, Any]:
        return self.get("/api/stats").json()


@pytest.fixture
def editor_root(tmp_path, clip) -> Path:
    """A root folder holding ``grace.mp4`` (the session's 24-frame clip)."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copyfile(clip, root / "grace.mp4")
    return root


@pytest.fixture(scope="session")
def swap_model(tmp_path_factory) -> Path:
    """An untrained, seeded lite-64 model: enough for the swap graph to validate and preview."""
    import torch

    from swapgraph.nodes.swap_model import ModelInfo, SwapModel, save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "a_to_b"
    save_model(folder, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
    return folder


@pytest.fixture
def swap_root(editor_root, swap_model) -> Path:
    """``editor_root`` with ``graphs/swap.json`` as ``swap.json`` reading grace.mp4, the model
    at the path the preset names (models/a_to_b) and its output under out/."""
    shutil.copytree(swap_model, editor_root / "models" / "a_to_b")
    text = (GRAPHS / "swap.json").read_text().replace('"plate.mp4"', '"grace.mp4"')
    (editor_root / "swap.json").write_text(text)
    return editor_root


@pytest.fixture
def serve() -> Iterator:
    """``serve(root, graph=None)`` starts an :class:`EditorServer`; every one started stops at the end."""
    started: list[EditorServer] = []

    def start(root: Path, graph: str | None = None) -> EditorServer:
        server = EditorServer(root, graph)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def page(browser):
    """A fresh page (its own cookies and storage), 1400x900, with one-minute waits."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()
