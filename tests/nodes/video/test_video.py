"""Decode and Encode on clips the tests write."""

from __future__ import annotations

import json
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from swapgraph.nodes.video.probe import probe_video, read_video
from swapgraph.runtime.errors import MediaError
from swapgraph.runtime.images import rgb_to_tensor, tensor_to_rgb
from swapgraph.runtime.node import parse_frame_range

from helpers import GRAPHS, decode_all, stream_facts, write_clip


def transcode(cli, src: Path, out: Path, *extra: str):
    return cli("run", GRAPHS / "transcode.json", "--set", f"plate.path={src}", "--set", f"out.path={out}",
               "--quiet", *extra)


class TestRoundTrip:
    def test_ffv1_is_frame_exact(self, cli, clip, tmp_path):
        out = tmp_path / "exact.mkv"
        r = transcode(cli, clip, out, "--set", "out.codec=ffv1")
        assert r.code == 0, r.err
        src, src_pts = decode_all(clip)
        dst, dst_pts = decode_all(out)
        assert dst.shape == src.shape
        assert np.array_equal(src, dst)  # bit for bit
        assert [p * probe_video(clip).info.time_base for p in src_pts] == \
            [p * probe_video(out).info.time_base for p in dst_pts]

    def test_tensor_conversions_are_inverse(self):
        rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
        assert np.array_equal(tensor_to_rgb(rgb_to_tensor(list(rgb))), rgb)
        deep = np.random.default_rng(1).integers(0, 65536, (1, 4, 4, 3), dtype=np.uint16)
        assert np.array_equal(tensor_to_rgb(rgb_to_tensor(deep), deep=True), deep)

    def test_frame_count_duration_and_audio_kept(self, cli, clip, tmp_path):
        out = tmp_path / "t.mp4"
        assert transcode(cli, clip, out).code == 0
        a, b = stream_facts(clip), stream_facts(out)
        assert b["frames"] == a["frames"] == 24
        assert b["video_duration"] == pytest.approx(a["video_duration"], abs=1 / 25)
        assert [x["codec"] for x in b["audio"]] == ["aac"]
        assert b["audio"][0]["duration"] == pytest.approx(a["audio"][0]["duration"], abs=1 / 25)

    def test_metadata_and_sidecar_say_synthetic(self, cli, clip, tmp_path):
        out = tmp_path / "tagged.mov"
        assert transcode(cli, clip, out, "--set", "out.codec=prores_ks", "--set", "out.profile=lt").code == 0
        meta = stream_facts(out)["metadata"]
        assert meta["synthetic_media"] == "true"
        assert "swapgraph" in meta["comment"] and "Synthetic media" in meta["comment"]
        side = json.loads((tmp_path / "tagged.mov.swapgraph.json").read_text())
        assert side["synthetic_media"] is True
        assert len(side["graph"]["hash"]) == 64
        assert side["source_frames"] == [0, 23] and side["frames_written"] == 24
        assert set(side["node_seconds"]) == {"plate", "out"}
        assert side["params"]["out"]["codec"] == "prores_ks"
        assert side["versions"]["av"] == av.__version__
        with av.open(str(out)) as c:
            assert c.streams.video[0].codec_context.name == "prores"
            assert c.streams.video[0].format.name == "yuv422p10le"

    @pytest.mark.parametrize("codec,suffix,pix", [("libx265", ".mp4", "yuv420p"), ("libx264", ".mkv", "yuv420p")])
    def test_other_codecs(self, cli, clip, tmp_path, codec, suffix, pix):
        out = tmp_path / f"o{suffix}"
        assert transcode(cli, clip, out, "--set", f"out.codec={codec}", "--set", "out.preset=ultrafast").code == 0
        src, _ = decode_all(clip)
        dst, _ = decode_all(out)
        assert dst.shape == src.shape
        assert np.abs(dst.astype(int) - src.astype(int)).mean() < 4  # lossy but close
        assert stream_facts(out)["frames"] == 24

    def test_png_sequence(self, cli, clip, tmp_path):
        out = tmp_path / "seq"
        assert transcode(cli, clip, out, "--set", "out.codec=png", "--frames", "5-9").code == 0
        names = sorted(p.name for p in out.iterdir())
        assert names == [".swapgraph-output.json", *(f"{i:06d}.png" for i in range(5, 10))]  # the frames, and the marker
        from PIL import Image

        img = Image.open(out / "000007.png")
        assert img.text["synthetic_media"] == "true"
        src, _ = decode_all(clip)
        assert np.array_equal(np.asarray(img), src[7])
        assert (tmp_path / "seq.swapgraph.json").exists()


