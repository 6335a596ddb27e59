"""The editor's page in a real browser (Debian's chromium through Playwright): build a graph
with the mouse, live validation, save byte for byte, the viewer against ``swapgraph
preview``, the preview cache seen from the server, run and cancel, a server that goes away
and comes back, a server error's one line; and the README's screenshots.

Elements are found by role, label or test id (the conventions at the top of
``editor/static/main.js``); every wait is for a state or an event, never a fixed time.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from helpers import GRAPHS, REPO, animate_photo, decode_all, packaged_photo, write_clip, write_graph

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Response

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

# the README's figures are rewritten only when asked (SWAPGRAPH_WRITE_DOCS=1), so a test run
# leaves the checkout clean; otherwise the same pictures go to the test's own folder
WRITE_DOCS = os.environ.get("SWAPGRAPH_WRITE_DOCS") == "1"


# -- the page's conventions, in one place -------------------------------------------------

def open_editor(page: Page, server, graph: str | None = None) -> Page:
    """The page the printed URL opens (or with ``graph`` to open), once it shows the graph."""
    page.goto(server.url(**({"graph": graph} if graph else {})))
    page.wait_for_function("document.body.dataset.ready === 'true'")
    return page


def canvas_nodes(page: Page) -> Locator:
    return page.get_by_test_id("canvas").get_by_test_id(re.compile(r"^node-"))


def node_ids(page: Page) -> set[str]:
    nodes = canvas_nodes(page)
    return {tid.removeprefix("node-") for tid in nodes.evaluate_all("els => els.map(e => e.dataset.testid)")}


def add_node(page: Page, type_name: str, x: float, y: float) -> str:
    """Drag ``type_name`` from the palette onto the canvas, its corner at (x, y) as fractions
    of the canvas; the new node's id."""
    before = node_ids(page)
    canvas = page.get_by_test_id("canvas")
    box = canvas.bounding_box()
    page.get_by_test_id(f"palette-{type_name}").drag_to(
        canvas, target_position={"x": box["width"] * x, "y": box["height"] * y})
    expect(canvas_nodes(page)).to_have_count(len(before) + 1)
    (new,) = node_ids(page) - before
    return new


def centre(locator: Locator) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not laid out"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag_wire(page: Page, src: str, dst: str) -> None:
    """Press on output port ``src`` (``node.port``), move to input port ``dst``, release."""
    (sn, sp), (dn, dp) = src.split("."), dst.split(".")
    start = centre(page.get_by_test_id(f"port-{sn}-out-{sp}"))
    end = centre(page.get_by_test_id(f"port-{dn}-in-{dp}"))
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def wire(page: Page, src: str, dst: str) -> Locator:
    return page.get_by_test_id(f"wire-{src}-{dst}")


def select_node(page: Page, node: str) -> None:
    page.get_by_test_id(f"title-{node}").click()
    expect(page.get_by_role("region", name="Params").get_by_role("heading", name=node)).to_be_visible()


def set_param(page: Page, node: str, name: str, value: str) -> None:
    select_node(page, node)
    field = page.get_by_test_id(f"param-{name}")
    if field.evaluate("e => e.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def show_preview(page: Page, node: str, frame: int) -> Locator:
    """Put ``node`` at ``frame`` in the viewer; the viewer's image once it shows that node and frame."""
    image = page.get_by_test_id("viewer-image")
    page.get_by_label("view node").select_option(node)
    expect(image).to_have_attribute("data-node", node)  # the shot is read: the scrubber spans it
    scrubber = page.get_by_label("frame", exact=True)
    if scrubber.input_value() != str(frame):  # the same value again would preview twice
        scrubber.fill(str(frame))
    expect(page.get_by_test_id("frame-number")).to_contain_text(f"{frame} / ")
    expect(image).to_have_attribute("data-frame", str(frame))
    expect(page.get_by_test_id("viewer-status")).to_contain_text(f"frame {frame} ·")
    return image


def image_pixels(page: Page, image: Locator) -> np.ndarray:
    """The bytes the viewer's ``<img>`` shows (fetched from its blob: URL in the page), decoded."""
    data = image.evaluate("""async (img) => {
        const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
        let text = "";
        for (const b of bytes) text += String.fromCharCode(b);
        return btoa(text);
    }""")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def save(page: Page, path: str | None = None) -> Response:
    """Save (under ``path``, typed into Graph file, when given); the server's answer."""
    if path is not None:
        page.get_by_label("Graph file").fill(path)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/save") as answer:
        page.get_by_role("button", name="Save", exact=True).click()
    return answer.value


def record_socket(page: Page) -> list[dict]:
    """Every message the server sends the page over its WebSocket, from now on."""
    messages: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: messages.append(json.loads(payload))))
    return messages


