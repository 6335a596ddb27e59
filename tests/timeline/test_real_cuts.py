"""pull and conform on cuts nobody here wrote: sample files OpenTimelineIO's CMX 3600, FCP7
XML and AAF adapters ship (``tests/timeline/data``, Apache-2.0: ``LICENSE-*.txt`` there),
with stand-in media the tests write at each reference's timecode and rate (frame i of a
stand-in shows the number i, so a render's frames say which source frames were pulled).

Issue 21, item by item: retimes in every adapter's form refused; clips the editor disabled
neither pulled nor covering; tracks by number as editors say them; markers on filler,
tracks, audio and the timeline; Avid's media references found by file name; names that
cannot name a file."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from helpers import GRAPHS, decode_all, read_number, write_numbered_clip
from swapgraph.timeline.conform import _covered
from swapgraph.timeline.cut import (cut_clips, is_enabled, parse_rule, search_names, select_clips, time_change,
                                    track_label)
from swapgraph.timeline.formats import media_file_name, media_path, read_timeline

DATA = Path(__file__).parent / "data"
LOSSLESS = ["--set", "out.codec=ffv1", "--set", "out.path=render.mkv"]
SIZE = (160, 90)


@lru_cache(maxsize=None)
def _numbers(path: str) -> list[int]:
    return [read_number(f) for f in decode_all(Path(path))[0]]


def _pull(cli, cut: Path, out: Path, *rules: str, media_root: Path | None = None, extra: tuple[str, ...] = ()):
    selects = [a for r in rules for a in ("--select", r)]
    roots = ["--media-root", media_root] if media_root else []
    return cli("pull", cut, *selects, "--graph", GRAPHS / "transcode.json", "--out", out, *roots, "--workers", "0",
               "--quiet", *extra, *LOSSLESS)


def _refused(r, *words: str) -> None:
    """Exit 2, one line, naming what it must."""
    assert r.code == 2, (r.code, r.err)
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("error: "), r.err
    for word in words:
        assert word in r.err, r.err


def _names(cut: otio.schema.Timeline, *rules: str) -> list[tuple[str, str]]:
    return [(c.clip.name, c.track_label) for c in select_clips(cut, [parse_rule(r) for r in rules], Path("cut"))]


def span(start: int, duration: int, rate: float = 24) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(duration, rate))


def _shown(cut: otio.schema.Timeline, frame: int):
    """What the cut shows at record ``frame``: the top shown video clip there, its place
    (video track index, item index) and the frame of its own time (a source timecode
    value) it plays; Nones over nothing."""
    tracks = cut.video_tracks()
    for ti in reversed(range(len(tracks))):
        if not is_enabled(tracks[ti]):
            continue
        for ii, item in enumerate(tracks[ti]):
            rng = tracks[ti].range_of_child_at_index(ii)
            first = rng.start_time.to_frames()
            if first <= frame < first + rng.duration.to_frames() and isinstance(item, otio.schema.Clip) \
                    and is_enabled(item):
                return item, (ti, ii), item.source_range.start_time.to_frames() + frame - first
    return None, None, None


def _check_conform(cli, cut: Path, pulled: Path, out: Path, media_start: dict[tuple[int, int], int]) -> int:
    """Conform, read the result back, and check every record frame a pulled clip showed:
    the new top track plays the render frame of the very source frame (by its drawn
    number). ``media_start``: each pulled clip's stand-in start (a timecode value), by its
    place (video track index, item index)."""
    r = cli("conform", cut, "--pull", pulled, "--out", out)
    assert r.code == 0, r.err
    before, after = read_timeline(cut), read_timeline(out)
    assert after.video_tracks()[-1].name == "swapgraph"
    checked = 0
    for frame in range(max(t.duration().to_frames() for t in before.video_tracks())):
        clip, place, source = _shown(before, frame)
        if place not in media_start:
            new, _, _ = _shown(after, frame)
            assert new is None or "swapgraph" not in new.metadata, frame  # nothing else swapped
            continue
        new, _, played = _shown(after, frame)
        render = media_path(new.media_reference, out.parent)
        assert render.parent.name == "renders", (frame, render)
        index = played - new.media_reference.available_range.start_time.to_frames()
        assert _numbers(str(render))[index] == source - media_start[place], frame
        checked += 1
    return checked


# ---- 1. retimes ------------------------------------------------------------------------------

def _reversed_edl(folder: Path) -> Path:
    """An EDL reversed at 100% (M2 at -25 frames/s): source and record lengths agree, so the
    adapter drops the M2 and would read a plain clip."""
    path = folder / "reversed.edl"
    path.write_text("TITLE: reversed\nFCM: NON-DROP FRAME\n\n"
                    "001  A001     V     C        01:00:00:10 01:00:00:20 01:00:00:00 01:00:00:10\n"
                    "M2   A001       -025.0                01:00:00:10\n"
                    "* FROM CLIP NAME:  sh010\n")
    return path


@pytest.mark.parametrize("cut,rules,extra,words", [
    ("hiero_xml_export.xml", ["clip:^/$"], (), ["'/'", "Time Remap: speed 0.25"]),  # FCP7 Time Remap, 25%
    ("misc_speed_effects.aaf", ["track:V1"], (), ["'Frame Debugger 0h.mov' (track V1, record frame 8)",
                                                  "freeze frame"]),  # the first clip would pull: its media is there
    ("speed_effects_small.edl", ["clip:^Z686"], ("--rate", "24"), ["'Z686_5A (LAY2) (47.56 FPS)'",
                                                                  "198.333% speed"]),  # M2 at 47.6 frames/s
    ("reversed.edl", ["clip:sh010"], ("--rate", "25"), ["'sh010'", "is reversed"]),  # M2 the adapter drops
], ids=["fcp-timeremap", "aaf-motion-control", "edl-m2", "edl-m2-reverse"])
def test_a_retimed_clip_is_refused_naming_it(cli, tmp_path, cut, rules, extra, words):
    path = _reversed_edl(tmp_path) if cut == "reversed.edl" else DATA / cut
    write_numbered_clip(tmp_path / "Frame Debugger 0h.mkv", 40, fps=24, timecode="00:00:00:00", size=SIZE)
    out = tmp_path / "pull"
    _refused(_pull(cli, path, out, *rules, media_root=tmp_path, extra=extra), path.name, *words)
    assert not out.exists()


def test_every_effect_is_read_for_what_it_does_to_time():
    # the AAF adapter's Avid motion effects, clip by clip (misc_speed_effects.aaf)
    said = [[change and change[0] for change in map(time_change, c.effects)] or [None]
            for c in read_timeline(DATA / "misc_speed_effects.aaf").find_clips()]
    assert said == [[None], ["has a freeze frame"], ["is retimed to 200% speed"], ["is retimed to 50% speed"],
                    ["is retimed to 300% speed"], ["is retimed to 37.5% speed"], ["is retimed to 1437.5% speed"],
                    ["is retimed to 37.5% speed"], ["is reversed (100% speed)"],
                    # a keyframed Timewarp the adapter reads as a 1.0 LinearTimeWarp
                    ["has an Avid Timewarp or Trim to Fill (an offset map, which the AAF adapter reads as 100% speed)"]]

    def fcp(effect_id: str, category: str, *params: tuple[str, str], name: str = "") -> otio.schema.Effect:
        meta = {"effectid": effect_id, "effectcategory": category, "mediatype": "video",
                "parameter": [{"parameterid": k, "name": k, "value": v} for k, v in params]}
        return otio.schema.Effect(name=name or effect_id, metadata={"fcp_xml": meta})

    # FCP7 filters as the adapter reads them: Premiere's Time Remap (premiere_example_filter.xml:
    # 100% but reversed), at 100%, and time-neutral filters on the allow-list
    assert "reversed" in time_change(fcp("timeremap", "motion", ("variablespeed", "0"), ("speed", "100"),
                                         ("reverse", "TRUE")))[0]
    assert "variable speed" in time_change(fcp("timeremap", "motion", ("variablespeed", "1"), ("speed", "108.451"),
                                               ("reverse", "FALSE")))[0]
    assert time_change(fcp("timeremap", "motion", ("variablespeed", "0"), ("speed", "100"), ("reverse", "FALSE"))) \
        is None
    assert time_change(fcp("basic", "motion", ("scale", "93.8"), name="Basic Motion")) is None
    assert time_change(fcp("colorcorrector3way", "Color Correction", name="Color Corrector 3-way")) is None
    assert time_change(fcp("brightness", "Image Control", name="Brightness and Contrast")) is None
    # anything else may retime: refused, whether or not it states a speed
    assert "does not know (Strobe)" in time_change(fcp("strobe", "Stylize", name="Strobe"))[0]
    assert "Resolve Retime: Speed 50" in time_change(otio.schema.Effect(name="Resolve Retime",
                                                                        metadata={"Resolve": {"Speed": "50"}}))[0]
    assert "time effect (Video Speed Control)" in time_change(otio.schema.TimeEffect(name="Video Speed Control"))[0]
    assert time_change(otio.schema.LinearTimeWarp(time_scalar=1.0)) is None  # 100%, no offset map


# ---- 2. disabled clips ---------------------------------------------------------------------

def test_disabled_clips_are_not_selected_and_cover_nothing(cli, tmp_path):
    cut = read_timeline(DATA / "premiere_enable_property.xml")
    # the FCP adapter keeps ``enabled`` true and says FALSE in its metadata, for clips and tracks
    assert [c.clip.enabled for c in cut_clips(cut)] == [True] * 6
    assert [(c.clip.name, is_enabled(c.clip)) for c in cut_clips(cut)] == [
        ("source.mp4", True), ("video_track_1_disabled_1", False), ("source3.mp4", True),
        ("video_track_1_disabled_2", False), ("source.mp4", True), ("video_track_3_disabled_1", False)]
    assert [is_enabled(t) for t in cut.video_tracks()] == [True, True, False]
    # V3 (a disabled track holding a disabled clip) covers nothing of V2; nor does the clip
    # alone once its track is enabled
    assert _covered(cut, 25, 1) == []
    cut.video_tracks()[2].metadata["fcp_xml"]["enabled"] = "TRUE"
    assert _covered(cut, 25, 1) == []
    assert _covered(cut, 25, 0) == [(81, 176)]  # V2's clip does cover V1
    # the AAF adapter reads Avid's muted clip as disabled
    muted = cut_clips(read_timeline(DATA / "test_muted_clip.aaf"))
    assert [is_enabled(c.clip) for c in muted] == [False]
    out = tmp_path / "pull"
    _refused(_pull(cli, DATA / "premiere_enable_property.xml", out, "clip:disabled"),
             "selects no clip", "3 matching clip(s) are disabled")
    _refused(_pull(cli, DATA / "test_muted_clip.aaf", out, "clip:Frame"), "1 matching clip(s) are disabled")
    assert not out.exists()


# ---- 3. tracks by number -------------------------------------------------------------------------

def test_premiere_track_v2_pulls_and_conforms_over_a_disabled_track(cli, tmp_path):
    """Premiere's tracks carry no <name>: track:V2 is the second video track. Its clip
    (source.mp4 from 00:00:17:09) is pulled frame for frame, and conformed whole: the
    disabled V3 above it does not hide it."""
    cut = DATA / "premiere_enable_property.xml"
    media = tmp_path / "media"
    media.mkdir()
    write_numbered_clip(media / "source.mkv", 96, fps=25, timecode="00:00:17:09", size=SIZE)
    out = tmp_path / "pull"
    r = _pull(cli, cut, out, "track:V2", media_root=media)
    assert r.code == 0, r.err
    doc = json.loads((out / "pull.json").read_text())
    assert [(s["clip"], s["source"], s["record"]) for s in doc["shots"]] == [("source.mp4", [0, 95], [81, 176])]
    assert _numbers(str(out / doc["renders"][0]["file"])) == list(range(96))
    start = otio.opentime.from_timecode("00:00:17:09", 25).to_frames()
    for suffix in (".otio", ".xml"):
        assert _check_conform(cli, cut, out, tmp_path / f"conformed{suffix}", {(1, 1): start}) == 96


def test_tracks_are_selected_and_named_as_editors_say_them(cli, tmp_path):
    premiere = read_timeline(DATA / "fcp_premiere_example.xml")
    assert [track_label(premiere, t) for t in premiere.tracks] == ["V1", "V2", "V3", "V4", "A1", "A2", "A3", "A4"]
    assert _names(premiere, "track:V2") == [("sc01_sh010_anim.mov", "V2"), ("sc01_sh020_anim.mov", "V2"),
                                            ("sc01_sh030_anim.mov", "V2")]
    named = read_timeline(DATA / "premiere_enable_property.xml")  # Premiere's own names (MZ.TrackName)
    assert _names(named, "track:overlay_1") == _names(named, "track:v2") == [("source.mp4", 'V2 "overlay_1"')]
    # a track literally named "V2" is V2, wherever it sits
    odd = otio.schema.Timeline(global_start_time=otio.opentime.RationalTime(0, 24))
    for name in ("V2", ""):
        track = otio.schema.Track(name=name)
        track.append(otio.schema.Clip(name=f"on {name or 'unnamed'}", source_range=span(0, 5)))
        odd.tracks.append(track)
    assert _names(odd, "track:V2") == [("on V2", 'V1 "V2"')]
    # messages list tracks that way, and name a clip's track so
    out = tmp_path / "pull"
    _refused(_pull(cli, DATA / "premiere_enable_property.xml", out, "track:V9"),
             'its video tracks (V1 at the bottom): V1 "base", V2 "overlay_1", V3 "disabled_track"')
    _refused(_pull(cli, DATA / "fcp_premiere_example.xml", out, "track:A1"), "A1 is an audio track")
    media = tmp_path / "media"  # Premiere's file://localhost/D%3a/media/... found by name
    media.mkdir()
    write_numbered_clip(media / "sc01_sh010_anim.mkv", 100, fps=30, size=SIZE)
    write_numbered_clip(media / "sc01_sh020_anim.mkv", 175, fps=30, size=SIZE)
    _refused(_pull(cli, DATA / "fcp_premiere_example.xml", out, "track:V2", media_root=media),
             "clip 'sc01_sh030_anim.mov' (track V2, record frame 322) has a transition")
    assert not out.exists()


# ---- 7. markers wherever they sit ----------------------------------------------------------

def test_a_locator_on_filler_selects_the_clip_under_it(cli, tmp_path):
    """Avid's locators on empty tracks (multiple_markers.aaf), read as markers on gaps."""
    cut = read_timeline(DATA / "multiple_markers.aaf")
    assert _names(cut, "marker:CYAN: V3: zts02_1030: f1212: seq.f1665") == [  # on V3's filler at record 856
        ("zts02_1030", "V1"), ("Drop_19.mov", "V4")]
    assert _names(cut, "marker:RED: V5: zts02_1050: f1061: seq.f1885")[0] == ("zts02_1050", "V1")
    # a locator on V4's clip marks it and the clip under it, which its name says it points at
    assert _names(cut, "marker:MAGENTA") == [("zts02_1040", "V1"), ("Drop_24.mov", "V4")]
    media = tmp_path / "media"  # its reference: file://C:/Users/.../DIGITAL_CLOCK_LEADER_Generic_r709_1080p.mov
    media.mkdir()
    write_numbered_clip(media / "DIGITAL_CLOCK_LEADER_Generic_r709_1080p.mkv", 192, fps=24, timecode="01:00:00:00",
                        size=SIZE)
    out = tmp_path / "pull"
    _refused(_pull(cli, DATA / "multiple_markers.aaf", out, "marker:NOPE"),
             "PUBLISH", "FX", "INSERT", "YELLOW: V5: Digital Header: In gap", "CYAN")
    r = _pull(cli, DATA / "multiple_markers.aaf", out, "marker:YELLOW: V5: Digital Header: In gap", media_root=media)
    assert r.code == 0, r.err
    doc = json.loads((out / "pull.json").read_text())
    assert [(s["clip"], s["source"], s["record"]) for s in doc["shots"]] == [
        ("DIGITAL_CLOCK_LEADER_Generic_r709_1080p.mov", [0, 191], [0, 191])]
    assert _numbers(str(out / doc["renders"][0]["file"])) == list(range(192))
    assert _check_conform(cli, DATA / "multiple_markers.aaf", out, tmp_path / "conformed.otio",
                          {(3, 0): 86400}) == 192


