"""The editorial round trip, end to end with the real adapters: cuts and media the tests
make, pulled with graphs/transcode.json (lossless FFV1, so a render's frame is the media's
frame bit for bit), conformed, read back, and every record frame checked as an editor
would play it: the top video track's clip there, its source time, the file's own start
timecode, the frame's drawn number and pixels."""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from helpers import GRAPHS, decode_all, read_number, write_numbered_clip
from swapgraph.timeline.formats import media_path, read_timeline

LOSSLESS = ["--set", "out.codec=ffv1", "--set", "out.path=render.mkv"]


@lru_cache(maxsize=None)
def _frames(path: str) -> np.ndarray:
    return decode_all(Path(path))[0]


def _file_start(path: Path, rate: float) -> int:
    """The start timecode a file carries, as frames (0 when it has none), read with PyAV."""
    with av.open(str(path)) as c:
        tags = {k.lower(): v for s in c.streams for k, v in s.metadata.items()}
    tc = tags.get("timecode")
    return otio.opentime.from_timecode(tc, rate).to_frames() if tc else 0


def shown(cut: otio.schema.Timeline, frame: int, base: Path, *, media_root: Path | None = None):
    """What the cut shows at record ``frame`` (from its start): the top enabled video
    track's clip there, its media file and the 0-based frame index in it."""
    for track in reversed(cut.video_tracks()):
        for i, item in enumerate(track):
            rng = track.range_of_child_at_index(i)
            first = rng.start_time.to_frames()
            if not (first <= frame < first + rng.duration.to_frames()) or not isinstance(item, otio.schema.Clip):
                continue
            path = media_path(item.media_reference, base)
            if path is None or not path.is_file():
                path = (media_root or base) / f"{item.name}"
            rate = item.source_range.start_time.rate
            source = item.source_range.start_time.to_frames() + frame - first
            return item, path, source - _file_start(path, rate)
    return None, None, None


def _duration(cut: otio.schema.Timeline) -> int:
    return max(t.duration().to_frames() for t in cut.video_tracks())


def _clip(name, media: Path, start: int, duration: int, rate: float, *, marker=None, available=None):
    rt = lambda v: otio.opentime.RationalTime(v, rate)  # noqa: E731
    ref = otio.schema.ExternalReference(target_url=media.name)  # relative: against the cut's folder
    if available is not None:
        ref.available_range = otio.opentime.TimeRange(rt(available[0]), rt(available[1]))
    clip = otio.schema.Clip(name=name, media_reference=ref,
                            source_range=otio.opentime.TimeRange(rt(start), rt(duration)))
    if marker:
        clip.markers.append(otio.schema.Marker(name=marker, color=otio.schema.MarkerColor.RED,
                                               marked_range=otio.opentime.TimeRange(rt(start), rt(1))))
    return clip


@pytest.fixture(scope="module")
def cut25(tmp_path_factory) -> Path:
    """A 25 fps cut starting 01:00:00:00: V1 holds three clips marked SWAP (sh010 starts
    mid-media at 01:00:00:10; sh030 uses sh010's media again; sh020's media has no
    timecode) and one unmarked; V2 holds a clip over part of sh030."""
    folder = tmp_path_factory.mktemp("cut25")
    a = write_numbered_clip(folder / "A001.mkv", 120, fps=25, timecode="01:00:00:00")
    b = write_numbered_clip(folder / "B002.mkv", 80, fps=25, tint=60)
    rate, hour = 25, 90000
    cut = otio.schema.Timeline(name="cut25", global_start_time=otio.opentime.RationalTime(hour, rate))
    v1, v2 = otio.schema.Track(name="V1"), otio.schema.Track(name="V2")
    v1.append(_clip("sh010", a, hour + 10, 20, rate, marker="SWAP", available=(hour, 120)))
    v1.append(_clip("sh020", b, 5, 15, rate, marker="SWAP"))
    v1.append(otio.schema.Gap(duration=otio.opentime.RationalTime(5, rate)))
    v1.append(_clip("sh030", a, hour + 50, 20, rate, marker="SWAP", available=(hour, 120)))
    v1.append(_clip("sh040", b, 40, 10, rate))
    v2.append(otio.schema.Gap(duration=otio.opentime.RationalTime(50, rate)))
    v2.append(_clip("title", b, 60, 6, rate))
    cut.tracks.extend([v1, v2])
    path = folder / "cut25.otio"
    otio.adapters.write_to_file(cut, str(path))
    return path