def pipeline(root: Path, name: str, factor: float, out: str, settings: dict, **encode) -> str:
    """grace.mp4 -> Resize by ``factor`` -> Encode to ``out``, as ``root/name``."""
    write_graph(root / name, {
        "plate": {"type": "Decode", "params": {"path": "grace.mp4"}},
        "up": {"type": "Resize", "inputs": {"frames": "plate.frames"}, "params": {"factor": factor}},
        "out": {"type": "Encode", "inputs": {"frames": "up.frames"}, "params": {"path": out, **encode}}}, settings)
    return name


def run_from_the_page(page: Page, server) -> list[dict]:
    """Open the server's graph, wait for the socket, press Run; the socket's messages, as they come."""
    messages = record_socket(page)
    open_editor(page, server)
    expect(page.get_by_test_id("connection-banner")).to_be_hidden()
    page.get_by_role("button", name="Run").click()
    return messages


# -- tests ----------------------------------------------------------------------------------

def test_build_with_the_mouse_validate_save_and_run(page, serve, editor_root):
    open_editor(page, serve(editor_root))
    decode = add_node(page, "Decode", 0.03, 0.2)
    resize = add_node(page, "Resize", 0.36, 0.2)
    encode = add_node(page, "Encode", 0.69, 0.2)
    assert (decode, resize, encode) == ("decode", "resize", "encode")

    # a wire the port types do not allow is refused as it is drawn: Audio into a Frames input
    drag_wire(page, f"{decode}.audio", f"{resize}.frames")
    expect(page.get_by_test_id("notice")).to_contain_text("refused")
    expect(wire(page, f"{decode}.audio", f"{resize}.frames")).to_have_count(0)

    drag_wire(page, f"{decode}.frames", f"{resize}.frames")
    expect(wire(page, f"{decode}.frames", f"{resize}.frames")).to_have_count(1)
    set_param(page, decode, "path", "grace.mp4")
    set_param(page, resize, "factor", "0.5")
    set_param(page, encode, "path", "out/built.mp4")

    # Encode's frames unconnected: one issue, on that node and port, gone once it is wired
    issues = page.get_by_test_id("issue")
    expect(issues).to_have_count(1)
    expect(issues).to_have_attribute("data-node", encode)
    expect(issues).to_have_attribute("data-port", "frames")
    expect(page.get_by_test_id(f"badge-{encode}")).to_be_visible()
    drag_wire(page, f"{resize}.frames", f"{encode}.frames")
    expect(wire(page, f"{resize}.frames", f"{encode}.frames")).to_have_count(1)
    expect(page.get_by_test_id("issue-summary")).to_have_text("no issues")
    expect(issues).to_have_count(0)
    expect(page.get_by_test_id(f"badge-{encode}")).to_have_count(0)

    # a param out of its range: an issue on that param, shown under it, gone when fixed
    set_param(page, resize, "factor", "-1")
    expect(issues).to_have_count(1)
    expect(issues).to_have_attribute("data-param", "factor")
    expect(page.get_by_test_id("param-issue-factor")).to_be_visible()
    page.get_by_test_id("param-factor").fill("0.5")
    expect(page.get_by_test_id("issue-summary")).to_have_text("no issues")
    expect(page.get_by_test_id("param-issue-factor")).to_be_hidden()

    answer = save(page, "built.json")
    assert answer.ok and answer.json()["written"] is True
    saved = editor_root / "built.json"
    doc = json.loads(saved.read_text())
    assert doc["nodes"] == {
        decode: {"type": "Decode", "params": {"path": "grace.mp4"}},
        resize: {"type": "Resize", "inputs": {"frames": f"{decode}.frames"}, "params": {"factor": 0.5}},
        encode: {"type": "Encode", "inputs": {"frames": f"{resize}.frames"}, "params": {"path": "out/built.mp4"}},
    }
    assert set(doc["ui"]["nodes"]) == {decode, resize, encode}  # positions live in ui

    # the CLI runs what the page saved
    done = subprocess.run([sys.executable, "-m", "swapgraph.cli", "run", str(saved), "--quiet"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    frames, _ = decode_all(editor_root / "out" / "built.mp4")
    assert frames.shape == (24, 128, 128, 3)


def test_unsaved_changes_survive_a_reload_and_can_be_discarded(page, serve, editor_root):
    name = pipeline(editor_root, "keep.json", 0.5, "out/keep.mp4", {"batch_size": 8})
    before = (editor_root / name).read_bytes()
    server = serve(editor_root, name)
    open_editor(page, server, name)
    set_param(page, "up", "factor", "0.25")
    expect(page.get_by_test_id("unsaved")).to_be_visible()
    open_editor(page, server, name)  # a reload, as after a closed tab or a crash
    expect(page.get_by_test_id("notice")).to_contain_text("Restored unsaved changes")
    select_node(page, "up")
    expect(page.get_by_test_id("param-factor")).to_have_value("0.25")
    expect(page.get_by_test_id("unsaved")).to_be_visible()
    assert (editor_root / name).read_bytes() == before  # nothing reached the file
    page.get_by_role("button", name="Discard changes").click()
    select_node(page, "up")
    expect(page.get_by_test_id("param-factor")).to_have_value("0.5")
    expect(page.get_by_test_id("unsaved")).to_be_hidden()


def test_viewer_shows_what_swapgraph_preview_draws(page, serve, editor_root, tmp_path):
    pipeline(editor_root, "half.json", 0.5, "out/half.mp4", {"batch_size": 8})
    open_editor(page, serve(editor_root, "half.json"))
    shown = image_pixels(page, show_preview(page, "up", 10))

    def cli_preview(frame: int) -> np.ndarray:
        png = tmp_path / f"cli{frame}.png"
        done = subprocess.run([sys.executable, "-m", "swapgraph.cli", "preview", str(editor_root / "half.json"),
                               "--node", "up", "--frame", str(frame), "-o", str(png)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return np.asarray(Image.open(png).convert("RGB"))

    expected = cli_preview(10)
    assert shown.shape == expected.shape == (128, 128, 3)
    assert np.array_equal(shown, expected)
    assert not np.array_equal(shown, cli_preview(20))  # a negative control: another frame differs


def test_a_downstream_param_change_does_not_run_the_detector_again(page, serve, swap_root):
    server = serve(swap_root, "swap.json")
    open_editor(page, server)
    detector = lambda: server.stats()["computed"].get("DetectFaces", 0)  # noqa: E731
    assert detector() == 0
    image = show_preview(page, "blend", 10)
    first = image_pixels(page, image)
    ran = detector()
    assert ran > 0  # counted: the first preview ran the detector

    shown = image.get_attribute("src")
    set_param(page, "mask", "feather", "30")
    expect(image).not_to_have_attribute("src", shown)  # the viewer previews the edited graph
    expect(image).to_have_attribute("data-frame", "10")
    second = image_pixels(page, image)
    assert not np.array_equal(first, second)  # the edit reached the preview
    assert detector() == ran
    assert server.stats()["computed"]["FaceMask"] >= 2


def test_open_and_save_every_preset_unchanged(page, serve, editor_root):
    presets = sorted(GRAPHS.glob("*.json"))
    assert len(presets) >= 5
    for preset in presets:
        shutil.copyfile(preset, editor_root / preset.name)
    server = serve(editor_root)
    for preset in presets:
        open_editor(page, server, preset.name)
        for node in json.loads(preset.read_text())["nodes"]:
            expect(page.get_by_test_id(f"node-{node}")).to_be_visible()
        expect(page.get_by_label("Graph file")).to_have_value(preset.name)
        answer = save(page)
        assert answer.ok and answer.json() == {"path": preset.name, "written": False}, preset.name
        assert (editor_root / preset.name).read_bytes() == preset.read_bytes(), preset.name


def test_run_from_the_page_streams_progress_and_writes_the_output(page, serve, editor_root):
    graph = pipeline(editor_root, "double.json", 2, "out/double.mp4", {"batch_size": 4}, preset="veryfast")
    messages = run_from_the_page(page, serve(editor_root, graph))
    result = page.get_by_test_id("run-result")
    expect(result).to_contain_text("out/double.mp4")
    expect(page.get_by_test_id("run-status")).to_contain_text("Done: 24 frames")
    progress = page.get_by_test_id("progress")
    expect(progress).to_be_visible()
    expect(progress).to_have_js_property("max", 24)
    expect(progress).to_have_js_property("value", 24)
    ticks = [m for m in messages if m.get("op") == "progress"]
    done = [m for m in messages if m.get("op") == "done"]
    assert ticks and all(m["total"] == 24 for m in ticks) and ticks[-1]["done"] == 24
    assert [m["done"] for m in ticks] == sorted(m["done"] for m in ticks)
    assert len(done) == 1 and done[0]["frames"] == 24 and done[0]["outputs"] == ["out/double.mp4"]
    frames, _ = decode_all(editor_root / "out" / "double.mp4")
    assert frames.shape == (24, 512, 512, 3)


def test_cancel_leaves_nothing_at_the_final_path(page, serve, editor_root):
    # 2048x2048 frames, one a batch, through a slow x264 preset: a run long enough to cancel
    graph = pipeline(editor_root, "big.json", 8, "out/big.mp4", {"batch_size": 1}, preset="slow")
    messages = run_from_the_page(page, serve(editor_root, graph))
    status = page.get_by_test_id("run-status")
    expect(status).to_contain_text(re.compile(r"\d+/24 frames"))
    page.get_by_role("button", name="Cancel").click()
    expect(status).to_contain_text("Cancelled")
    assert any(m.get("op") == "cancelled" for m in messages)
    assert not any(m.get("op") == "done" for m in messages)
    assert max(m["done"] for m in messages if m.get("op") == "progress") < 24
    out = editor_root / "out"
    assert not (out / "big.mp4").exists()
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_the_page_says_when_the_server_is_gone_and_reconnects(page, serve, editor_root):
    server = serve(editor_root, pipeline(editor_root, "t.json", 0.5, "out/t.mp4", {"batch_size": 8}))
    open_editor(page, server)
    banner = page.get_by_test_id("connection-banner")
    expect(banner).to_be_hidden()
    server.stop()
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Server stopped")
    server.start()
    expect(banner).to_be_hidden()
    # and the page works again: a preview from the new server
    show_preview(page, "up", 3)


def test_a_server_error_shows_its_one_line(page, serve, editor_root):
    open_editor(page, serve(editor_root, pipeline(editor_root, "t.json", 0.5, "out/t.mp4", {"batch_size": 8})))
    bar = page.get_by_test_id("error-bar")
    expect(bar).to_be_hidden()
    answer = save(page, "no/such/folder.json")
    assert answer.status == 404
    line = answer.json()["error"]
    assert "no/such/folder.json" in line and "\n" not in line
    expect(bar).to_be_visible()
    expect(bar).to_contain_text(line)
    # the server keeps serving: the same graph saves under its own name
    page.get_by_role("button", name="Dismiss error").click()
    expect(bar).to_be_hidden()
    assert save(page, "t.json").ok
    expect(bar).to_be_hidden()


def test_screenshots_of_swap_json_with_a_face_preview(page, serve, swap_root, tmp_path):
    """The README's figures, in the normal suite, where they also prove that the page renders
    the swap graph and a face preview: docs/editor-graph.png (the whole editor) and
    docs/editor-preview.png (its viewer), written there with SWAPGRAPH_WRITE_DOCS=1."""
    # a larger plate than the other tests' for the figures
    write_clip(swap_root / "grace.mp4", animate_photo(packaged_photo("grace_hopper"), 24, size=(512, 512)))
    open_editor(page, serve(swap_root, "swap.json"))
    for node in json.loads((swap_root / "swap.json").read_text())["nodes"]:
        expect(page.get_by_test_id(f"node-{node}")).to_be_visible()
    expect(wire(page, "faces.faces", "smooth.faces")).to_have_count(1)
    expect(page.get_by_test_id("issue-summary")).to_have_text("no issues")

    plate = image_pixels(page, show_preview(page, "plate", 10))
    faces = image_pixels(page, show_preview(page, "faces", 10))
    assert faces.shape == plate.shape == (512, 512, 3)
    assert (faces != plate).any(axis=2).mean() > 0.002  # the landmarks are drawn on the frame
    select_node(page, "mask")
    expect(page.get_by_test_id("param-feather")).to_have_value("12")

    docs = REPO / "docs" if WRITE_DOCS else tmp_path
    docs.mkdir(exist_ok=True)
    page.screenshot(path=docs / "editor-graph.png")
    viewer = page.get_by_role("region", name="Viewer").bounding_box()
    page.screenshot(path=docs / "editor-preview.png", clip=viewer)
    whole = np.asarray(Image.open(docs / "editor-graph.png").convert("RGB"))
    close = np.asarray(Image.open(docs / "editor-preview.png").convert("RGB"))
    assert whole.shape == (900, 1400, 3) and whole.std() > 10
    assert abs(close.shape[0] - viewer["height"]) <= 1 and abs(close.shape[1] - viewer["width"]) <= 1
    assert close.std() > 10