def test_markers_on_audio_tracks_and_clips_select_the_picture_under_them():
    cut = otio.schema.Timeline(global_start_time=otio.opentime.RationalTime(0, 24))
    v1, v2, a1 = otio.schema.Track(), otio.schema.Track(), otio.schema.Track(kind=otio.schema.TrackKind.Audio)
    v1.append(otio.schema.Clip(name="plate", source_range=span(1000, 20)))
    v2.extend([otio.schema.Gap(source_range=span(0, 5)), otio.schema.Clip(name="title", source_range=span(0, 5))])
    a1.extend([otio.schema.Gap(source_range=span(0, 12)), otio.schema.Clip(name="dialogue", source_range=span(500, 8))])
    marker = lambda name, at: otio.schema.Marker(name=name, marked_range=span(at, 1))  # noqa: E731
    v1[0].markers.append(marker("on plate", 1006))  # record 6, under the title: marks the plate only
    a1[1].markers.append(marker("on dialogue", 502))  # record 14: the plate
    a1.markers.append(marker("on A1", 7))  # record 7: the plate and the title
    v2[1].markers.append(marker("on title", 1))  # record 6: the title and the plate under it
    cut.tracks.extend([v1, v2, a1])
    assert _names(cut, "marker:on plate") == [("plate", "V1")]
    assert _names(cut, "marker:on dialogue") == [("plate", "V1")]
    assert _names(cut, "marker:on A1") == [("plate", "V1"), ("title", "V2")]
    assert _names(cut, "marker:on title") == [("plate", "V1"), ("title", "V2")]


