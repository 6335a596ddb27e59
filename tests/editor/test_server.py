"""The editor's server through Starlette's test client: access (token, origin, root),
malformed requests, validate, save, shot, preview (equal to the API's, the detector not
computed again after a downstream change), stats, and runs over the WebSocket with
progress and cancel. The page itself is tested in a browser (test_page.py)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient, WebSocketDenialResponse

from helpers import GRAPHS
from swapgraph import api
from swapgraph.editor.server import create_app
from swapgraph.nodes.resample import Resize
from swapgraph.runtime.images import tensor_to_rgb

TOKEN = "test-token-abc"
ORIGIN = "http://testserver"


def shot(out: str = "out/shot.mkv", batch_size: int = 8) -> dict:
    """Decode the root's plate.mp4, half size, encode losslessly (FFV1)."""
    return {"version": 1, "name": "editor-shot", "settings": {"batch_size": batch_size}, "nodes": {
        "plate": {"type": "Decode", "params": {"path": "plate.mp4"}},
        "down": {"type": "Resize", "inputs": {"frames": "plate.frames"}, "params": {"factor": 0.5, "mode": "area"}},
        "out": {"type": "Encode", "inputs": {"frames": "down.frames"}, "params": {"path": out, "codec": "ffv1"}}}}


@pytest.fixture
def root(tmp_path, clip):
    folder = tmp_path / "root"
    (folder / "out").mkdir(parents=True)
    shutil.copy(clip, folder / "plate.mp4")
    (folder / "shot.json").write_text(json.dumps(shot()))  # compact, not as the editor writes
    return folder


@pytest.fixture
def app(root):
    return create_app(root, root / "shot.json", TOKEN, origins=[ORIGIN], cache=api.PreviewCache())


@pytest.fixture
def client(app):
    with TestClient(app, headers={"X-Swapgraph-Token": TOKEN, "Origin": ORIGIN}) as c:
        yield c


def one_line_error(response) -> str:
    error = response.json()["error"]
    assert isinstance(error, str) and error and "\n" not in error
    return error


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_every_request_needs_the_token(app, root):
    with TestClient(app) as bare:
        assert bare.get("/api/session").status_code == 403
        one_line_error(bare.get("/api/session"))
        assert bare.get("/api/session", headers={"X-Swapgraph-Token": "wrong"}).status_code == 403
        assert bare.get("/static/app.js").status_code == 403
        with pytest.raises(WebSocketDenialResponse) as denied:
            with bare.websocket_connect("/ws", headers={"Origin": ORIGIN}):
                pass
        assert denied.value.status_code == 403
        assert bare.get(f"/api/session?token={TOKEN}").status_code == 200
        page = bare.get(f"/?token={TOKEN}")
        cookie = page.headers["set-cookie"]
        assert f"swapgraph_token={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    with TestClient(app, cookies={"swapgraph_token": TOKEN}) as cookied:
        session = cookied.get("/api/session").json()
    assert session["graph"] == "shot.json" and session["root"] == str(root.resolve())
    assert "swap.json" in session["presets"]


