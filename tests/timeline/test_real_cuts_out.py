"""The round trip on editors' own files: OpenTimelineIO's adapter samples (``data/``: a
25 fps EDL, Premiere's EDL read at 29.97 non-drop, Avid AAFs at 29.97 non-drop and drop
frame) over stand-in media the tests write (each frame shows its index), pulled with
graphs/transcode.json (lossless FFV1) and conformed into every format. Each pulled record
frame of the read-back conform plays the render frame of the very source frame pulled;
timecodes count as the cut does; an EDL's reels lead back to the renders. Then the rates
``--rate`` takes, a shot a higher track hides, and what a format cannot hold (one line,
exit 2, nothing written)."""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
from opentimelineio.opentime import RationalTime, TimeRange

from helpers import GRAPHS, decode_all, read_number, write_numbered_clip
from swapgraph.cli.main import main
from swapgraph.runtime.errors import ArgumentError, UsageError
from swapgraph.timeline.formats import cut_drop_frame, media_path, parse_rate, read_timeline, write_timeline

DATA = Path(__file__).parent / "data"
LOSSLESS = ["--set", "out.codec=ffv1", "--set", "out.path=render.mkv"]
NTSC = 30000 / 1001
SIZE = (128, 64)  # the 16 bits of the drawn index need 128 pixels, and the digits below them 64

# each sample cut: its rate, the rule, the stand-in media (name: frames) and their start
# timecode, the --rate it needs, whether it counts drop frame, and its shots' record timecodes
CUTS = {
    "edl25": dict(file="cmx_25fps.edl", rate=25, select="clip:^sq001_s00[13]$", rate_flag=[], drop=False,
                  media={"sq001_s001": 171, "sq001_s003": 96}, timecode="01:00:00:00",
                  record_tc=[["00:00:00:00", "00:00:06:10"], ["00:00:14:11", "00:00:17:21"]]),
    "edl2997ndf": dict(file="cmx_premiere_example.edl", rate=NTSC, select="clip:take", rate_flag=["--rate", "29.97"],
                       drop=False, media={"ZZ100_501.take_1.0001": 170, "ZZ100_502A.take_2.0101": 260},
                       timecode="01:00:00:00",
                       record_tc=[["00:59:53:11", "00:59:54:17"], ["00:59:54:18", "00:59:56:19"]]),
    "aaf2997ndf": dict(file="aaf_2997fps.aaf", rate=NTSC, select="clip:^Frame", rate_flag=[], drop=False,
                       media={"Frame Debugger 0h": 150}, timecode=None,
                       record_tc=[["00:00:00:00", "00:00:00:27"], ["00:00:00:28", "00:00:03:21"]]),
    "aaf2997df": dict(file="aaf_2997fps-DFTC.aaf", rate=NTSC, select="clip:^58982c7f", rate_flag=[], drop=True,
                      media={"58982c7f-78b3-4cf9-8432-729fc4eafd55": 2989}, timecode=None,
                      record_tc=[["05:00:00;00", "05:01:39;20"]]),
}
OUTS = [(".otio", None), (".xml", None), (".aaf", None), (".edl", "avid"), (".edl", "premiere")]


@lru_cache(maxsize=None)
def _frames(path: str) -> np.ndarray:
    return decode_all(Path(path))[0]


def _file_start(path: Path, rate: float) -> tuple[int, str | None]:
    """The start timecode a file carries, as frames (0 without one), and its text."""
    with av.open(str(path)) as c:
        tags = {k.lower(): v for s in c.streams for k, v in s.metadata.items()}
    tc = tags.get("timecode")
    return (otio.opentime.from_timecode(tc, rate).to_frames() if tc else 0), tc


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pulls(tmp_path_factory):
    """``pulls(name)``: the sample cut ``name`` copied beside its stand-in media and pulled
    (handles 4), once per module; its cut, pull folder, pull list and media folder."""
    done: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in done:
            spec = CUTS[name]
            folder = tmp_path_factory.mktemp(name)
            cut = folder / spec["file"]
            shutil.copy(DATA / spec["file"], cut)
            media = folder / "media"
            media.mkdir()
            for stem, frames in spec["media"].items():
                write_numbered_clip(media / f"{stem}.mkv", frames, fps=spec["rate"], timecode=spec["timecode"],
                                    size=SIZE)
            out = folder / "pull"
            assert main(["pull", str(cut), "--select", spec["select"], "--graph", str(GRAPHS / "transcode.json"),
                         "--out", str(out), "--media-root", str(media), "--handles", "4", "--workers", "0",
                         "--quiet", *spec["rate_flag"], *LOSSLESS]) == 0
            done[name] = dict(spec, cut=cut, pull=out, media_root=media,
                              doc=json.loads((out / "pull.json").read_text()))
        return done[name]
    return get