# ---- 6. Avid's media references -------------------------------------------------------------

def test_avid_media_references_are_found_by_file_name(cli, tmp_path):
    refs = {"file://VSD/Avid MediaFiles/MXF/1/A001C003.mxf": "A001C003.mxf",
            "file://C:/Media/A001C003.mov": "A001C003.mov", "file:///C:/Media/A001%20C003.mov": "A001 C003.mov",
            "C:\\Media\\A001C003.mov": "A001C003.mov", "\\\\server\\share\\A001C003.mov": "A001C003.mov",
            "file://localhost/D%3a/media/sc01_sh010_anim.mov": "sc01_sh010_anim.mov", "/": None}
    for url, name in refs.items():
        ref = otio.schema.ExternalReference(target_url=url)
        assert media_file_name(ref) == name, url
        if name:  # no file here to open (another host, a Windows path): looked up by its name
            assert media_path(ref, tmp_path) is None, url
    screening = cut_clips(read_timeline(DATA / "screening_example.edl"))  # * SOURCE FILE: comments
    assert search_names(screening[0].clip) == ["ZZ100_501.LAY3.01", "ZZ100_501 (LAY3)", "ZZ100_50"]
    # avid_example.edl: * FROM CLIP: S:\path\to\ZZ100_501.take_1.0001.exr
    cut, media, out = DATA / "avid_example.edl", tmp_path / "media", tmp_path / "pull"
    media.mkdir()
    _refused(_pull(cli, cut, out, "clip:^take_1$", media_root=media),
             "take_1", f"media not found: searched {media} and {DATA} for ZZ100_501.take_1.0001.exr, take_1, "
             "ZZ100_50 (each as it is, and with .mov/")
    write_numbered_clip(media / "ZZ100_501.take_1.0001.mkv", 48, fps=24, timecode="01:00:04:00", size=SIZE)
    r = _pull(cli, cut, out, "clip:^take_1$", media_root=media)
    assert r.code == 0, r.err
    shot, = json.loads((out / "pull.json").read_text())["shots"]
    assert shot["media"] == str(media / "ZZ100_501.take_1.0001.mkv") and shot["source"] == [5, 35]
    assert _numbers(str(out / shot["render"])) == list(range(5, 36))