class TestFrameRange:
    def test_range_is_exact_and_keeps_timing(self, cli, clip, tmp_path):
        out = tmp_path / "r.mkv"
        assert transcode(cli, clip, out, "--set", "out.codec=ffv1", "--frames", "10-17").code == 0
        src, _ = decode_all(clip)
        dst, pts = decode_all(out)
        assert np.array_equal(dst, src[10:18])
        assert stream_facts(out)["video_duration"] == pytest.approx(8 / 25, abs=1e-3)
        audio = stream_facts(out)["audio"][0]["duration"]
        assert audio == pytest.approx(8 / 25, abs=1.5 * 1024 / 48000)  # AAC packets are 1024 samples

    def test_read_video_seeks_to_any_frame(self, clip):
        index = probe_video(clip)
        src, _ = decode_all(clip)
        for start in (0, 1, 12, 23):
            batches = list(read_video(index, start, 23, batch_size=5))
            numbers = [n for b in batches for n in b[1]]
            assert numbers == list(range(start, 24))
            assert np.array_equal(batches[0][0][0], src[start])

    def test_range_past_the_end(self, cli, clip, tmp_path):
        r = transcode(cli, clip, tmp_path / "x.mp4", "--frames", "30-40")
        assert r.code == 2 and len(r.error_lines) == 1 and "past the end" in r.err
        assert not (tmp_path / "x.mp4").exists()

    @pytest.mark.parametrize("text,want", [("3-9", (3, 9)), ("4-", (4, None)), ("7", (7, 7))])
    def test_parse(self, text, want):
        assert parse_frame_range(text) == want

    @pytest.mark.parametrize("text", ["9-3", "a-b", "-3", ""])
    def test_parse_bad(self, text):
        with pytest.raises(ValueError):
            parse_frame_range(text)