def test_a_foreign_origin_or_host_is_refused(client):
    assert client.get("/api/session", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.get("/api/session", headers={"Origin": "http://127.0.0.1:1"}).status_code == 403
    assert client.get("/api/session", headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
    no_origin = client.post("/api/validate", json={"document": shot()}, headers={"Origin": ""})
    assert no_origin.status_code == 403
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect("/ws", headers={"Origin": "http://evil.example"}):
            pass
    assert denied.value.status_code == 403
    assert client.post("/api/validate", json={"document": shot()}).status_code == 200


def test_paths_outside_the_root_are_refused(client, root, tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text(json.dumps(shot()))
    (root / "link.json").symlink_to(outside)
    (root / "away").symlink_to(tmp_path)
    for path in ("../secret.json", str(outside), "link.json", "away/secret.json", "out/../../secret.json"):
        refused = client.get("/api/graph", params={"path": path})
        assert refused.status_code == 403, path
        one_line_error(refused)
    assert client.get("/api/files", params={"dir": ".."}).status_code == 403
    assert client.get("/api/files", params={"dir": "away"}).status_code == 403
    listed = client.get("/api/files").json()
    names = {e["name"]: e["kind"] for e in listed["entries"]}
    assert names["plate.mp4"] == "file" and names["out"] == "dir" and "link.json" not in names and "away" not in names
    assert client.post("/api/save", json={"path": "../saved.json", "document": shot()}).status_code == 403
    assert client.post("/api/save", json={"path": "away/saved.json", "document": shot()}).status_code == 403
    assert not (tmp_path / "saved.json").exists()
    # a document whose files lie out of the root: a validation issue on the param, for a preview as for validate
    elsewhere = shot(out=str(tmp_path / "elsewhere.mkv"))
    preview = client.post("/api/preview", json={"document": elsewhere, "node": "down", "frame": 0})
    assert preview.status_code == 422 and "outside the editor's root" in one_line_error(preview)
    issues = client.post("/api/validate", json={"document": elsewhere, "path": "shot.json"}).json()["issues"]
    assert [(i["node"], i["param"]) for i in issues] == [("out", "path")]
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"op": "run", "id": "r", "document": elsewhere, "path": "shot.json", "frames": None})
        answer = ws.receive_json()
    assert answer["op"] == "error" and answer["id"] == "r" and "outside the editor's root" in answer["message"]
    assert not (tmp_path / "elsewhere.mkv").exists()


def test_validate_never_looks_at_a_file_outside_the_root(client, root, tmp_path, monkeypatch):
    """/etc/passwd and a file that is nowhere get the same answer, neither is stat'ed, and the
    graph's other problems are still reported."""
    asked = []
    for name in ("stat", "lstat", "access"):
        def spy(path, *args, _real=getattr(os, name), **kwargs):
            asked.append(os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else path)
            return _real(path, *args, **kwargs)
        monkeypatch.setattr(os, name, spy)
    answers = {}
    for target in ("/etc/passwd", "/etc/no-such-file"):
        document = shot()
        document["nodes"]["plate"]["params"]["path"] = target
        document["nodes"]["down"]["params"]["factor"] = -1
        validated = client.post("/api/validate", json={"document": document, "path": "shot.json"})
        previewed = client.post("/api/preview", json={"document": document, "node": "down", "frame": 0})
        assert validated.status_code == 200 and previewed.status_code == 422
        answers[target] = json.dumps([validated.json(), one_line_error(previewed)]).replace(target, "TARGET")
    monkeypatch.undo()
    assert not [p for p in asked if isinstance(p, str) and p.startswith("/etc/")]
    assert answers["/etc/passwd"] == answers["/etc/no-such-file"]
    [answer, line] = json.loads(answers["/etc/passwd"])
    [outside] = [i for i in answer["issues"] if (i["node"], i["param"]) == ("plate", "path")]
    assert outside["problem"] == f"TARGET is outside the editor's root {root.resolve()}"
    assert outside["fix"].startswith(f"choose a file under {root.resolve()}")
    assert ("down", "factor") in {(i["node"], i["param"]) for i in answer["issues"]}  # every other problem too
    assert line == f"node 'plate' param 'path': {outside['problem']}; fix: {outside['fix']}"
    # a relative path, a symlink leading out: the same issue
    (root / "away").symlink_to(tmp_path)
    for path in ("../../x.mp4", "away/x.mp4"):
        document = shot()
        document["nodes"]["plate"]["params"]["path"] = path
        issues = client.post("/api/validate", json={"document": document, "path": "shot.json"}).json()["issues"]
        assert [(i["node"], i["param"]) for i in issues] == [("plate", "path")], path
        assert "outside the editor's root" in issues[0]["problem"]


def test_request_bodies_and_paths_are_bounded(client, root):
    headers = {"Content-Type": "application/json"}
    big = client.post("/api/save", content=b" " * (9 * 2**20), headers=headers)
    assert big.status_code == 413 and "over 8 MiB" in one_line_error(big)
    chunked = client.post("/api/validate", content=iter([b" " * 2**20] * 9), headers=headers)
    assert chunked.status_code == 413
    deep = b"[" * 10_000 + b"]" * 10_000
    for endpoint in ("/api/validate", "/api/save", "/api/preview"):
        refused = client.post(endpoint, content=deep, headers=headers)
        assert refused.status_code == 400 and "nested deeper than" in one_line_error(refused), endpoint
    nested: list = []
    for _ in range(500):  # parses, but deeper than any graph
        nested = [nested]
    document = {**shot(), "ui": {"nested": nested}}
    assert client.post("/api/validate", json={"document": document}).status_code == 400
    with client.websocket_connect("/ws") as ws:
        ws.send_text(deep.decode())
        answer = ws.receive_json()
        assert answer["op"] == "error" and "nested deeper than" in answer["message"]
    long_path, long_name = "a" * 100_000 + ".json", "b" * 300 + ".json"
    over_path_max = "c" * 5_000 + ".json"  # a URL (httpx) takes at most 64 KiB
    for path in (long_path, over_path_max, long_name, "out/" + long_name):
        requests = [client.post("/api/save", json={"path": path, "document": shot()}),
                    client.post("/api/validate", json={"path": path, "document": shot()})]
        if path is not long_path:
            requests += [client.get("/api/graph", params={"path": path}), client.get("/api/files", params={"dir": path})]
        for refused in requests:
            assert refused.status_code == 400, refused.request.url.path
            assert re.match(r"(path|dir): '[\w/]+…' \(\d+ characters\) is longer than", one_line_error(refused))
    # a graph's own over-long path is an issue on its param
    document = shot()
    document["nodes"]["plate"]["params"]["path"] = long_path
    issues = client.post("/api/validate", json={"document": document, "path": "shot.json"}).json()["issues"]
    assert ("plate", "path") in {(i["node"], i["param"]) for i in issues}
    assert sorted(p.name for p in root.iterdir()) == ["out", "plate.mp4", "shot.json"]
    assert client.get("/api/session").status_code == 200


def test_a_png_sequence_over_the_root_itself_is_refused_and_deletes_nothing(client, root):
    def contents() -> list:
        return sorted((p.relative_to(root).as_posix(), p.read_bytes() if p.is_file() else None) for p in root.rglob("*"))

    (root / "out" / "notes.txt").write_text("the user's, not swapgraph's\n")
    before = contents()
    for folder in (".", "out"):  # the root (which holds the plate), a folder of the user's
        document = shot(out=folder)
        document["nodes"]["out"]["params"]["codec"] = "png"
        issues = client.post("/api/validate", json={"document": document, "path": "shot.json"}).json()["issues"]
        [issue] = [i for i in issues if (i["node"], i["param"]) == ("out", "path")]
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"op": "run", "id": folder, "document": document, "path": "shot.json", "frames": None})
            answer = receive_until_end(ws)[-1]
        assert answer["op"] == "error" and answer["id"] == folder and issue["problem"] in answer["message"]
        assert contents() == before