@pytest.fixture(scope="module")
def pulled25(cut25) -> Path:
    from swapgraph.cli.main import main

    out = cut25.parent / "pull"
    assert main(["pull", str(cut25), "--select", "marker:SWAP", "--graph", str(GRAPHS / "transcode.json"),
                 "--out", str(out), "--handles", "8", "--quiet", *LOSSLESS]) == 0
    return out


def test_pull_list_and_renders(cut25, pulled25, cli):
    doc = json.loads((pulled25 / "pull.json").read_text())
    shots = {s["name"]: s for s in doc["shots"]}
    assert sorted(shots) == ["sh010", "sh020", "sh030"]
    # source frames as indexes into the media: sh010 starts 10 frames into A001 (01:00:00:10)
    assert shots["sh010"]["source"] == [10, 29] and shots["sh010"]["source_tc"] == ["01:00:00:10", "01:00:01:04"]
    assert shots["sh020"]["source"] == [5, 19] and shots["sh020"]["source_tc"] == ["00:00:00:05", "00:00:00:19"]
    assert shots["sh030"]["record"] == [40, 59] and shots["sh030"]["record_tc"] == ["01:00:01:15", "01:00:02:09"]
    # handles: 8 where the media has them, clamped at B002's first frame
    assert shots["sh010"]["handles"] == [2, 37] and shots["sh030"]["handles"] == [42, 77]
    assert shots["sh020"]["handles"] == [0, 27]
    # A001 twice: rendered once per stretch of frames the two clips cover, no gap rendered
    renders = {r["file"]: r for r in doc["renders"]}
    assert sorted(renders) == ["renders/A001.000002-000037.mkv", "renders/A001.000042-000077.mkv",
                               "renders/B002.000000-000027.mkv"]
    for name, r in renders.items():
        frames = _frames(str(pulled25 / name))
        assert [read_number(f) for f in frames] == list(range(r["first"], r["last"] + 1))
        source = _frames(str(Path(r["media"])))
        assert np.array_equal(frames, source[r["first"]:r["last"] + 1])  # lossless: bit for bit
        side = json.loads((pulled25 / (name + ".swapgraph.json")).read_text())
        assert side["synthetic_media"] is True and side["source_frames"] == [r["first"], r["last"]]
    # each render starts at its first media frame's timecode (B002 has none: counted from 0)
    assert _file_start(pulled25 / "renders/A001.000002-000037.mkv", 25) == 90002
    assert _file_start(pulled25 / "renders/B002.000000-000027.mkv", 25) == 0
    rows = list(csv.DictReader((pulled25 / "pull.csv").open()))
    assert [r["shot"] for r in rows] == ["sh010", "sh020", "sh030"]
    assert rows[0]["handle_in_tc"] == "01:00:00:02" and rows[0]["record_out_tc"] == "01:00:00:19"
    # a second pull with the same arguments renders nothing
    r = cli("pull", cut25, "--select", "marker:SWAP", "--graph", GRAPHS / "transcode.json", "--out", pulled25,
            "--handles", "8", *LOSSLESS)
    assert r.code == 0 and "(0 rendered, 3 already complete)" in r.out, r.err


def test_conform_shows_the_swap_of_every_frame_the_cut_shows(cut25, pulled25, cli):
    out = cut25.parent / "conformed.otio"
    r = cli("conform", cut25, "--pull", pulled25, "--out", out)
    assert r.code == 0, r.err
    before, after = read_timeline(cut25), read_timeline(out)
    assert [t.name for t in after.video_tracks()] == ["V1", "V2", "swapgraph"]
    # the original tracks are untouched
    for old, new in zip(before.video_tracks(), after.video_tracks()):
        assert otio.adapters.write_to_string(old) == otio.adapters.write_to_string(new)
    swapped = 0
    for frame in range(_duration(before)):
        clip, path, index = shown(before, frame, cut25.parent)
        new_clip, new_path, new_index = shown(after, frame, cut25.parent)
        if clip is None:
            assert new_clip is None
            continue
        picture, new_picture = _frames(str(path))[index], _frames(str(new_path))[new_index]
        assert read_number(new_picture) == index  # the very source frame the cut showed
        assert np.array_equal(picture, new_picture)
        if clip.markers:  # a pulled clip: the render shows, never the camera file
            assert new_path.parent.name == "renders" and new_clip.metadata["swapgraph"]["synthetic_media"]
            swapped += 1
        else:
            assert new_path == path  # sh040 and the V2 clip show as they were
    assert swapped == 20 + 15 + 20 - 6  # sh030's 6 frames under V2's clip stay V2's
    for clip in after.video_tracks()[2].find_clips():
        # the reference's available range is the render's own: where its timecode starts, how long it is
        path = media_path(clip.media_reference, cut25.parent)
        available = clip.media_reference.available_range
        assert available.start_time.to_frames() == _file_start(path, 25)
        assert available.duration.to_frames() == len(_frames(str(path)))
    meta = next(c for c in after.video_tracks()[2].find_clips()).metadata["swapgraph"]
    assert Path(meta["sidecar"]).is_file() and len(meta["graph_hash"]) == 64