def _set_mp4_rotation(path: Path, degrees: int) -> None:
    """Write a display matrix that turns the picture clockwise by ``degrees`` into the video
    track header (tkhd), as phones do (FFmpeg's ``rotate`` tag)."""
    data = bytearray(path.read_bytes())
    one, zero = 0x00010000, 0
    matrices = {90: (zero, one, -one & 0xFFFFFFFF, zero), 270: (zero, -one & 0xFFFFFFFF, one, zero),
                180: (-one & 0xFFFFFFFF, zero, zero, -one & 0xFFFFFFFF)}
    a, b, c, d = matrices[degrees]
    pos = data.find(b"tkhd")
    assert pos > 0
    version = data[pos + 4]
    matrix_at = pos + 4 + 4 + (32 if version == 1 else 20) + 16
    struct.pack_into(">9I", data, matrix_at, a, b, 0, c, d, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


class TestDecode:
    @pytest.mark.parametrize("degrees", [90, 270, 180])
    def test_rotation_metadata_comes_out_upright(self, cli, grace_frames, tmp_path, degrees):
        upright = grace_frames[:6, :, :200]  # not square, so a missed rotation changes the shape
        # the display matrix turns the picture clockwise by `degrees` (a phone's "rotate" tag),
        # so store the pixels turned counter-clockwise by as much
        stored = np.ascontiguousarray(np.rot90(upright, k=degrees // 90, axes=(1, 2)))
        src = write_clip(tmp_path / "rot.mp4", stored, audio=False, options={"crf": "0", "preset": "ultrafast"},
                         pix_fmt="yuv444p")
        _set_mp4_rotation(src, degrees)
        assert probe_video(src).info.rotation == (360 - degrees) % 360  # counter-clockwise, as FFmpeg reports
        out = tmp_path / "up.mkv"
        assert transcode(cli, src, out, "--set", "out.codec=ffv1").code == 0
        dst, _ = decode_all(out)
        assert dst.shape == upright.shape
        assert np.abs(dst.astype(int) - upright.astype(int)).mean() < 3

    def test_variable_frame_rate_keeps_pts(self, cli, grace_frames, tmp_path):
        src = tmp_path / "vfr.mkv"
        pts = [0, 40, 80, 200, 210, 220, 500, 540]
        with av.open(str(src), "w") as c:
            s = c.add_stream("ffv1", rate=25)
            s.width, s.height, s.pix_fmt = 256, 256, "yuv444p"
            s.time_base = s.codec_context.time_base = Fraction(1, 1000)
            for p, rgb in zip(pts, grace_frames):
                f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                f.pts, f.time_base = p, Fraction(1, 1000)
                c.mux(s.encode(f))
            c.mux(s.encode(None))
        index = probe_video(src)
        assert [p * index.info.time_base for p in index.pts] == [Fraction(p, 1000) for p in pts]
        for suffix in (".mkv", ".mp4"):
            out = tmp_path / f"vfr_out{suffix}"
            assert transcode(cli, src, out, "--set", "out.preset=ultrafast").code == 0
            got = probe_video(out)
            assert [p * got.info.time_base for p in got.pts] == [Fraction(p, 1000) for p in pts]

    def test_ten_bit_source_is_read_deep(self, grace_frames, tmp_path):
        src = write_clip(tmp_path / "deep.mov", grace_frames[:3], codec="prores_ks", audio=False,
                         pix_fmt="yuv422p10le", options={})
        index = probe_video(src)
        batch = next(read_video(index, 0, 2, batch_size=3))
        assert batch[0][0].dtype == np.uint16
        data = rgb_to_tensor(batch[0])
        assert data.dtype == torch.float32 and 0 <= data.min() and data.max() <= 1
        assert np.abs(data[0].permute(1, 2, 0).numpy() * 255 - grace_frames[0]).mean() < 3


class TestBadMedia:
    def _bad(self, tmp_path: Path, name: str, content: bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(content)
        return p

    @pytest.fixture
    def cases(self, tmp_path, clip):
        audio_only = tmp_path / "audio_only.mp4"
        with av.open(str(audio_only), "w") as c:
            s = c.add_stream("aac", rate=48000)
            s.layout = "mono"
            for i in range(10):
                f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
                f.sample_rate, f.pts, f.time_base = 48000, i * 1024, Fraction(1, 48000)
                c.mux(s.encode(f))
            c.mux(s.encode(None))
        whole = clip.read_bytes()
        return {
            "zero_bytes": (self._bad(tmp_path, "empty.mp4", b""), "empty"),
            "truncated": (self._bad(tmp_path, "trunc.mp4", whole[: len(whole) // 2]), "not a readable video"),
            "text": (self._bad(tmp_path, "notes.mp4", b"these are my notes, not a video\n" * 20),
                     "not a readable video"),
            "no_video": (audio_only, "no video stream"),
        }

    @pytest.mark.parametrize("case", ["zero_bytes", "truncated", "text", "no_video"])
    def test_one_line_exit_2_no_output(self, cli, cases, tmp_path, case):
        path, words = cases[case]
        out = tmp_path / "out.mp4"
        for command in ("validate", "run"):
            r = cli(command, GRAPHS / "transcode.json", "--set", f"plate.path={path}", "--set", f"out.path={out}")
            assert r.code == 2
            assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("error: ")
            assert words in r.err and path.name in r.err and "Traceback" not in r.err
        assert not out.exists()
        assert list(tmp_path.glob(".out*")) == []

    def test_probe_raises_media_error(self, cases):
        with pytest.raises(MediaError, match="empty"):
            probe_video(cases["zero_bytes"][0])


def _clip_with_audio(path: Path, frames: np.ndarray, codec: str, fmt: str) -> Path:
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        a = c.add_stream(codec, rate=48000)
        a.layout = "mono"
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        samples = int(48000 * len(frames) / 25)
        tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000) * 0.3)
        data = ((tone * 127 + 128).astype(np.uint8) if fmt == "u8" else (tone * 32767).astype(np.int16))[None]
        for start in range(0, samples, 960):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + 960]), format=fmt, layout="mono")
            f.sample_rate, f.pts, f.time_base = 48000, start, Fraction(1, 48000)
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    return path


@pytest.mark.parametrize("codec,fmt,suffix,want", [
    ("pcm_u8", "u8", ".mkv", "aac"),         # MP4 does not take 8-bit PCM: encoded to AAC
    ("pcm_s16le", "s16", ".mov", "pcm_s16le"),  # MP4 takes 16-bit PCM: copied
])
def test_audio_copied_when_the_container_takes_it_else_aac(cli, grace_frames, tmp_path, codec, fmt, suffix, want):
    src = _clip_with_audio(tmp_path / f"src{suffix}", grace_frames, codec, fmt)
    out = tmp_path / "out.mp4"
    r = transcode(cli, src, out, "--set", "out.preset=ultrafast")
    assert r.code == 0, r.err
    facts = stream_facts(out)
    assert [a["codec"] for a in facts["audio"]] == [want]
    assert facts["audio"][0]["duration"] == pytest.approx(24 / 25, abs=1 / 25)
    side = json.loads((tmp_path / "out.mp4.swapgraph.json").read_text())
    assert side["audio"] == [("aac from " if want == "aac" else "copy ") + codec]
    r = transcode(cli, src, tmp_path / "none.mp4", "--set", "out.audio=none")
    assert r.code == 0 and stream_facts(tmp_path / "none.mp4")["audio"] == []