def test_a_malformed_request_gets_a_4xx_and_the_server_keeps_serving(client):
    bad = client.post("/api/validate", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert one_line_error(bad).startswith("malformed JSON body")
    assert client.post("/api/validate", json=[1, 2]).status_code == 400
    assert client.post("/api/validate", json={"path": "shot.json"}).status_code == 400
    assert client.post("/api/preview", json={"document": shot(), "node": "down", "frame": "10"}).status_code == 400
    assert client.post("/api/preview", json={"document": shot(), "node": "down", "frame": True}).status_code == 400
    assert client.post("/api/save", json={"path": "x.txt", "document": shot()}).status_code == 400
    assert client.get("/api/graph").status_code == 400
    assert client.get("/api/graph", params={"path": "missing.json"}).status_code == 404
    assert client.get("/api/graph", params={"path": "preset:nope.json"}).status_code == 404
    past = client.post("/api/preview", json={"document": shot(), "node": "down", "frame": 10_000})
    assert past.status_code == 422 and "past the end" in one_line_error(past)
    no_image = client.post("/api/preview", json={"document": shot(), "node": "plate", "output": "audio", "frame": 3})
    assert no_image.status_code == 422 and "no image for frame 3" in one_line_error(no_image)
    unknown = client.post("/api/preview", json={"document": shot(), "node": "nope", "frame": 0})
    assert unknown.status_code == 422 and "nope" in one_line_error(unknown)
    with client.websocket_connect("/ws") as ws:
        ws.send_text("{not json")
        assert ws.receive_json()["op"] == "error"
        ws.send_json({"op": "explode", "id": 3})
        assert ws.receive_json() == {"op": "error", "id": 3, "message": "op: expected run, render, cancel or ping, "
                                                                         "found 'explode'"}
        ws.send_json({"op": "cancel", "id": "none"})
        assert ws.receive_json()["op"] == "error"
        ws.send_json({"op": "ping"})
        assert ws.receive_json() == {"op": "pong"}
    assert client.get("/api/session").status_code == 200


def test_a_failure_is_a_one_line_500_and_the_server_keeps_serving(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk\nfell off")

    monkeypatch.setattr(api, "preview", broken)
    failed = client.post("/api/preview", json={"document": shot(), "node": "down", "frame": 0})
    assert failed.status_code == 500 and one_line_error(failed) == "RuntimeError: the disk fell off"
    assert client.get("/api/stats").status_code == 200


def test_validate_names_the_node_port_and_param(client):
    document = shot()
    document["nodes"]["down"]["params"]["factor"] = -1
    document["nodes"]["out"]["inputs"]["frames"] = "plate.audio"
    document["ui"] = {"positions": {"plate": [0, 0]}, "viewer": {"node": "down", "frame": 3}}
    issues = client.post("/api/validate", json={"document": document, "path": "shot.json"}).json()["issues"]
    about = {(i["node"], i["port"], i["param"]) for i in issues}
    assert ("down", None, "factor") in about and ("out", "frames", None) in about
    assert all(i["where"] and i["problem"] and "fix" in i for i in issues)
    del document["nodes"]["down"]["params"]["factor"]
    document["nodes"]["down"]["params"]["height"] = 64
    document["nodes"]["out"]["inputs"]["frames"] = "down.frames"
    assert client.post("/api/validate", json={"document": document, "path": "shot.json"}).json() == {"issues": []}


def test_the_ui_object_is_the_editors_and_the_engine_ignores_it(root):
    import jsonschema

    document = {**shot(), "ui": {"positions": {"plate": [10, 20]}}}
    jsonschema.validate(document, api.graph_schema())
    spec = api.load(document, path=root / "shot.json")
    assert api.validate(spec) == []
    assert spec.graph().hash == api.load(shot(), path=root / "shot.json").graph().hash


def test_save_writes_only_a_changed_graph_through_a_temporary_file(client, root, monkeypatch):
    file = root / "shot.json"
    opened = client.get("/api/graph", params={"path": "shot.json"}).json()
    assert opened["read_only"] is False and opened["path"] == "shot.json"
    before, stamp = file.read_bytes(), file.stat().st_mtime_ns
    time.sleep(0.01)
    unchanged = client.post("/api/save", json={"path": "shot.json", "document": opened["document"]}).json()
    assert unchanged == {"path": "shot.json", "written": False}
    assert file.read_bytes() == before and file.stat().st_mtime_ns == stamp

    renames = []
    replace = os.replace

    def recording_replace(src, dst):
        renames.append((str(src), str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    changed = {**opened["document"], "ui": {"positions": {"plate": [1, 2]}}}
    saved = client.post("/api/save", json={"path": "shot.json", "document": changed}).json()
    assert saved == {"path": "shot.json", "written": True}
    assert file.read_text() == json.dumps(changed, indent=2) + "\n"
    temp, final = renames[-1]  # the new file renamed in last (the old one may be set aside first)
    assert final == str(file) and temp != final and os.path.dirname(temp) == str(root)
    assert sorted(p.name for p in root.iterdir()) == ["out", "plate.mp4", "shot.json"]
    new = client.post("/api/save", json={"path": "out/new.json", "document": changed}).json()
    assert new == {"path": "out/new.json", "written": True}
    assert client.post("/api/save", json={"path": "preset:swap.json", "document": changed}).status_code == 403


def test_save_replaces_a_graph_file_and_nothing_else(client, root):
    (root / "folder.json").mkdir()
    (root / "notes.txt").write_text("call the client back\n")
    (root / "notes.json").write_text("call the client back\n")
    (root / "settings.json").write_text(json.dumps({"theme": "dark"}))
    shutil.copy(root / "plate.mp4", root / "take.json")
    Image.new("RGB", (4, 4)).save(root / "still.json", format="PNG")

    def files() -> dict:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    before = files()
    for name, status in [("folder.json", 409), ("notes.txt", 400), ("plate.mp4", 400), ("notes.json", 409),
                         ("settings.json", 409), ("take.json", 409), ("still.json", 409)]:
        refused = client.post("/api/save", json={"path": name, "document": shot()})
        assert refused.status_code == status and one_line_error(refused).startswith(f"{name}: "), name
    assert files() == before and list((root / "folder.json").iterdir()) == []
    changed = {**shot(), "name": "renamed"}
    assert client.post("/api/save", json={"path": "shot.json", "document": changed}).json() == {
        "path": "shot.json", "written": True}
    assert json.loads((root / "shot.json").read_text()) == changed


def test_save_refuses_nan_and_infinity_and_writes_nothing(client, root):
    before = (root / "shot.json").read_bytes()
    for bad in (float("nan"), float("inf"), float("-inf")):
        document = shot()
        document["ui"] = {"positions": {"plate": [0, bad]}}
        for path in ("shot.json", "out/new.json"):
            body = json.dumps({"path": path, "document": document}).encode()  # NaN, Infinity: not standard JSON
            refused = client.post("/api/save", content=body, headers={"Content-Type": "application/json"})
            assert refused.status_code == 400 and "NaN or Infinity" in one_line_error(refused)
            assert one_line_error(refused).startswith(f"{path}: ")
    assert (root / "shot.json").read_bytes() == before and list((root / "out").iterdir()) == []
    assert sorted(p.name for p in root.iterdir()) == ["out", "plate.mp4", "shot.json"]


def test_every_preset_opens_read_only_and_saves_unchanged_byte_for_byte(client, root):
    for name, file in api.presets().items():
        preset = client.get("/api/graph", params={"path": f"preset:{name}"}).json()
        assert preset["read_only"] is True and preset["document"] == json.loads(file.read_text())
        shutil.copy(file, root / name)
        stamp = (root / name).stat().st_mtime_ns
        opened = client.get("/api/graph", params={"path": name}).json()
        assert client.post("/api/save", json={"path": name, "document": opened["document"]}).json()["written"] is False
        assert (root / name).read_bytes() == file.read_bytes() and (root / name).stat().st_mtime_ns == stamp


def test_nodes_describe_ports_params_and_which_types_fit(client):
    described = client.get("/api/nodes").json()
    decode = described["types"]["Decode"]
    assert decode["origin"] == "swapgraph" and decode["category"] == "video" and decode["doc"]
    assert decode["outputs"]["frames"]["type"] == "Frames" and "path" in decode["params"]["properties"]
    encode = described["types"]["Encode"]["inputs"]
    assert encode["frames"]["required"] is True and encode["audio"]["type"] == "Audio"
    fits = described["port_types"]
    assert encode["frames"]["type"] in fits["Frames"] and encode["frames"]["type"] not in fits["Audio"]


def test_shot_gives_the_frames_and_rate_of_the_nodes_source(client):
    info = client.post("/api/shot", json={"document": shot(), "path": "shot.json", "node": "down"}).json()
    assert info["frames"] == 24 and info["fps"] == "25/1" and info["source"] == "plate.mp4"
    assert info["node"] == "plate" and (info["width"], info["height"]) == (256, 256)


def test_preview_is_the_png_of_the_apis_preview(client, root):
    answer = client.post("/api/preview", json={"document": shot(), "path": "shot.json", "node": "down", "frame": 10})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["x-swapgraph-frame"] == "10" and answer.headers["x-swapgraph-output"] == "frames"
    expected = api.preview(api.load(shot(), path=root / "shot.json"), "down", 10, cache=api.PreviewCache()).image
    assert np.array_equal(decode_png(answer.content), tensor_to_rgb(expected[None])[0])
    sink = client.post("/api/preview", json={"document": shot(), "path": "shot.json", "node": "out", "frame": 10})
    assert np.array_equal(decode_png(sink.content), decode_png(answer.content))  # a sink shows its input


def test_stats_count_and_a_downstream_change_does_not_run_the_detector_again(client, root):
    document = json.loads((GRAPHS / "extract.json").read_text())
    document["nodes"]["plate"]["params"]["path"] = "plate.mp4"
    document["nodes"]["faces"]["params"]["workers"] = 1
    document["nodes"]["faceset"]["params"]["path"] = "out/faceset"
    request = {"document": document, "path": "extract.json", "node": "crops", "frame": 5}
    assert client.post("/api/preview", json=request).status_code == 200
    first = client.get("/api/stats").json()
    detected = first["computed"]["DetectFaces"]
    assert detected >= 1 and first["computed"]["Align"] >= 1 and first["cache"]["entries"] > 0
    document["nodes"]["crops"]["params"]["coverage"] = 180
    again = client.post("/api/preview", json=request)
    assert again.status_code == 200
    second = client.get("/api/stats").json()
    assert second["computed"]["DetectFaces"] == detected
    assert second["computed"]["Align"] > first["computed"]["Align"]
    assert second["cache"]["hits"] > first["cache"]["hits"]


def receive_until_end(ws) -> list[dict]:
    messages = []
    while not messages or messages[-1]["op"] == "progress":
        messages.append(ws.receive_json())
    return messages


def test_a_run_streams_progress_and_writes_its_output(client, root):
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"op": "run", "id": "r1", "document": shot(), "path": "shot.json", "frames": None})
        messages = receive_until_end(ws)
    *progress, done = messages
    assert done["op"] == "done" and done["id"] == "r1", done
    assert done["outputs"] == ["out/shot.mkv"] and done["frames"] == 24 and done["qc"] is None
    assert progress and all(m["id"] == "r1" and m["total"] == 24 for m in progress)
    assert progress[-1]["done"] == 24 and progress[-1]["eta"] == 0
    assert all({"fps", "eta"} <= set(m) for m in progress)
    assert (root / "out" / "shot.mkv").is_file()
    with client.websocket_connect("/ws") as ws:  # a range
        ws.send_json({"op": "run", "id": 2, "document": shot("out/range.mkv"), "path": "shot.json", "frames": "4-11"})
        assert receive_until_end(ws)[-1]["frames"] == 8


def test_cancel_leaves_nothing_at_the_final_path(client, root, monkeypatch):
    process = Resize.process

    def slow(self, **inputs):
        time.sleep(0.3)
        return process(self, **inputs)

    monkeypatch.setattr(Resize, "process", slow)
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"op": "run", "id": "c", "document": shot(batch_size=2), "path": "shot.json", "frames": None})
        first = ws.receive_json()
        assert first["op"] == "progress" and first["done"] < 24
        ws.send_json({"op": "cancel", "id": "c"})
        messages = receive_until_end(ws)
    assert messages[-1] == {"op": "cancelled", "id": "c"}
    assert list((root / "out").iterdir()) == []