@pytest.mark.parametrize("suffix,style", [(".otio", None), (".xml", None), (".aaf", None), (".edl", "avid"),
                                          (".edl", "premiere")])
def test_conformed_cut_reads_back_in_every_format(cut25, pulled25, cli, suffix, style):
    out = cut25.parent / f"conformed-{style or 'x'}{suffix}"
    r = cli("conform", cut25, "--pull", pulled25, "--out", out, *(["--edl-style", style] if style else []))
    assert r.code == 0, r.err
    back = read_timeline(out, rate=25)
    track = back.video_tracks()[-1]
    clips = [(c.name, c.range_in_parent().start_time.to_frames(), c.source_range.duration.to_frames(),
              media_path(c.media_reference, out.parent)) for c in track.find_clips()]
    assert len(clips) == 4
    expect = [("sh010", 0, 20), ("sh020", 20, 15), ("sh030", 40, 10), ("sh030", 56, 4)]
    for (name, record, duration, media), (shot, rec, dur) in zip(clips, expect):
        assert media is not None and media.parent.name == "renders" and media.is_file()
        ref = next(c for c in track.find_clips() if media_path(c.media_reference, out.parent) == media).media_reference
        if suffix != ".edl":  # an EDL states no media range
            assert ref.available_range.start_time.to_frames() == _file_start(media, 25)
        # Premiere's EDL dialect names a clip by its file; the others keep the shot's name
        assert (media.name if style == "premiere" else shot) in name and (record, duration) == (rec, dur)
    # every frame of the read-back track plays the render frame of the source frame pulled
    for frame in range(_duration(back)):
        clip, path, index = shown(back, frame, out.parent)
        if clip is not None and path.parent.name == "renders":
            assert read_number(_frames(str(path))[index]) == \
                shown(read_timeline(cut25), frame, cut25.parent)[2]


def _edl_event(n: int, reel: str, source: tuple[int, int], record: tuple[int, int], rate: float, clip: str) -> str:
    tc = lambda f: otio.opentime.to_timecode(otio.opentime.RationalTime(f, rate), rate, drop_frame=True)  # noqa: E731
    return (f"{n:03d}  {reel:<8} V     C        {tc(source[0])} {tc(source[1])} {tc(record[0])} {tc(record[1])}\n"
            f"* FROM CLIP NAME: {clip}\n\n")


@pytest.fixture(scope="module")
def cut2997(tmp_path_factory) -> Path:
    """A 29.97 drop-frame EDL (no rate in the file, media by clip name only), its media
    starting at 00:00:59;00, so the first clip crosses the drop at 00:01:00;00."""
    folder = tmp_path_factory.mktemp("cut2997")
    media = folder / "media"
    media.mkdir()
    write_numbered_clip(media / "C003.mkv", 150, fps=30000 / 1001, timecode="00:00:59;00", size=(160, 90))
    write_numbered_clip(media / "D004.mkv", 60, fps=30000 / 1001, timecode="00:00:59;00", size=(160, 90), tint=90)
    rate = 30000 / 1001
    start = otio.opentime.from_timecode("00:00:59;00", rate).to_frames()
    hour = otio.opentime.from_timecode("01:00:00;00", rate).to_frames()
    text = "TITLE: cut2997\nFCM: DROP FRAME\n\n"
    text += _edl_event(1, "C003", (start + 20, start + 38), (hour, hour + 18), rate, "C003.mkv")
    text += _edl_event(2, "D004", (start + 5, start + 17), (hour + 18, hour + 30), rate, "D004.mkv")
    text += _edl_event(3, "C003", (start + 100, start + 130), (hour + 30, hour + 60), rate, "C003.mkv")
    path = folder / "cut2997.edl"
    path.write_text(text)
    return path


