"""Graph files: loading, overrides, validation (every fault named), the JSON Schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from swapgraph.runtime.errors import GraphFileError, GraphValidationError
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.schema import graph_json_schema
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.registry import default_registry

from helpers import GRAPHS, REPO, write_graph

BAD = REPO / "tests" / "graphs" / "bad"

# file -> (words the error must contain, the node it must name)
EXPECTED = {
    "unknown_node_type": ("unknown node type 'Decoder'; fix: did you mean 'Decode'?", "plate"),
    "unknown_input_port": ("input 'mask': unknown input port", "out"),
    "unknown_output_port": ("has no output 'frame'", "out"),
    "missing_input": ("input 'frames': required input of type Frames is not linked", "out"),
    "type_mismatch": ("expects Frames, but 'plate.audio' gives Audio; fix: link an output of type Frames, "
                      "e.g. 'plate.frames'", "out"),
    "cycle": ("the links form a cycle: b -> a -> b", "b"),
    "bad_param_type": ("param 'crf': Input should be a valid integer", "out"),
    "bad_param_range": ("param 'crf': Input should be less than or equal to 51, found 99", "out"),
    "bad_param_choice": ("param 'codec': Input should be 'libx264'", "out"),
    "unknown_param": ("param 'crff': unknown param; fix: did you mean 'crf'?", "out"),
    "input_missing": ("no_such_clip.mp4' does not exist", "plate"),
    "input_unreadable": ("not a readable video", "plate"),
    "output_not_writable": ("is a file, not a folder", "out"),
    "output_is_input": ("is also the input plate.path", "out"),
}


@pytest.fixture
def shot_dir(tmp_path, clip) -> Path:
    shutil.copy(clip, tmp_path / "clip.mp4")
    (tmp_path / "notes.mp4").write_text("not a video\n")
    return tmp_path


def test_every_bad_graph_has_an_expectation():
    assert {p.stem for p in BAD.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_graph_fails_validate_naming_its_fault(cli, shot_dir, name):
    graph = shutil.copy(BAD / f"{name}.json", shot_dir / f"{name}.json")
    r = cli("validate", graph)
    words, node = EXPECTED[name]
    assert r.code == 2
    assert len(r.error_lines) == 1, r.err  # one fault per file, reported once
    assert words in r.error_lines[0]
    assert f"node {node!r}" in r.error_lines[0]
    assert "fix:" in r.error_lines[0]
    assert "Traceback" not in r.err


def test_all_errors_reported_at_once(cli, shot_dir):
    graph = write_graph(shot_dir / "many.json", {
        "plate": {"type": "Decode", "params": {"path": "missing.mp4", "threads": -1}},
        "down": {"type": "Rsize", "inputs": {"frames": "plate.frames"}},
        "out": {"type": "Encode", "inputs": {"frames": "plate.audio"}, "params": {"path": "o.mp4", "crf": 80}},
    })
    r = cli("validate", graph)
    assert r.code == 2
    text = "\n".join(r.error_lines)
    assert "param 'threads'" in text and "'Rsize'" in text and "expects Frames" in text and "param 'crf'" in text
    assert len(r.error_lines) == 4


def test_graph_file_not_json(cli, tmp_path):
    bad = tmp_path / "g.json"
    bad.write_text('{"version": 1, "nodes": {,}}')
    r = cli("validate", bad)
    assert r.code == 2 and len(r.error_lines) == 1 and "not valid JSON at line 1 column 26" in r.err
    r = cli("validate", tmp_path / "absent.json")
    assert r.code == 2 and "graph file not found" in r.err


def test_version_and_unknown_keys(shot_dir):
    doc = {"version": 2, "nodez": {}, "nodes": {"plate": {"type": "Decode", "params": {"path": "clip.mp4"},
                                                          "colour": "red"}}}
    with pytest.raises(GraphValidationError) as e:
        validate_graph(doc, default_registry(), path=shot_dir / "g.json")
    text = str(e.value)
    assert "'version': expected 1, found 2" in text and "key 'nodez'" in text and "key 'colour'" in text


class TestLoad:
    def test_relative_paths_resolve_against_the_graph_folder(self, shot_dir, tmp_path, monkeypatch):
        sub = shot_dir / "graphs"
        sub.mkdir()
        graph = write_graph(sub / "g.json", {
            "plate": {"type": "Decode", "params": {"path": "../clip.mp4"}},
            "out": {"type": "Encode", "inputs": {"frames": "plate.frames"}, "params": {"path": "renders/o.mp4"}}})
        monkeypatch.chdir(tmp_path.parent)
        g = validate_graph(load_graph_document(graph), default_registry(), path=graph)
        assert g.nodes["plate"].params.path == sub / "../clip.mp4"
        assert g.nodes["plate"].params.path.resolve() == (shot_dir / "clip.mp4").resolve()
        assert g.nodes["out"].params.path == sub / "renders/o.mp4"
        assert g.order == ["plate", "out"]

    def test_overrides_are_typed_by_the_schema(self, shot_dir, monkeypatch):
        monkeypatch.chdir(shot_dir)
        doc = load_graph_document(GRAPHS / "transcode.json")
        g = validate_graph(doc, default_registry(), path=GRAPHS / "transcode.json",
                           overrides=["plate.path=clip.mp4", "out.crf=23", "out.path=o.mkv", "out.codec=ffv1",
                                      "out.pix_fmt=null", "plate.frames=2-5"])
        out = g.nodes["out"].params
        assert out.crf == 23 and isinstance(out.crf, int)
        assert out.codec == "ffv1" and out.pix_fmt is None
        # a path typed on the command line is relative to where it was typed
        assert g.nodes["plate"].params.path == shot_dir / "clip.mp4"
        assert g.nodes["plate"].params.frames == "2-5"
        base = validate_graph(doc, default_registry(), path=GRAPHS / "transcode.json",
                              overrides=["plate.path=clip.mp4", "out.path=o.mkv", "out.codec=ffv1",
                                         "plate.frames=2-5"])
        assert base.hash != g.hash  # the hash follows the params

    @pytest.mark.parametrize("override,words", [
        ("out.crf=abc", "override out.crf: Input should be a valid integer"),
        ("out.crf=77", "param 'crf': Input should be less than or equal to 51"),
        ("outt.crf=1", "override outt.crf: no node 'outt' in the graph; fix: did you mean 'out'?"),
        ("out.crff=1", "override out.crff: Encode has no param 'crff'; fix: did you mean 'crf'?"),
        ("out-crf", "expected node.param=value"),
    ])
    def test_bad_overrides(self, cli, shot_dir, override, words):
        r = cli("validate", GRAPHS / "transcode.json", "--set", f"plate.path={shot_dir / 'clip.mp4'}",
                "--set", f"out.path={shot_dir / 'o.mp4'}", "--set", override)
        assert r.code == 2 and words in r.err, r.err

    def test_hash_is_stable(self, shot_dir):
        doc = load_graph_document(GRAPHS / "rescale.json")
        sets = [f"plate.path={shot_dir / 'clip.mp4'}", f"out.path={shot_dir / 'o.mp4'}"]
        a = validate_graph(doc, default_registry(), path=GRAPHS / "rescale.json", overrides=sets)
        b = validate_graph(json.loads(json.dumps(doc)), default_registry(), path=GRAPHS / "rescale.json",
                           overrides=sets)
        assert a.hash == b.hash and len(a.hash) == 64


class TestSchema:
    def test_schema_lists_every_node_type_and_its_params(self, cli):
        r = cli("schema")
        assert r.code == 0
        schema = json.loads(r.out)
        defs = schema["$defs"]
        for name in default_registry().names():
            assert f"node.{name}" in defs
        encode = defs["node.Encode"]["properties"]
        assert encode["params"]["properties"]["crf"]["maximum"] == 51
        assert "libx264" in encode["params"]["properties"]["codec"]["enum"]
        assert encode["inputs"]["required"] == ["frames"]
        assert schema["properties"]["version"] == {"const": 1}

    def test_preset_graphs_satisfy_the_schema(self):
        import jsonschema
        schema = graph_json_schema(default_registry())
        for path in GRAPHS.glob("*.json"):
            jsonschema.validate(json.loads(path.read_text()), schema)
        bad = json.loads((BAD / "bad_param_range.json").read_text())
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_graph_file_error_is_a_value_error():
    with pytest.raises(ValueError):
        raise GraphFileError("x")