def test_swapgraph_edit_serves_on_a_free_port_with_its_token(root):
    server = subprocess.Popen([sys.executable, "-m", "swapgraph.cli", "edit", str(root / "shot.json"), "--port", "0",
                               "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:(\d+))/\?token=(\S+)", line)
        assert match, line + server.stderr.read() if server.poll() is not None else line
        base, token = match.group(1), match.group(3)
        assert httpx.get(f"{base}/api/session").status_code == 403
        session = httpx.get(f"{base}/api/session", params={"token": token}).json()
        assert session["graph"] == "shot.json" and session["root"] == str(root.resolve())
        foreign = httpx.get(f"{base}/api/session", params={"token": token}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_qc_follows_a_run_that_swapped_faces_into_a_video(root, monkeypatch):
    from types import SimpleNamespace

    import swapgraph.qc.runner
    from swapgraph.editor.jobs import qc_summary

    measured = []

    def fake_qc(output, plate):
        measured.append((output, plate))
        return {"summary": {"identity": float("nan"), "sharpness": 0.5}}

    monkeypatch.setattr(swapgraph.qc.runner, "run_qc", fake_qc)
    monkeypatch.setattr(api, "shot_info", lambda spec, node: SimpleNamespace(source=root / "plate.mp4"))
    swap = api.load(json.loads((GRAPHS / "swap.json").read_text()), path=root / "swap.json")
    assert qc_summary(swap, [root / "out" / "swap.mp4"]) == {"identity": None, "sharpness": 0.5}
    assert measured == [(root / "out" / "swap.mp4", root / "plate.mp4")]
    assert qc_summary(api.load(shot(), path=root / "shot.json"), [root / "out" / "shot.mkv"]) is None
    assert qc_summary(swap, []) is None  # nothing written