def test_drop_frame_edl_round_trip(cut2997, cli):
    out = cut2997.parent / "pull"
    r = cli("pull", cut2997, "--select", "clip:^C003", "--graph", GRAPHS / "transcode.json", "--out", out,
            "--media-root", cut2997.parent / "media", "--workers", "0", *LOSSLESS)
    assert r.code == 0, r.err
    shots = json.loads((out / "pull.json").read_text())["shots"]
    assert [s["name"] for s in shots] == ["C003_1", "C003_2"]
    # 18 frames from 00:00:59;20 cross the minute: ;00 and ;01 of 00:01:00 do not exist
    assert shots[0]["source"] == [20, 37] and shots[0]["source_tc"] == ["00:00:59;20", "00:01:00;09"]
    assert shots[1]["record_tc"] == ["01:00:01;00", "01:00:01;29"]
    assert _file_start(out / shots[0]["render"], 30000 / 1001) == \
        otio.opentime.from_timecode("00:00:59;20", 30000 / 1001).to_frames()
    media_root = cut2997.parent / "media"
    before = read_timeline(cut2997, rate=30000 / 1001)
    for suffix in (".edl", ".otio"):
        new = cut2997.parent / f"conformed{suffix}"
        r = cli("conform", cut2997, "--pull", out, "--out", new)
        assert r.code == 0, r.err
        if suffix == ".edl":
            assert "FCM: DROP FRAME" in new.read_text()
        after = read_timeline(new, rate=30000 / 1001)
        checked = 0
        for frame in range(_duration(before)):
            clip, path, index = shown(before, frame, cut2997.parent, media_root=media_root)
            new_clip, new_path, new_index = shown(after, frame, new.parent, media_root=media_root)
            if clip.name.startswith("C003"):
                picture = _frames(str(new_path))[new_index]
                assert new_path.parent.name == "renders" and read_number(picture) == index
                assert np.array_equal(picture, _frames(str(path))[index])
                checked += 1
            elif suffix == ".otio":
                assert new_path == path
        assert checked == 18 + 30


def test_plan_prints_the_farm_commands_that_make_the_renders(cut25, cli, tmp_path):
    import shlex
    import subprocess
    import sys

    out = tmp_path / "pull"
    r = cli("pull", cut25, "--select", "track:V1", "--graph", GRAPHS / "transcode.json", "--out", out,
            "--plan", *LOSSLESS)
    assert r.code == 0, r.err
    lines = [line for line in r.out.splitlines() if line and not line.startswith("#")]
    joins = [line for line in lines if shlex.split(line)[1] == "join"]
    assert len(joins) == 4 and len(lines) == 8  # V1: four clips, none sharing frames: one chunk and a join each
    assert not list((out / "renders").iterdir())  # --plan renders nothing
    for line in lines:  # what a farm manager runs, in order
        args = shlex.split(line)
        done = subprocess.run([sys.executable, "-m", "swapgraph.cli", *args[1:]], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    r = cli("conform", cut25, "--pull", out, "--out", tmp_path / "conformed.otio")
    assert r.code == 0, r.err
    after = read_timeline(tmp_path / "conformed.otio")
    for frame in range(_duration(after)):
        clip, path, index = shown(after, frame, tmp_path)
        if clip is not None and path.parent.name == "renders":
            assert read_number(_frames(str(path))[index]) == shown(read_timeline(cut25), frame, cut25.parent)[2]


@pytest.mark.parametrize("suffix", [".xml", ".aaf"])
def test_pull_and_conform_a_premiere_xml_or_avid_aaf_cut(cut25, cli, tmp_path, suffix):
    """The cut as Premiere (FCP7 XML) or Avid (AAF) hands it over, pulled and conformed
    back into the same format: every frame of the read-back conform lines up."""
    from swapgraph.timeline.formats import write_timeline

    cut = cut25.parent / f"cut25{suffix}"
    write_timeline(read_timeline(cut25), cut)
    out = tmp_path / "pull"
    r = cli("pull", cut, "--select", "clip:^sh0[123]0$", "--graph", GRAPHS / "transcode.json", "--out", out,
            "--quiet", *LOSSLESS)
    assert r.code == 0, r.err
    shots = json.loads((out / "pull.json").read_text())["shots"]
    assert [s["name"] for s in shots] == ["sh010", "sh020", "sh030"]
    # B002 states no timecode, and the .otio cut no range for it: the file's own range was
    # written (from 00:00:00:00), not the clip's, so its source frames are still 5-19
    assert shots[1]["source"] == [5, 19]
    new = tmp_path / f"conformed{suffix}"
    r = cli("conform", cut, "--pull", out, "--out", new)
    assert r.code == 0, r.err
    before, after = read_timeline(cut), read_timeline(new)
    assert after.video_tracks()[-1].name == "swapgraph" and len(after.video_tracks()) == 3
    swapped = 0
    for frame in range(_duration(before)):
        clip, path, index = shown(before, frame, cut.parent)
        new_clip, new_path, new_index = shown(after, frame, new.parent)
        if clip is None:
            continue
        assert read_number(_frames(str(new_path))[new_index]) == index
        swapped += new_path.parent.name == "renders"
    assert swapped == 20 + 15 + 20 - 6