def _expected(p: dict) -> dict[int, tuple[Path, int]]:
    """Absolute record frame -> (media file, frame index in it) for every frame pulled."""
    cut = read_timeline(p["cut"], rate=p["rate"])
    start = round(cut.global_start_time.rescaled_to(p["rate"]).value)
    frames = {}
    for shot in p["doc"]["shots"]:
        for k in range(shot["record"][1] - shot["record"][0] + 1):
            frames[start + shot["record"][0] + k] = (Path(shot["media"]), shot["source"][0] + k)
    return frames


def _played(path: Path, rate: float) -> dict[int, tuple[Path, int]]:
    """Absolute record frame -> (file, frame index) for each frame of the conform's top
    video track (an EDL's only one), the index counted from the file's own timecode, as an
    editor relinking by timecode plays it."""
    back = read_timeline(path, rate=rate)
    track = back.video_tracks()[-1]
    start = round(back.global_start_time.rescaled_to(rate).value)
    played = {}
    for clip in track.find_clips():
        media = media_path(clip.media_reference, path.parent)
        assert media is not None and media.parent.name == "renders" and media.is_file(), clip.name
        record = start + round(clip.range_in_parent().start_time.rescaled_to(rate).value)
        source = round(clip.source_range.start_time.rescaled_to(rate).value)
        first, _ = _file_start(media, rate)
        for k in range(round(clip.source_range.duration.rescaled_to(rate).value)):
            played[record + k] = (media, source + k - first)
    return played


@pytest.mark.parametrize("name", list(CUTS))
def test_pull_list_keeps_the_cuts_timecode(pulls, name):
    p = pulls(name)
    doc = p["doc"]
    assert doc["rate"] == p["rate"] and doc["drop_frame"] is p["drop"]  # 25 fps EDL: read at its media's rate
    assert [s["record_tc"] for s in doc["shots"]] == p["record_tc"]
    sep = ";" if p["drop"] else ":"
    for shot in doc["shots"]:  # sources count as their media: non-drop where it has its own timecode
        assert all(tc[8] == (sep if p["timecode"] is None else ":") for tc in shot["source_tc"] + shot["handles_tc"])
    for r in doc["renders"]:  # each render starts at its first media frame's timecode, in that style
        first, tc = _file_start(p["pull"] / r["file"], p["rate"])
        media_first, _ = _file_start(Path(r["media"]), p["rate"])
        assert first == media_first + r["first"] and tc[8] == (sep if p["timecode"] is None else ":")
    rows = list(csv.DictReader((p["pull"] / "pull.csv").open()))
    assert [[r["record_in_tc"], r["record_out_tc"]] for r in rows] == p["record_tc"]


@pytest.mark.parametrize("suffix,style", OUTS)
@pytest.mark.parametrize("name", list(CUTS))
def test_conform_every_format_frame_exact(pulls, cli, name, suffix, style, tmp_path):
    p = pulls(name)
    out = tmp_path / f"conformed{suffix}"
    r = cli("conform", p["cut"], "--pull", p["pull"], "--out", out, *(["--edl-style", style] if style else []))
    assert r.code == 0 and r.err == "", r.err
    expected, played = _expected(p), _played(out, p["rate"])
    assert sorted(played) == sorted(expected)  # every pulled record frame, and no other
    for frame, (render, index) in played.items():
        media, media_index = expected[frame]
        picture = _frames(str(render))[index]
        assert read_number(picture) == media_index, (frame, render.name)
        assert np.array_equal(picture, _frames(str(media))[media_index])
    # the conform counts timecode as the cut does, in every format
    assert cut_drop_frame(read_timeline(out, rate=p["rate"]), out) is p["drop"]
    if suffix == ".edl":
        text = out.read_text()
        events = [line.split() for line in text.splitlines() if line[:1].isdigit()]
        assert ("FCM: DROP FRAME" if p["drop"] else "FCM: NON-DROP FRAME") in text.splitlines()[1]
        assert all((";" in e[-1]) is p["drop"] for e in events)
        assert [e[-2] for e in events] == [tc[0] for tc in p["record_tc"]]  # record in, as pull.json says
    if suffix == ".xml":
        assert f"<displayformat>{'DF' if p['drop'] else 'NDF'}</displayformat>" in out.read_text()
    if suffix == ".aaf":  # the sequence's timecode and each tape's
        assert set(_aaf_drop_flags(out)) == {p["drop"]}


