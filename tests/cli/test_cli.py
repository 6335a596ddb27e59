"""The command line: listings, exit codes, one-line errors, the demo."""

from __future__ import annotations

import json

import pytest

from helpers import GRAPHS, on_a_terminal, stream_facts, swapgraph_subprocess


def test_nodes_lists_every_builtin(cli):
    r = cli("nodes")
    assert r.code == 0
    names = [line.split()[0] for line in r.out.splitlines()]
    assert {"Decode", "Encode", "Resize"} <= set(names)


def test_nodes_describes_one_type(cli):
    r = cli("nodes", "Resize")
    assert r.code == 0
    assert "reference    Frames     optional" in r.out
    assert "factor" in r.out and "> 0; <= 16" in r.out and "bicubic" in r.out
    r = cli("nodes", "Rezise")
    assert r.code == 2 and "did you mean 'Resize'?" in r.err


def test_usage_errors_are_one_line_exit_2(cli):
    for args in (["run"], ["frobnicate"], ["run", GRAPHS / "transcode.json", "--batch-size", "0"],
                 ["run", GRAPHS / "transcode.json", "--frames", "9-2"]):
        r = cli(*args)
        assert r.code == 2, args
        assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("error: "), r.err


def test_validate_ok(cli, clip, tmp_path):
    r = cli("validate", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", f"out.path={tmp_path / 'o.mp4'}")
    assert r.code == 0 and r.out.startswith("ok: ") and "plate, down, up, out" in r.out
    assert not (tmp_path / "o.mp4").exists()  # validate writes nothing


def test_run_prints_a_summary(cli, clip, tmp_path):
    out = tmp_path / "o.mp4"
    r = cli("run", GRAPHS / "transcode.json", "--set", f"plate.path={clip}", "--set", f"out.path={out}")
    assert r.code == 0
    assert r.out.startswith("done: 24 frames") and f"wrote {out}" in r.out


def test_runtime_failure_exits_1_and_debug_shows_the_traceback(clip, tmp_path):
    # an odd frame size cannot be encoded as 4:2:0: found while running, not by validate
    args = ["run", GRAPHS / "rescale.json", "--set", f"plate.path={clip}", "--set", f"out.path={tmp_path / 'o.mp4'}",
            "--set", "down.even=false", "--set", "down.factor=0.37", "--set", "up.mode=bilinear",
            "--set", "out.codec=libx264"]
    # 'up' returns to the reference size, so feed Encode the odd-sized 'down' instead
    graph = json.loads((GRAPHS / "rescale.json").read_text())
    graph["nodes"]["out"]["inputs"]["frames"] = "down.frames"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(graph))
    args[1] = path
    proc = swapgraph_subprocess(*args)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [err.strip()] and "even frame size" in err and "node 'out'" in err
    proc = swapgraph_subprocess("--debug", *args)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" in err
    assert list(tmp_path.glob("*.mp4")) == [] and list(tmp_path.glob(".o*")) == []


@pytest.mark.slow
def test_demo_runs_from_packaged_inputs(cli, tmp_path):
    # the whole demo (swapgraph swap on two shots made from the packaged photos), with a
    # shorter training than its default 150 steps to spare CI a minute
    r = cli("demo", "--out", tmp_path / "demo", "--steps", "30")
    assert r.code == 0, r.err
    demo = tmp_path / "demo"
    swapped = demo / "astronaut_as_grace.mp4"
    work = demo / "astronaut_as_grace.work"
    assert str(swapped) in r.out and "train all ran" in r.out
    facts = stream_facts(swapped)
    assert facts["frames"] == 60 and facts["metadata"]["synthetic_media"] == "true"
    assert json.loads((demo / "astronaut_as_grace.mp4.swapgraph.json").read_text())["stats"]["swap"][
        "faces_swapped"] == 60
    for side in ("plate", "face"):
        assert len((work / f"faces_{side}" / "faces.jsonl").read_text().splitlines()) == 60
    model = work / "model"
    assert json.loads((model / "model.json").read_text())["training"]["steps"] == 30
    assert (model / "loss.png").exists() and (model / "previews" / "step_0000025.png").exists()
    report = json.loads((demo / "astronaut_as_grace.mp4.qc.json").read_text())
    assert report["summary"]["coverage"] == 1.0
    assert (work / "preview_faces.png").exists() and (work / "preview_crops.png").exists()
    # a second demo finds everything done
    r = cli("demo", "--out", demo, "--steps", "30")
    assert r.code == 0 and "nothing to do" in r.out, r.out


def _run_on_a_terminal(*args) -> str:
    """Run swapgraph with stdout and stderr on a pseudo-terminal; returns what it showed."""
    code, shown = on_a_terminal(args)
    assert code == 0, shown
    return shown


def test_progress_bar_on_a_terminal_only(clip, tmp_path):
    args = ["run", GRAPHS / "transcode.json", "--set", f"plate.path={clip}", "--set", f"out.path={tmp_path / 'o.mp4'}"]
    shown = _run_on_a_terminal(*args)
    assert "24/24" in shown and "frame/s" in shown and "transcode:" in shown
    quiet = _run_on_a_terminal(*args, "--quiet")
    assert "frame/s" not in quiet and "done:" not in quiet
    proc = swapgraph_subprocess(*args)  # pipes, not a terminal: no bar, the summary still printed
    out, err = proc.communicate(timeout=120)
    assert "frame/s" not in err and out.startswith("done: 24 frames")
