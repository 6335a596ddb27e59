"""Timeline formats through the real adapters: a two-track cut written as .otio, FCP7 .xml
and .aaf and read back; its swapgraph track alone as EDL in the Avid and Premiere styles;
a 29.97 drop-frame cut; the refusals; and media_path. Comparisons are in exact frames."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from opentimelineio.opentime import RationalTime, TimeRange, from_timecode

from helpers import write_numbered_clip
from swapgraph.runtime.errors import UsageError
from swapgraph.timeline.formats import FORMATS, media_path, read_timeline, write_timeline

MEDIA_FRAMES = 40
# (gap before the clip, source frames from the media's start, duration): gaps between clips,
# sources starting mid-media
LAYOUT = [(10, 5, 20), (5, 12, 15), (7, 3, 30)]
SWAP_META = {"synthetic_media": True, "graph_hash": "9f2c1e", "sidecar": "renders/shot 0.json"}


def build_cut(media: dict[str, Path], rate: float, start_tc: str) -> otio.schema.Timeline:
    """V1 holding three shots with gaps between, "swapgraph" above it with renders at the
    same record ranges; media start at ``start_tc``; one marker on each track's first clip."""
    def rt(frames: int) -> RationalTime:
        return RationalTime(frames, rate)

    start = from_timecode(start_tc, rate)
    tl = otio.schema.Timeline(name="reel 1 cut", global_start_time=start)
    for track_name, prefix in (("V1", "shot"), ("swapgraph", "swap")):
        track = otio.schema.Track(name=track_name, kind=otio.schema.TrackKind.Video)
        for i, (gap, src, dur) in enumerate(LAYOUT):
            track.append(otio.schema.Gap(source_range=TimeRange(rt(0), rt(gap))))
            ref = otio.schema.ExternalReference(target_url=media[f"{prefix} {i}"].as_uri(),
                                                available_range=TimeRange(start, rt(MEDIA_FRAMES)))
            clip = otio.schema.Clip(name=f"{prefix}{i}", media_reference=ref,
                                    source_range=TimeRange(start + rt(src), rt(dur)))
            if prefix == "swap":
                clip.metadata["swapgraph"] = dict(SWAP_META, sidecar=f"renders/swap {i}.json")
            if i == 0:
                clip.markers.append(otio.schema.Marker(name="CHECK EYES", color=otio.schema.MarkerColor.RED,
                                                       marked_range=TimeRange(start + rt(src + 2), rt(0))))
            track.append(clip)
        tl.tracks.append(track)
    return tl


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Six small real clips (names with spaces, so URLs carry %20), timecode 01:00:00:00."""
    folder = tmp_path_factory.mktemp("media")
    return {name: write_numbered_clip(folder / f"{name}.mkv", MEDIA_FRAMES, fps=25, timecode="01:00:00:00",
                                      size=(64, 36))
            for name in [f"{p} {i}" for p in ("shot", "swap") for i in range(3)]}


@pytest.fixture
def cut(media) -> otio.schema.Timeline:
    return build_cut(media, 25, "01:00:00:00")


def frames(t: RationalTime, rate: float) -> int:
    return t.to_frames(rate)


def clips_of(track: otio.schema.Track, timeline: otio.schema.Timeline, base: Path) -> list[tuple]:
    """(name, record in, duration, source in, source duration, media file) per clip, record
    frames absolute (the global start plus the place in the track)."""
    rate = timeline.global_start_time.rate
    start = frames(timeline.global_start_time, rate)
    rows = []
    for clip in track.find_clips():
        rec = clip.range_in_parent()
        assert rec == clip.trimmed_range_in_parent()
        rows.append((clip.name, start + frames(rec.start_time, rate), frames(rec.duration, rate),
                     frames(clip.source_range.start_time, rate), frames(clip.source_range.duration, rate),
                     media_path(clip.media_reference, base)))
    return rows


def markers_of(track: otio.schema.Track, rate: float) -> list[tuple]:
    return [(clip.name, m.name, frames(m.marked_range.start_time, rate))
            for clip in track.find_clips() for m in clip.markers]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class TestRoundTrip:
    """Write, read back, compare: what each format keeps is what the module docstring says."""

    @pytest.mark.parametrize("suffix", [".otio", ".xml", ".aaf"])
    def test_two_tracks(self, cut, tmp_path, suffix):
        before = cut.to_json_string()
        path = tmp_path / f"reel 1{suffix}"
        write_timeline(cut, path)
        assert cut.to_json_string() == before  # the caller's timeline is untouched
        assert listing(tmp_path) == [path.name]  # no temporary left beside it

        back = read_timeline(path)
        assert frames(back.global_start_time, 25) == 90000
        want, got = cut.video_tracks(), back.video_tracks()
        assert [t.name for t in got] == ["V1", "swapgraph"]
        for w, g in zip(want, got):
            assert clips_of(g, back, tmp_path) == clips_of(w, cut, tmp_path)
            assert all(media_path(c.media_reference, tmp_path).is_file() for c in g.find_clips())
            assert all(frames(c.media_reference.available_range.start_time, 25) == 90000
                       and frames(c.media_reference.available_range.duration, 25) == MEDIA_FRAMES
                       for c in g.find_clips())
        swapped = got[1].find_clips()
        assert [dict(c.metadata["swapgraph"]) for c in swapped] == [
            dict(c.metadata["swapgraph"]) for c in want[1].find_clips()]
        assert swapped[0].metadata["swapgraph"]["synthetic_media"] is True
        if suffix == ".aaf":  # the AAF adapter writes no markers
            assert markers_of(got[0], 25) == []
        else:
            assert markers_of(got[0], 25) == markers_of(want[0], 25) == [("shot0", "CHECK EYES", 90007)]
        if suffix == ".xml":  # the stowed comment is taken out again
            assert "comments" not in swapped[0].metadata.get("fcp_xml", {})

    @pytest.mark.parametrize("style", ["avid", "premiere"])
    def test_edl_one_track(self, cut, tmp_path, style):
        swap_only = otio.schema.Timeline(name=cut.name, global_start_time=cut.global_start_time)
        swap_only.tracks.append(cut.tracks[1].deepcopy())
        path = tmp_path / "reel 1.edl"
        write_timeline(swap_only, path, edl_style=style)
        text = path.read_text()
        assert text.startswith("TITLE: reel 1 cut\nFCM: NON-DROP FRAME\n")
        events = [line.split() for line in text.splitlines() if line[:1].isdigit()]
        # record timecodes count from the global start; one reel per event, without spaces
        assert [e[6] for e in events] == ["01:00:00:10", "01:00:01:10", "01:00:02:07"]
        assert [e[1] for e in events] == (["swap0", "swap1", "swap2"] if style == "avid" else ["AX"] * 3)

        back = read_timeline(path, rate=25)
        (track,) = back.video_tracks()
        # the global start comes back as the first record timecode: absolute records match
        assert frames(back.global_start_time, 25) == 90000 + LAYOUT[0][0]
        want = clips_of(cut.tracks[1], cut, tmp_path)
        if style == "premiere":  # clips are named after their media files
            want = [(f"swap {i}.mkv", *row[1:]) for i, row in enumerate(want)]
        assert clips_of(track, back, tmp_path) == want
        assert markers_of(track, 25) == [(want[0][0], "CHECK EYES", 90007)]
        assert "swapgraph" not in track.find_clips()[0].metadata  # an EDL keeps no metadata

    def test_edl_written_again_keeps_its_record_timecodes(self, cut, tmp_path):
        """An EDL read back (record start in the global start, leading gaps) writes the same
        events: the normalisation round-trips."""
        swap_only = otio.schema.Timeline(name=cut.name, global_start_time=cut.global_start_time)
        swap_only.tracks.append(cut.tracks[1].deepcopy())
        first, second = tmp_path / "a.edl", tmp_path / "b.edl"
        write_timeline(swap_only, first)
        write_timeline(read_timeline(first, rate=25), second)
        assert second.read_text() == first.read_text()


class TestDropFrame:
    RATE = 30000 / 1001

    @pytest.fixture
    def cut_df(self, media) -> otio.schema.Timeline:
        return build_cut(media, self.RATE, "01:00:00;00")

    def rows(self, track, timeline, base):
        rate = timeline.global_start_time.rate
        start = timeline.global_start_time.to_frames(rate)
        return [(c.name, start + c.range_in_parent().start_time.to_frames(rate), c.source_range.start_time.to_frames(rate),
                 c.source_range.duration.to_frames(rate), media_path(c.media_reference, base)) for c in track.find_clips()]

    @pytest.mark.parametrize("suffix", [".otio", ".xml", ".aaf"])
    def test_round_trip(self, cut_df, tmp_path, suffix):
        path = tmp_path / f"df{suffix}"
        write_timeline(cut_df, path)
        if suffix == ".xml":  # shown as drop frame, not as 00:59:56:12 non-drop
            assert "<string>01:00:00;00</string>" in path.read_text() and "00:59:56" not in path.read_text()
        back = read_timeline(path)
        assert back.global_start_time.to_frames(self.RATE) == 107892  # 01:00:00;00
        for w, g in zip(cut_df.video_tracks(), back.video_tracks()):
            assert self.rows(g, back, tmp_path) == self.rows(w, cut_df, tmp_path)

    def test_edl(self, cut_df, tmp_path):
        swap_only = otio.schema.Timeline(name="df", global_start_time=cut_df.global_start_time)
        swap_only.tracks.append(cut_df.tracks[1].deepcopy())
        path = tmp_path / "df.edl"
        write_timeline(swap_only, path)
        text = path.read_text()
        assert "FCM: DROP FRAME" in text.splitlines()[1]
        assert "01:00:00;10" in text
        want = self.rows(cut_df.tracks[1], cut_df, tmp_path)
        back = read_timeline(path, rate=Fraction(30000, 1001))
        assert self.rows(back.tracks[0], back, tmp_path) == want

        # Avid writes drop frame with colons and says so only in the FCM line
        colons = tmp_path / "colons.edl"
        colons.write_text(text.replace(";", ":"))
        back = read_timeline(colons, rate=self.RATE)
        assert self.rows(back.tracks[0], back, tmp_path) == want


class TestReadRefusals:
    def refused(self, path: Path, **kwargs) -> str:
        with pytest.raises(UsageError) as info:
            read_timeline(path, **kwargs)
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        return message

    def test_missing_file(self, tmp_path):
        assert "no such timeline file" in self.refused(tmp_path / "cut.edl")

    def test_unknown_suffix(self, tmp_path):
        (tmp_path / "cut.txt").write_text("TITLE: x\n")
        message = self.refused(tmp_path / "cut.txt")
        assert all(s in message for s in FORMATS)

    @pytest.mark.parametrize("suffix, content", [
        (".otio", "{not json"), (".edl", "TITLE: x\n\nhello world\n"), (".xml", "<xmeml><oops"),
        (".aaf", "not a compound file at all"), (".otio", json.dumps({"OTIO_SCHEMA": "Clip.2", "name": "x"}))])
    def test_garbage(self, tmp_path, suffix, content):
        path = tmp_path / f"cut{suffix}"
        path.write_text(content)
        message = self.refused(path)
        assert "cannot read" in message or "not a timeline" in message

    def test_edl_at_the_wrong_rate_names_the_rate(self, tmp_path):
        path = tmp_path / "cut.edl"
        path.write_text("TITLE: x\n\n001  AX V C 01:00:00:24 01:00:01:00 01:00:00:00 01:00:00:01\n")
        assert "read at 24 fps" in self.refused(path)
        assert read_timeline(path, rate=25).find_clips()[0].source_range.duration.value == 1

    def test_xml_with_several_sequences(self, cut, tmp_path):
        other = cut.deepcopy()
        other.name = "alt cut"
        path = tmp_path / "two.xml"
        path.write_text(otio.adapters.write_to_string(
            otio.schema.SerializableCollection(name="bin", children=[cut.deepcopy(), other]), "fcp_xml"))
        message = self.refused(path)
        assert "2 sequences" in message and "alt cut" in message


class TestWriteRefusals:
    def refused(self, timeline, path: Path, **kwargs) -> str:
        with pytest.raises(UsageError) as info:
            write_timeline(timeline, path, **kwargs)
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        assert listing(path.parent) == []  # nothing written, no temporary left
        return message

    def test_unknown_suffix(self, cut, tmp_path):
        assert ".otio" in self.refused(cut, tmp_path / "cut.mov")

    def test_edl_with_two_video_tracks(self, cut, tmp_path):
        message = self.refused(cut, tmp_path / "cut.edl")
        assert "one video track" in message and "'swapgraph'" in message

    def test_unknown_edl_style(self, cut, tmp_path):
        one = otio.schema.Timeline(global_start_time=cut.global_start_time)
        one.tracks.append(cut.tracks[0].deepcopy())
        assert "'premiere'" in self.refused(one, tmp_path / "cut.edl", edl_style="resolve")

    def test_adapter_refusal_leaves_nothing(self, cut, tmp_path):
        """The AAF writer refuses a clip whose rate differs from the cut's: after the
        temporary file was begun, so this also proves it is removed."""
        clip = cut.tracks[0].find_clips()[0]
        clip.source_range = TimeRange(RationalTime(90005 * 2, 50), RationalTime(40, 50))
        assert "cannot write" in self.refused(cut, tmp_path / "cut.aaf")

    def test_aaf_transition_without_aaf_metadata(self, cut, tmp_path):
        track = cut.tracks[0]  # gap, shot0, gap, shot1, ...: shot0 and shot1 made to meet with a dissolve
        track[2] = otio.schema.Transition(transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                          in_offset=RationalTime(2, 25), out_offset=RationalTime(2, 25))
        assert "1 transition(s)" in self.refused(cut, tmp_path / "cut.aaf")

    def test_missing_folder(self, cut, tmp_path):
        with pytest.raises(UsageError, match="does not exist"):
            write_timeline(cut, tmp_path / "nowhere" / "cut.otio")


class TestMediaPath:
    def ref(self, url):
        return otio.schema.ExternalReference(target_url=url)

    def test_file_urls(self, tmp_path):
        assert media_path(self.ref("file:///media/shot%20010.mov"), tmp_path) == Path("/media/shot 010.mov")
        assert media_path(self.ref("file://localhost/media/a%23b.mov"), tmp_path) == Path("/media/a#b.mov")
        assert media_path(self.ref(Path("/tmp/é x.mov").as_uri()), tmp_path) == Path("/tmp/é x.mov")

    def test_plain_paths(self, tmp_path):
        assert media_path(self.ref("/media/shot 010.mov"), tmp_path) == Path("/media/shot 010.mov")
        assert media_path(self.ref("renders/shot.mov"), tmp_path) == tmp_path / "renders" / "shot.mov"

    def test_no_file(self, tmp_path):
        assert media_path(otio.schema.MissingReference(), tmp_path) is None
        assert media_path(otio.schema.ExternalReference(), tmp_path) is None
        assert media_path(None, tmp_path) is None
        assert media_path(self.ref("https://example.com/a.mov"), tmp_path) is None
        assert media_path(self.ref("file://server/share/a.mov"), tmp_path) is None


AVID_EDL = """TITLE: from avid
FCM: NON-DROP FRAME