def _aaf_drop_flags(path: Path) -> list[bool]:
    import aaf2

    with aaf2.open(str(path)) as f:
        return [bool(s.segment.drop) for mob in f.content.mobs for s in mob.slots
                if isinstance(s.segment, aaf2.components.Timecode)]


@pytest.mark.parametrize("style", ["avid", "premiere"])
def test_edl_reels_lead_back_to_the_renders(pulls, cli, tmp_path, style):
    p = pulls("edl25")
    renders = {r["reel"]: r["file"] for r in p["doc"]["renders"]}
    assert sorted(renders) == ["SG0001", "SG0002"]  # one reel per render, eight characters at most
    out = tmp_path / "swaps.edl"
    assert cli("conform", p["cut"], "--pull", p["pull"], "--out", out, "--edl-style", style).code == 0
    text = out.read_text()
    events = [line.split() for line in text.splitlines() if line[:1].isdigit()]
    files = re.findall(r"^\* SOURCE FILE: (.+)$", text, re.M)
    assert files == [Path(r["file"]).name for r in p["doc"]["renders"]]  # the full render file name
    back = read_timeline(out, rate=25)
    for event, clip, file in zip(events, back.video_tracks()[0].find_clips(), files):
        render = media_path(clip.media_reference, out.parent)
        if style == "avid":  # Premiere's dialect writes AX for every reel
            assert event[1] in renders and renders[event[1]] == f"renders/{file}"
            assert clip.metadata["cmx_3600"]["reel"] == event[1]
        assert render == p["pull"] / "renders" / file


