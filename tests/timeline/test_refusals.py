"""Every refusal of pull and conform: one line naming the file, clip or argument and the
fix, exit code 2, and nothing written (no pull folder, no timeline)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import opentimelineio as otio
import pytest

from helpers import GRAPHS, write_numbered_clip

RATE = 25


def rt(v: int) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(v, RATE)


def _clip(name: str, media: str, start: int, duration: int, marker: bool = True) -> otio.schema.Clip:
    clip = otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(target_url=media),
                            source_range=otio.opentime.TimeRange(rt(start), rt(duration)))
    if marker:
        clip.markers.append(otio.schema.Marker(name="SWAP", marked_range=otio.opentime.TimeRange(rt(start), rt(1))))
    return clip


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("refusals")
    write_numbered_clip(folder / "A001.mkv", 60, fps=RATE, timecode="01:00:00:00", size=(64, 48))
    write_numbered_clip(folder / "P030.mkv", 30, fps=30, size=(64, 48))
    return folder


def _cut(folder: Path, name: str, *items) -> Path:
    cut = otio.schema.Timeline(name=name, global_start_time=rt(90000))
    track = otio.schema.Track(name="V1")
    for item in items:
        track.append(item)
    cut.tracks.append(track)
    path = folder / f"{name}.otio"
    otio.adapters.write_to_file(cut, str(path))
    return path


def _retimed(scalar: float) -> otio.schema.Clip:
    clip = _clip("sh010", "A001.mkv", 90010, 10)
    clip.effects.append(otio.schema.LinearTimeWarp(time_scalar=scalar))
    return clip


def _frozen() -> otio.schema.Clip:
    clip = _clip("sh010", "A001.mkv", 90010, 10)
    clip.effects.append(otio.schema.FreezeFrame())
    return clip


CASES = {
    "speed": (lambda: [_retimed(2.0)], "sh010", "retimed to 200% speed"),
    "reversed": (lambda: [_retimed(-1.0)], "sh010", "is reversed"),
    "freeze": (lambda: [_frozen()], "sh010", "freeze frame"),
    "transition": (lambda: [_clip("sh009", "A001.mkv", 90000, 10, marker=False),
                            otio.schema.Transition(in_offset=rt(2), out_offset=rt(2)),
                            _clip("sh010", "A001.mkv", 90020, 10)], "sh010", "transition"),
    "missing media": (lambda: [_clip("sh010", "NOPE.mov", 90010, 10)], "NOPE.mov", "not found"),
    "past the media": (lambda: [_clip("sh010", "A001.mkv", 90050, 20)], "sh010", "relink"),
    "other rate": (lambda: [_clip("sh010", "P030.mkv", 0, 10)], "sh010", "30 frames/s in a 25"),
}


def _pull(cli, cut: Path, out: Path, *extra: str):
    return cli("pull", cut, "--select", "marker:SWAP", "--graph", GRAPHS / "transcode.json", "--out", out, *extra)


def _one_line(r, *words: str) -> None:
    assert r.code == 2, (r.code, r.err)
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("error: "), r.err
    for word in words:
        assert word in r.err, r.err


@pytest.mark.parametrize("case", sorted(CASES))
def test_pull_refuses_a_clip_it_cannot_pull_exactly(media, cli, case):
    items, names, says = CASES[case]
    cut = _cut(media, case.replace(" ", "_"), *items())
    out = media / f"out-{case.replace(' ', '_')}"
    _one_line(_pull(cli, cut, out), cut.name, names, says)
    assert not out.exists()


def test_pull_refuses_a_rule_that_selects_nothing(media, cli):
    cut = _cut(media, "plain", _clip("sh010", "A001.mkv", 90010, 10))
    out = media / "out-nothing"
    r = cli("pull", cut, "--select", "marker:NOPE", "--graph", GRAPHS / "transcode.json", "--out", out)
    _one_line(r, "--select marker:NOPE", "selects no clip", "SWAP")  # the markers it has
    r = cli("pull", cut, "--select", "scene:3", "--graph", GRAPHS / "transcode.json", "--out", out)
    _one_line(r, "--select scene:3", "marker:NAME")
    r = cli("pull", cut, "--select", "clip:sh[", "--graph", GRAPHS / "transcode.json", "--out", out)
    _one_line(r, "--select clip:sh[", "regular expression")
    assert not out.exists()


@pytest.mark.parametrize("content", [None, "this is not a cut", '{"OTIO_SCHEMA": "Clip.2"}'])
def test_pull_refuses_an_unreadable_timeline(media, cli, content):
    cut = media / "broken.otio"
    cut.unlink(missing_ok=True)
    if content is not None:
        cut.write_text(content)
    out = media / "out-broken"
    _one_line(_pull(cli, cut, out), "broken.otio")
    assert not out.exists()


def test_pull_refuses_a_graph_that_cannot_render_it(media, cli):
    cut = _cut(media, "graphcheck", _clip("sh010", "A001.mkv", 90010, 10))
    out = media / "out-graph"
    _one_line(_pull(cli, cut, out, "--set", "out.crf=99"), "out", "crf")
    _one_line(_pull(cli, cut, out, "--plate", "out"), "--plate", "Decode")
    _one_line(_pull(cli, cut, out, "--handles", "-1"), "--handles")
    assert not out.exists()


def test_conform_refusals(media, cli):
    cut = _cut(media, "conformcheck", _clip("sh010", "A001.mkv", 90010, 10))
    pulled = media / "out-conform"
    assert _pull(cli, cut, pulled, "--quiet").code == 0
    new = media / "new.otio"
    _one_line(cli("conform", cut, "--pull", media / "nowhere", "--out", new), "pull.json", "swapgraph pull")
    _one_line(cli("conform", cut, "--pull", pulled, "--out", cut), "--out", "untouched")
    _one_line(cli("conform", cut, "--pull", pulled, "--out", media / "new.mov"), "--out", ".otio")
    # the cut changed since the pull: the clip now uses other frames
    moved = _cut(media, "conformcheck-moved", _clip("sh010", "A001.mkv", 90012, 10))
    _one_line(cli("conform", moved, "--pull", pulled, "--out", new), "sh010", "pull it again")
    # a render missing (deleted, or never made by a --plan pull)
    doc = json.loads((pulled / "pull.json").read_text())
    render = pulled / doc["renders"][0]["file"]
    shutil.move(render, render.with_suffix(".bak"))
    _one_line(cli("conform", cut, "--pull", pulled, "--out", new), render.name, "pull again")
    assert not new.exists()
    shutil.move(render.with_suffix(".bak"), render)
    assert cli("conform", cut, "--pull", pulled, "--out", new).code == 0 and new.is_file()
