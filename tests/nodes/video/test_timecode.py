"""Start timecode, read and written exactly: the text arithmetic (drop-frame included),
probing .mov/.mp4/.mkv sources, Encode's timecode param over frame ranges, and a farm
render's joined file against a single run.

Every clip here is written by the test with its frame numbers drawn in (read_number), so
a timecode is checked against the frames the file really holds.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest
from opentimelineio.opentime import RationalTime, to_timecode

from helpers import decode_all, read_number, write_numbered_clip
from swapgraph import api
from swapgraph.nodes.video.probe import probe_video
from swapgraph.runtime.errors import ParamError
from swapgraph.runtime.provenance import sidecar_path
from swapgraph.runtime.timecode import (advance_timecode, check_timecode, drop_frame_allowed, format_timecode,
                                        is_drop_frame, parse_timecode, timecode_problem)

NTSC, NTSC60 = Fraction(30000, 1001), Fraction(60000, 1001)
SIZE = (128, 64)  # the frame-number blocks need 128 px across


def file_timecode(path: Path) -> str | None:
    """The start timecode tag of ``path``'s video stream, read with plain PyAV."""
    with av.open(str(path)) as c:
        tags = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
    return tags.get("timecode")


def frame_numbers(path: Path) -> list[int]:
    frames, _ = decode_all(path)
    return [read_number(f) for f in frames]


def transcode(source: Path, out: Path, **params) -> dict:
    """Decode ``source``, encode it into ``out`` (FFV1 unless ``params`` say otherwise)."""
    return {"version": 1, "name": "timecode", "settings": {"batch_size": 8}, "nodes": {
        "plate": {"type": "Decode", "params": {"path": str(source)}},
        "out": {"type": "Encode", "inputs": {"frames": "plate.frames"},
                "params": {"path": str(out), "codec": "ffv1", **params}}}}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("timecode")
    return {
        "pal": write_numbered_clip(root / "pal.mkv", 40, fps=25, timecode="01:00:00:00", size=SIZE),
        "ntsc_df": write_numbered_clip(root / "ntsc_df.mkv", 24, fps=NTSC, timecode="00:00:59;28", size=SIZE),
        "bare": write_numbered_clip(root / "bare.mkv", 16, fps=25, size=SIZE),
    }


class TestTimecodeText:
    @pytest.mark.parametrize("frames, fps, drop, text", [
        (0, 25, False, "00:00:00:00"),
        (90010, 25, False, "01:00:00:10"),
        (86399 * 24 + 23, 24, False, "23:59:59:23"),
        (1798, NTSC, True, "00:00:59;28"),
        (1800, NTSC, True, "00:01:00;02"),  # labels 00:01:00;00 and ;01 are skipped
        (17981, NTSC, True, "00:09:59;29"),
        (17982, NTSC, True, "00:10:00;00"),  # every tenth minute keeps its ;00
        (107892, NTSC, True, "01:00:00;00"),
        (1800, NTSC, False, "00:01:00:00"),
        (3600, NTSC60, True, "00:01:00;04"),
        (35964, NTSC60, True, "00:10:00;00"),
        (86405, Fraction(24000, 1001), False, "01:00:00:05"),
    ])
    def test_hand_checked_values(self, frames, fps, drop, text):
        assert format_timecode(frames, fps, drop) == text
        assert parse_timecode(text, fps) == frames
        assert is_drop_frame(text) is drop

    @pytest.mark.parametrize("fps, drop", [(NTSC, True), (NTSC60, True), (NTSC, False), (25, False),
                                           (Fraction(24000, 1001), False), (50, False)])
    def test_round_trip_and_agrees_with_opentimelineio(self, fps, drop):
        counts = [*range(0, 40000), *range(2_000_000, 2_000_000 + 20000, 7)]
        for n in counts:
            text = format_timecode(n, fps, drop)
            assert parse_timecode(text, fps) == n
        for n in counts[::97]:
            assert format_timecode(n, fps, drop) == to_timecode(RationalTime(n, float(fps)), float(fps), drop)

    def test_advance_keeps_the_style_and_wraps_at_24_hours(self):
        assert advance_timecode("00:00:59;28", 2, NTSC) == "00:01:00;02"
        assert advance_timecode("00:00:59:28", 2, NTSC) == "00:01:00:00"
        assert advance_timecode("23:59:59:24", 1, 25) == "00:00:00:00"
        assert format_timecode(24 * 3600 * 25 + 10, 25, False) == "00:00:00:10"

    @pytest.mark.parametrize("text, fps, words", [
        ("1:00:00:00", 25, "expected a timecode HH:MM:SS:FF"),
        ("01:00:00", 25, "expected a timecode"),
        ("24:00:00:00", 25, "hours run 00-23"),
        ("01:60:00:00", 25, "minutes and seconds 00-59"),
        ("01:00:00:25", 25, "frames run 00-24"),
        ("01:00:00;00", 25, "only 29.97 and 59.94 fps"),
        ("00:01:00;01", NTSC, "does not exist in drop-frame"),
        ("00:01:00;03", NTSC60, "does not exist in drop-frame"),
    ])
    def test_bad_text_is_one_line_naming_it_and_the_fix(self, text, fps, words):
        with pytest.raises(ParamError) as err:
            parse_timecode(text, fps)
        message = str(err.value)
        assert "\n" not in message and repr(text) in message and words in message and "fix:" in message

    def test_the_form_needs_no_rate(self):
        assert check_timecode("01:02:03;04") == (1, 2, 3, ";", 4)
        assert timecode_problem("01:02:03;04") is None and "HH:MM:SS:FF" in timecode_problem("01:02:03")

    def test_drop_frame_only_at_29_97_and_59_94(self):
        assert drop_frame_allowed(NTSC) and drop_frame_allowed(NTSC60)
        assert drop_frame_allowed(Fraction(2997, 100))  # a file's average rate, rounded
        assert not any(drop_frame_allowed(r) for r in (30, 60, 25, Fraction(24000, 1001)))
        with pytest.raises(ParamError, match="only 29.97 and 59.94 fps"):
            format_timecode(10, 30, True)