@pytest.fixture(scope="module")
def media2398(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("edl2398")
    for stem, frames in (("ZZ100_501.take_1.0001", 140), ("ZZ100_502A.take_2.0101", 220)):
        write_numbered_clip(folder / f"{stem}.mkv", frames, fps=24000 / 1001, timecode="01:00:00:00", size=SIZE)
    shutil.copy(DATA / "cmx_premiere_example.edl", folder / "cut.edl")
    return folder


@pytest.mark.parametrize("flag", ["29.97", "30000/1001", "29.97002997002997", "23.976", "24000/1001", "23.98"])
def test_rate_flag_forms(pulls, media2398, cli, tmp_path, flag):
    ntsc30 = parse_rate(flag) == NTSC
    folder = pulls("edl2997ndf")["media_root"] if ntsc30 else media2398
    cut = media2398 / "cut.edl"
    r = cli("pull", cut, "--select", "clip:take", "--graph", GRAPHS / "transcode.json", "--out", tmp_path / "pull",
            "--media-root", folder, "--rate", flag, "--plan", *LOSSLESS)
    assert r.code == 0, r.err
    doc = json.loads((tmp_path / "pull" / "pull.json").read_text())
    assert doc["rate"] == (NTSC if ntsc30 else 24000 / 1001)  # exactly N/1001
    nominal = 30 if ntsc30 else 24
    assert doc["shots"][0]["source"] == [4 * nominal + 5, 5 * nominal + 11]  # 01:00:04:05-01:00:05:11


class TestParseRate:
    @pytest.mark.parametrize("text,rate", [
        ("25", 25.0), ("24", 24.0), (30, 30.0), ("23.976", 24000 / 1001), ("23.98", 24000 / 1001),
        ("29.97", 30000 / 1001), ("59.94", 60000 / 1001), ("47.952", 48000 / 1001), ("30000/1001", 30000 / 1001),
        ("24000/1001", 24000 / 1001), (30000 / 1001, 30000 / 1001), (" 50 ", 50.0), ("50/2", 25.0)])
    def test_forms(self, text, rate):
        assert parse_rate(text) == rate

    @pytest.mark.parametrize("text", ["29.9", "12.5", "0", "-25", "abc", "30000/0", "1e999", "nan", "", "25/x"])
    def test_refused(self, text):
        with pytest.raises(ArgumentError) as info:
            parse_rate(text)
        assert "29.97" in info.value.problem and "30000/1001" in info.value.problem

    def test_cli_refuses_in_one_line(self, pulls, cli, tmp_path):
        p = pulls("edl25")
        r = cli("pull", p["cut"], "--select", "clip:s001", "--graph", GRAPHS / "transcode.json", "--out",
                tmp_path / "pull", "--rate", "29.9", "--plan")
        assert r.code == 2 and len(_lines(r.err)) == 1 and "--rate 29.9" in r.err
        assert not (tmp_path / "pull").exists()


# ---- a shot a higher track hides -------------------------------------------------------------

HIDDEN_PULL = ["--select", "clip:^sh0", "--graph", str(GRAPHS / "transcode.json"), "--workers", "0", "--quiet",
               *LOSSLESS]


def _hiding_cut(folder: Path, name: str, titles: list[tuple[int, int]]) -> Path:
    """V1 "plates": sh010 (20 frames) then sh020 (10); V2 "titles": a title over each
    (first record frame, length) in ``titles``."""
    rt = lambda v: RationalTime(v, 25)  # noqa: E731
    cut = otio.schema.Timeline(name=name, global_start_time=rt(90000))
    plates, over = otio.schema.Track(name="plates"), otio.schema.Track(name="titles")
    for shot, start, length in (("sh010", 0, 20), ("sh020", 30, 10)):
        plates.append(otio.schema.Clip(name=shot, media_reference=otio.schema.ExternalReference(target_url="A.mkv"),
                                       source_range=TimeRange(rt(start), rt(length))))
    at = 0
    for first, length in titles:
        if first > at:
            over.append(otio.schema.Gap(duration=rt(first - at)))
        over.append(otio.schema.Clip(name="title", media_reference=otio.schema.ExternalReference(target_url="A.mkv"),
                                     source_range=TimeRange(rt(50), rt(length))))
        at = first + length
    cut.tracks.extend([plates, over])
    path = folder / f"{name}.otio"
    otio.adapters.write_to_file(cut, str(path))
    return path


@pytest.fixture(scope="module")
def hidden(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("hidden")
    write_numbered_clip(folder / "A.mkv", 60, fps=25, size=SIZE)
    cut = _hiding_cut(folder, "cut", [(20, 10)])  # the title hides sh020 whole
    out = folder / "pull"
    assert main(["pull", str(cut), *HIDDEN_PULL, "--out", str(out)]) == 0
    return {"folder": folder, "cut": cut, "pull": out}


def test_a_hidden_shot_is_warned_of_and_not_rendered(hidden, cli):
    out = hidden["pull"]
    r = cli("pull", hidden["cut"], *HIDDEN_PULL, "--out", out)  # again: renders nothing, warns again
    assert r.code == 0, r.err
    assert _lines(r.err) == ['warning: shot sh020 (\'sh020\' on V1 "plates") is hidden by V2 "titles" for its whole '
                             'length: not rendered, and conform leaves it out']
    doc = json.loads((out / "pull.json").read_text())
    shots = {s["name"]: s for s in doc["shots"]}
    assert shots["sh020"]["hidden_by"] == 'V2 "titles"' and shots["sh020"]["render"] == ""
    assert shots["sh010"]["hidden_by"] == "" and [r["shots"] for r in doc["renders"]] == [["sh010"]]
    assert sorted(p.name for p in (out / "renders").iterdir() if p.suffix == ".mkv") == ["A.000000-000019.mkv"]
    rows = {row["shot"]: row for row in csv.DictReader((out / "pull.csv").open())}
    assert rows["sh020"]["hidden_by"] == 'V2 "titles"' and rows["sh010"]["render_reel"] == "SG0001"
    new = hidden["folder"] / "conformed.otio"
    r = cli("conform", hidden["cut"], "--pull", out, "--out", new)
    assert r.code == 0 and r.err == "" and "(1 hidden at the pull, not rendered)" in r.out, r.err
    assert [c.name for c in read_timeline(new).video_tracks()[-1].find_clips()] == ["sh010_swapgraph"]


def test_only_hidden_shots_are_refused(hidden, cli, tmp_path):
    r = cli("pull", hidden["cut"], "--select", "clip:^sh020$", "--graph", GRAPHS / "transcode.json", "--out",
            tmp_path / "pull", "--workers", "0", *LOSSLESS)
    assert r.code == 2 and len(_lines(r.err)) == 1 and 'sh020 by V2 "titles"' in r.err
    assert not (tmp_path / "pull").exists()


def test_conform_after_the_cut_changed_what_hides(hidden, cli, tmp_path):
    # the title gone: the shot pulled as hidden now shows, and has no render
    shows = _hiding_cut(hidden["folder"], "no_title", [])
    r = cli("conform", shows, "--pull", hidden["pull"], "--out", tmp_path / "a.otio")
    assert r.code == 2 and len(_lines(r.err)) == 1 and "pull it again" in r.err
    # a title over both: nothing of the swapgraph track shows; an EDL of no event is refused
    both = _hiding_cut(hidden["folder"], "all_titles", [(0, 30)])
    r = cli("conform", both, "--pull", hidden["pull"], "--out", tmp_path / "b.edl")
    assert r.code == 2 and "holds no clip" in _lines(r.err)[-1] and "write .otio" in r.err
    assert [line for line in _lines(r.err) if not line.startswith("warning:")] == [_lines(r.err)[-1]]
    assert not (tmp_path / "b.edl").exists()
    assert cli("conform", both, "--pull", hidden["pull"], "--out", tmp_path / "b.otio").code == 0


# ---- what a format cannot hold: one line each, nothing written -------------------------------

def _one_clip(rate: float, *, source: bool = True, available: bool = True, clip_rate: float | None = None):
    rt = lambda v, r=rate: RationalTime(v, r)  # noqa: E731
    cut = otio.schema.Timeline(name="cut", global_start_time=rt(90000))
    track = otio.schema.Track(name="V1")
    ref = otio.schema.ExternalReference(target_url="/media/A.mkv")
    if available:
        ref.available_range = TimeRange(rt(0), rt(100))
    r = clip_rate or rate  # the clip's frames counted at its own rate, the same time
    source_range = TimeRange(rt(10 * r / rate, r), rt(20 * r / rate, r)) if source else None
    track.append(otio.schema.Clip(name="sh010", media_reference=ref, source_range=source_range))
    cut.tracks.append(track)
    return cut


def _refused(timeline, path: Path, *words: str) -> None:
    with pytest.raises(UsageError) as info:
        write_timeline(timeline, path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and all(w in message for w in words), message
    assert list(path.parent.iterdir()) == []


class TestWriteRefusals:
    @pytest.mark.parametrize("suffix", [".edl", ".xml", ".aaf"])
    def test_clip_without_any_range(self, tmp_path, suffix):
        _refused(_one_clip(25, source=False, available=False), tmp_path / f"cut{suffix}", "'sh010'",
                 "neither its source range nor its media's")

    @pytest.mark.parametrize("suffix", [".edl", ".xml", ".aaf"])
    def test_clip_without_source_range_plays_its_media(self, tmp_path, suffix):
        path = tmp_path / f"cut{suffix}"
        write_timeline(_one_clip(25, source=False), path)
        (clip,) = read_timeline(path, rate=25).find_clips()
        assert clip.source_range.duration.to_frames() == 100

    def test_edl_of_an_empty_track(self, tmp_path):
        cut = _one_clip(25)
        cut.tracks[0] = otio.schema.Track(name="V1")
        _refused(cut, tmp_path / "cut.edl", "holds no clip")

    def test_aaf_clip_at_another_rate(self, tmp_path):
        _refused(_one_clip(25, clip_rate=50), tmp_path / "cut.aaf", "clip 'sh010'", "counted at 50 fps in a 25 fps cut")


def test_aaf_logging_stays_off_the_terminal(pulls, cli, caplog, tmp_path):
    def from_aaf2():
        return [r for r in caplog.records if "aaf2" in Path(r.pathname).parts]

    p = pulls("aaf2997df")  # reading it, pyaaf2 logs "Fraction(0,0) not mathematically plausible" 7 times
    with caplog.at_level(logging.INFO):
        otio.adapters.read_from_file(str(p["cut"]), adapter_name="AAF")
        assert from_aaf2()  # the control: pyaaf2 does log reading this file
        caplog.clear()
        r = cli("pull", p["cut"], "--select", p["select"], "--graph", GRAPHS / "transcode.json", "--out",
                tmp_path / "pull", "--media-root", p["media_root"], "--plan", *LOSSLESS)
        assert r.code == 0 and r.err == "", r.err
        assert cli("conform", p["cut"], "--pull", p["pull"], "--out", tmp_path / "c.aaf").code == 0
        assert not from_aaf2()
    # a real terminal: no handler configured, where pyaaf2's logging.warning would print
    done = subprocess.run([sys.executable, "-m", "swapgraph.cli", "conform", str(p["cut"]), "--pull", str(p["pull"]),
                           "--out", str(tmp_path / "d.aaf")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