# ---- 8. names that name no file --------------------------------------------------------------

def test_a_clip_named_slash_is_refused_or_found_by_its_reel(cli, tmp_path):
    # hiero_xml_export.xml's clip "/" without its Time Remap: no file, name or reel to look for
    text = (DATA / "hiero_xml_export.xml").read_text()
    cut = tmp_path / "hiero_no_remap.xml"
    cut.write_text(text[:text.index("<filter>")] + text[text.index("</filter>") + len("</filter>"):])
    out = tmp_path / "pull"
    _refused(_pull(cli, cut, out, "clip:^/$", media_root=tmp_path), "clip '/'",
             "the clip has no file, clip or reel name to search for")
    # an EDL's clip named "/" (read for its media's rate first): found by its reel
    edl = tmp_path / "slash.edl"
    edl.write_text("TITLE: slash\nFCM: NON-DROP FRAME\n\n"
                   "001  A001     V     C        01:00:00:10 01:00:00:20 01:00:00:00 01:00:00:10\n"
                   "* FROM CLIP NAME:  /\n")
    _refused(_pull(cli, edl, out, "clip:/", media_root=tmp_path), "clip '/'", f"searched {tmp_path} for A001 (")
    assert not out.exists()
    write_numbered_clip(tmp_path / "A001.mkv", 30, fps=25, timecode="01:00:00:00", size=SIZE)
    r = _pull(cli, edl, out, "clip:/", media_root=tmp_path)
    assert r.code == 0, r.err
    shot, = json.loads((out / "pull.json").read_text())["shots"]
    assert shot["source"] == [10, 19] and _numbers(str(out / shot["render"])) == list(range(10, 20))
    assert np.array_equal(decode_all(out / shot["render"])[0], decode_all(tmp_path / "A001.mkv")[0][10:20])