class TestProbe:
    @pytest.mark.parametrize("suffix, codec, fps, timecode", [
        (".mov", "libx264", 25, "01:00:00:00"),  # a tmcd track
        (".mp4", "ffv1", 25, "10:00:00:12"),  # a tmcd track
        (".mkv", "ffv1", NTSC, "00:59:59;29"),  # a TIMECODE tag
    ])
    def test_reads_the_start_timecode_of_each_container(self, tmp_path, suffix, codec, fps, timecode):
        clip = write_numbered_clip(tmp_path / f"tc{suffix}", 4, fps=fps, timecode=timecode, codec=codec, size=SIZE)
        assert probe_video(clip).info.timecode == timecode
        assert api.media_info(clip).timecode == timecode

    def test_none_for_a_clip_without(self, clips):
        assert probe_video(clips["bare"]).info.timecode is None


class TestEncode:
    def test_a_range_starts_at_the_source_timecode_of_its_first_frame(self, clips, tmp_path):
        out = tmp_path / "range.mov"
        api.run(api.load(transcode(clips["pal"], out, codec="libx264", preset="ultrafast")), frames=(10, 30))
        assert file_timecode(out) == "01:00:00:10"
        assert frame_numbers(out) == list(range(10, 31))
        assert probe_video(out).info.timecode == "01:00:00:10"
        assert json.loads(sidecar_path(out).read_text())["timecode"] == "01:00:00:10"

    def test_drop_frame_across_a_minute(self, clips, tmp_path):
        out = tmp_path / "df.mkv"
        api.run(api.load(transcode(clips["ntsc_df"], out)), frames=(2, 9))
        # 00:00:59;28 + 2 frames: ;29, then the minute skips labels ;00 and ;01
        assert file_timecode(out) == "00:01:00;02"
        assert frame_numbers(out) == list(range(2, 10))

    def test_none_writes_none(self, clips, tmp_path):
        out = tmp_path / "none.mkv"
        api.run(api.load(transcode(clips["pal"], out, timecode="none")), frames=(10, 12))
        assert file_timecode(out) is None
        assert json.loads(sidecar_path(out).read_text())["timecode"] is None

    def test_a_source_without_timecode_gives_an_output_without(self, clips, tmp_path):
        out = tmp_path / "bare_out.mkv"
        api.run(api.load(transcode(clips["bare"], out)), frames=(3, 5))
        assert file_timecode(out) is None

    @pytest.mark.parametrize("source", ["bare", "pal"])
    def test_an_explicit_timecode_is_the_source_frame_0s(self, clips, tmp_path, source):
        out = tmp_path / "explicit.mov"
        api.run(api.load(transcode(clips[source], out, codec="libx264", preset="ultrafast",
                                   timecode="10:00:00:00")), frames=(5, 9))
        assert file_timecode(out) == "10:00:00:05"
        assert frame_numbers(out) == list(range(5, 10))

    def test_a_png_sequence_has_it_in_its_sidecar_only(self, clips, tmp_path):
        out = tmp_path / "frames"
        api.run(api.load(transcode(clips["pal"], out, codec="png")), frames=(8, 9))
        assert sorted(p.name for p in out.glob("[!.]*")) == ["000008.png", "000009.png"]
        assert json.loads(sidecar_path(out).read_text())["timecode"] == "01:00:00:08"

    def test_bad_text_is_refused_by_validation(self, clips, tmp_path):
        issues = api.validate(api.load(transcode(clips["pal"], tmp_path / "o.mkv", timecode="1:00:00")))
        assert len(issues) == 1
        text = str(issues[0])
        assert "\n" not in text and "'timecode'" in text and "'out'" in text and "HH:MM:SS:FF" in text

    def test_drop_frame_at_25_fps_is_refused_before_anything_is_written(self, clips, tmp_path):
        out = tmp_path / "df25.mkv"
        spec = api.load(transcode(clips["pal"], out, timecode="01:00:00;00"))
        with pytest.raises(ParamError) as err:
            api.run(spec, frames=(0, 3))
        message = str(err.value)
        assert "\n" not in message and "node 'out' param 'timecode'" in message and "25 fps" in message
        assert "fix:" in message
        assert not out.exists() and not sidecar_path(out).exists()


def test_a_farm_render_joins_with_the_single_runs_timecode(clips, tmp_path):
    single, rendered = tmp_path / "single.mov", tmp_path / "rendered.mov"
    params = {"codec": "libx264", "preset": "ultrafast"}
    api.run(api.load(transcode(clips["pal"], single, **params)), frames=(11, 34))
    spec = api.load(transcode(clips["pal"], tmp_path / "unused.mov", **params))
    result = api.render(spec, rendered, workers=1, chunk_size=8, frames=(11, 34))
    assert result["chunks"] >= 2
    assert file_timecode(single) == file_timecode(rendered) == "01:00:00:11"
    assert frame_numbers(rendered) == frame_numbers(single) == list(range(11, 35))
    assert json.loads(sidecar_path(rendered).read_text())["timecode"] == "01:00:00:11"