001  A001C003 V     C        10:00:01:00 10:00:02:00 01:00:00:00 01:00:01:00
* FROM CLIP NAME:  A001C003_220101
002  A001C003 AA    C        10:00:01:12 10:00:02:00 01:00:00:12 01:00:01:00
* FROM CLIP NAME:  A001C003_220101
003  A001C004 V     C        11:00:00:10 11:00:00:20 01:00:02:00 01:00:02:10
* FROM CLIP NAME:  A001C004
* FROM CLIP: /media/A001C004.mov
"""


class TestCutFromAnEdl:
    """What conform does to a cut that came as an EDL: a track of renders added at the same
    record frames, written in each format; clips without media (no FROM CLIP line) too."""

    @pytest.fixture
    def edl_cut(self, tmp_path) -> otio.schema.Timeline:
        path = tmp_path / "avid.EDL"  # Avid writes the suffix in capitals
        path.write_text(AVID_EDL)
        return read_timeline(path, rate=25)

    def test_read(self, edl_cut):
        # the first record timecode is the global start; a track starting later gets a gap
        assert frames(edl_cut.global_start_time, 25) == 90000
        assert [(t.name, t.kind) for t in edl_cut.tracks] == [("V", "Video"), ("A1", "Audio"), ("A2", "Audio")]
        assert [(type(c).__name__, frames(c.range_in_parent().start_time, 25)) for c in edl_cut.tracks[1]] == [
            ("Gap", 0), ("Clip", 12)]
        assert [(c.name, frames(c.range_in_parent().start_time, 25), c.metadata["cmx_3600"]["reel"],
                 type(c.media_reference).__name__) for c in edl_cut.tracks[0].find_clips()] == [
            ("A001C003_220101", 0, "A001C003", "MissingReference"),
            ("A001C004", 50, "A001C004", "ExternalReference")]

    @pytest.mark.parametrize("suffix", [".otio", ".xml", ".aaf", ".edl"])
    def test_renders_added_and_written(self, edl_cut, media, tmp_path, suffix):
        renders = otio.schema.Track(name="swapgraph")
        cursor = 0
        for i, clip in enumerate(edl_cut.tracks[0].find_clips()):
            rec = clip.range_in_parent()
            if frames(rec.start_time, 25) > cursor:
                renders.append(otio.schema.Gap(source_range=TimeRange(
                    RationalTime(0, 25), RationalTime(frames(rec.start_time, 25) - cursor, 25))))
            ref = otio.schema.ExternalReference(target_url=media[f"swap {i}"].as_uri(), available_range=TimeRange(
                RationalTime(90000, 25), RationalTime(MEDIA_FRAMES, 25)))
            renders.append(otio.schema.Clip(name=f"{clip.name}_swap", media_reference=ref, source_range=TimeRange(
                RationalTime(90000, 25), rec.duration)))
            cursor = frames(rec.end_time_exclusive(), 25)
        edl_cut.tracks.insert(1, renders)
        if suffix == ".edl":
            edl_cut = otio.schema.Timeline(name="renders", global_start_time=edl_cut.global_start_time)
            edl_cut.tracks.append(renders.deepcopy())
        path = tmp_path / f"conformed{suffix}"
        write_timeline(edl_cut, path)
        back = read_timeline(path, rate=25)
        pairs = list(zip(edl_cut.tracks, back.tracks))
        assert len(back.tracks) == len(edl_cut.tracks)  # the audio tracks too, but in the EDL
        assert [t.kind for t in back.tracks] == [t.kind for t in edl_cut.tracks]
        for want, got in pairs:
            assert [r[1:5] for r in clips_of(got, back, tmp_path)] == [r[1:5] for r in clips_of(want, edl_cut, tmp_path)]
        if suffix != ".edl":
            assert [c.name for c in back.tracks[0].find_clips()] == ["A001C003_220101", "A001C004"]
            assert [type(c.media_reference).__name__ for c in back.tracks[0].find_clips()] == [
                "MissingReference", "ExternalReference"]
            assert media_path(back.tracks[0].find_clips()[1].media_reference, tmp_path) == Path("/media/A001C004.mov")
            names = [t.name for t in back.tracks]
            assert names[:2] == ["V", "swapgraph"]
            if suffix != ".aaf":  # the AAF reader names audio tracks after their AAF class
                assert names[2:] == ["A1", "A2"]
