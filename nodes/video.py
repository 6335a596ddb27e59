"""Video I/O with PyAV: Decode and Encode, and the plain functions under them.

Pixel formats change only here: Decode turns any pixel format and bit depth into RGB
float in [0, 1], shape (B, 3, H, W); Encode turns that back into the codec's format.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import re
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Literal

import av
import numpy as np
import torch
from pydantic import Field, field_validator

from swapgraph.runtime.errors import MediaError, NodeError, UsageError
from swapgraph.runtime.images import frames_to_rgb8, rgb_to_tensor, tensor_to_rgb
from swapgraph.runtime.files import publish, temp_path_for, write_json_atomic
from swapgraph.runtime.node import InputPath, Issue, NodeSchema, OutputPath, Params, Port, RunContext, Sink, Source
from swapgraph.runtime.ports import Audio, AudioStreamInfo, Frames, VideoInfo
from swapgraph.runtime.provenance import container_metadata, sidecar_document, sidecar_path

# AVColorSpace numbers -> swscale matrices
_COLORSPACES = {1: "itu709", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_CODEC_IDS = {"libx264": "h264", "libx265": "hevc", "prores_ks": "prores", "ffv1": "ffv1"}
_PRORES_PROFILES = {"proxy": 0, "lt": 1, "standard": 2, "hq": 3, "4444": 4, "4444xq": 5}


# --- reading ----------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoIndex:
    """Every frame's pts and duration, from demuxing the file once (nothing decoded).

    The index gives exact frame numbers for seeking and keeps variable frame timing.
    """

    info: VideoInfo
    pts: tuple[int, ...]
    durations: tuple[int, ...]
    audio: tuple[AudioStreamInfo, ...] = field(default_factory=tuple)

    def seconds(self, pts: int) -> float:
        return float((pts - self.info.start_pts) * self.info.time_base)


def _open_input(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="replace")
    except FileNotFoundError:
        raise MediaError(f"{path}: file not found; fix: check the path") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(f"{path}: not a readable video ({reason}); fix: give a video file that plays, "
                         "e.g. re-export it") from None


@functools.lru_cache(maxsize=32)
def _probe_cached(path: str, mtime_ns: int, size: int) -> VideoIndex:
    p = Path(path)
    if size == 0:
        raise MediaError(f"{p}: file is empty (0 bytes); fix: give a video file")
    with _open_input(p) as container:
        if not container.streams.video:
            raise MediaError(f"{p}: has no video stream; fix: give a file with video")
        vs = container.streams.video[0]
        try:
            first = next(container.decode(vs))
        except (StopIteration, av.FFmpegError) as exc:
            raise MediaError(f"{p}: no frame could be decoded ({exc or 'no frames'}); "
                             "fix: the file is damaged or empty, re-export it") from None
        rotation = int(round((first.rotation or 0) / 90.0)) * 90 % 360
        cs = _COLORSPACES.get(int(first.colorspace), "itu709" if first.height >= 720 else "itu601")
        rng = "pc" if (int(first.color_range) == 2 or first.format.name.startswith("yuvj")) else "tv"
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        audio = tuple(AudioStreamInfo(s.index, s.codec_context.name, s.codec_context.sample_rate or 0,
                                      s.codec_context.channels or 0, Fraction(s.time_base))
                      for s in container.streams.audio)
        fps = Fraction(vs.average_rate) if vs.average_rate else Fraction(vs.guessed_rate or 25)
        time_base = Fraction(vs.time_base)
    with _open_input(p) as container:
        vs = container.streams.video[0]
        pts: list[int] = []
        last_duration = 0
        try:
            for packet in container.demux(vs):
                if packet.pts is None or packet.is_discard:
                    continue
                pts.append(packet.pts)
                if packet.pts >= max(pts):
                    last_duration = packet.duration or 0
        except av.FFmpegError as exc:
            raise MediaError(f"{p}: damaged while reading ({exc}); fix: re-export the file") from None
    if not pts:
        raise MediaError(f"{p}: video stream has no frames; fix: give a video with frames")
    pts.sort()
    step = round(1 / (fps * time_base)) if fps else 1
    durations = [b - a for a, b in zip(pts, pts[1:])] + [last_duration or step]
    info = VideoInfo(width=width, height=height, fps=fps, time_base=time_base, rotation=rotation,
                     color_range=rng, color_space=cs, source=p, frame_count=len(pts),
                     duration_pts=pts[-1] + durations[-1] - pts[0], start_pts=pts[0])
    return VideoIndex(info, tuple(pts), tuple(durations), audio)


def probe_video(path: Path) -> VideoIndex:
    """Open ``path``, check it has decodable video, and index its frames; MediaError if not."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(f"{p}: file not found; fix: check the path") from None
    return _probe_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def frame_to_rgb(frame: av.VideoFrame, info: VideoInfo) -> np.ndarray:
    """One decoded frame as upright RGB, (H, W, 3) uint8 for 8-bit sources, uint16 above."""
    deep = max((c.bits for c in frame.format.components), default=8) > 8
    rgb = frame.reformat(format="rgb48le" if deep else "rgb24", src_colorspace=info.color_space,
                         src_color_range="JPEG" if info.color_range == "pc" else "MPEG").to_ndarray()
    if info.rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=info.rotation // 90))
    return rgb


def parse_frame_range(text: str) -> tuple[int, int | None]:
    """``"10-20"`` -> (10, 20) inclusive; ``"10-"`` -> (10, None); ``"7"`` -> (7, 7)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d*)\s*)?", text)
    if not m:
        raise ValueError(f"frame range {text!r}: expected A-B (inclusive, 0-based), e.g. 0-99 or 100-")
    a = int(m.group(1))
    b = m.group(2)
    end = a if b is None else (int(b) if b else None)
    if end is not None and end < a:
        raise ValueError(f"frame range {text!r}: the end comes before the start")
    return a, end


def read_video(index: VideoIndex, start: int, stop: int, batch_size: int,
               threads: int = 0) -> Iterator[tuple[list[np.ndarray], list[int], list[int], list[int]]]:
    """Decode frames ``start..stop`` (inclusive) in batches of (rgb arrays, index, pts, durations).

    Seeks to the keyframe at or before ``start`` and decodes from there with frame and
    slice threading; frame numbers come from the pts index, so they are exact. Batches
    end at multiples of ``batch_size`` in frame numbers (frames 0-7, 8-15, ... for 8), so
    a frame is batched with the same neighbours whatever range is read: batched models
    then compute it bit for bit alike in a whole run and in a chunk.
    """
    info = index.info
    number = {p: i for i, p in enumerate(index.pts)}
    path = info.source
    for attempt in ("seek", "from_start"):
        with _open_input(path) as container:
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            if threads:
                vs.codec_context.thread_count = threads
            if start > 0 and attempt == "seek":
                container.seek(index.pts[start], stream=vs, backward=True, any_frame=False)
            batch: tuple[list, list, list, list] = ([], [], [], [])
            expected = start
            try:
                for frame in container.decode(vs):
                    i = number.get(frame.pts)
                    if i is None or i < start:
                        continue
                    if i > expected and attempt == "seek" and expected == start:
                        break  # the seek landed after the first wanted frame: decode from the start
                    if i > stop:
                        break
                    expected = i + 1
                    batch[0].append(frame_to_rgb(frame, info))
                    batch[1].append(i)
                    batch[2].append(index.pts[i])
                    batch[3].append(index.durations[i])
                    if (i + 1) % batch_size == 0:
                        yield batch
                        batch = ([], [], [], [])
            except av.FFmpegError as exc:
                raise MediaError(f"{path}: damaged at frame {expected} ({exc}); fix: re-export the file") from None
            if expected == start and attempt == "seek" and start > 0:
                continue
            if batch[0]:
                yield batch
            return


class DecodeParams(Params):
    path: InputPath = Field(description="video file to read (relative to the graph file)")
    frames: str | None = Field(None, description="frame range A-B, inclusive and 0-based (A- to the end); "
                                                 "the CLI's --frames overrides it")
    threads: int = Field(0, ge=0, le=64, description="decoder threads; 0 lets FFmpeg choose")

    @field_validator("frames")
    @classmethod
    def _range(cls, v: str | None) -> str | None:
        if v is not None:
            parse_frame_range(v)
        return v


class Decode(Source):
    """Read a video file as batches of RGB frames, with its audio for Encode.

    Any pixel format and bit depth becomes RGB float in [0, 1]; frames come out upright
    when the file carries rotation metadata; each frame keeps its pts, so variable frame
    rate clips keep their timing. Decoding is threaded (frame and slice threads).
    """

    schema = NodeSchema(
        outputs={"frames": Port(Frames, "RGB frames, (B, 3, H, W) in [0, 1]"),
                 "audio": Port(Audio, "the file's audio streams, for Encode to remux")},
        params=DecodeParams, devices=("cpu",), category="video")

    params: DecodeParams

    def check(self, connected: set[str]) -> list[Issue]:
        try:
            probe_video(self.params.path)
        except MediaError as exc:
            return [Issue("param 'path'", str(exc))]
        return []

    def output_range(self, ctx: RunContext) -> tuple[int, int]:
        """The frames the run's sinks get: ``--frames``, else the ``frames`` param, else all."""
        index = probe_video(self.params.path)
        n = len(index.pts)
        wanted = ctx.frame_range or (parse_frame_range(self.params.frames) if self.params.frames else (0, None))
        start, end = wanted
        end = n - 1 if end is None else end
        if start >= n:
            raise UsageError(f"node {self.id!r}: frames {start}-{end} are past the end of "
                             f"{self.params.path} ({n} frames, 0-{n - 1}); choose a range inside it")
        return start, min(end, n - 1)

    def decode_range(self, ctx: RunContext) -> tuple[int, int]:
        """The output range widened for exactness: ``ctx.preroll`` frames earlier for the
        stateful nodes, both ends out to whole batches (see ``read_video``)."""
        start, stop = self.output_range(ctx)
        bs = ctx.batch_size
        first = max(0, start - ctx.preroll) // bs * bs
        last = min(len(probe_video(self.params.path).pts) - 1, (stop // bs + 1) * bs - 1)
        return first, last

    def open(self, ctx: RunContext) -> None:
        self.index = probe_video(self.params.path)
        self.out_start, self.out_stop = self.output_range(ctx)
        self.start, self.stop = self.decode_range(ctx)

    def frame_count(self, ctx: RunContext) -> int | None:
        start, stop = self.output_range(ctx)
        return stop - start + 1

    def batches(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        index = self.index
        end_pts = index.pts[self.out_stop] + index.durations[self.out_stop]
        audio = Audio(source=index.info.source, streams=list(index.audio),
                      start=index.seconds(index.pts[self.out_start]), end=index.seconds(end_pts))
        for arrays, numbers, pts, durations in read_video(index, self.start, self.stop, ctx.batch_size,
                                                          self.params.threads):
            stacked = np.stack(arrays)
            # 8-bit frames travel as uint8 until a node asks for float (Frames.data)
            pixels = (torch.from_numpy(stacked).permute(0, 3, 1, 2) if stacked.dtype == np.uint8
                      else rgb_to_tensor(stacked))
            yield {"frames": Frames(pixels, numbers, pts, durations, index.info), "audio": audio}


# --- writing ----------------------------------------------------------------------------

def _container_format(path: Path) -> str | None:
    return _CONTAINERS.get(path.suffix.lower())


@functools.lru_cache(maxsize=8)
def _supported_codecs(fmt: str) -> frozenset[str]:
    with av.open(io.BytesIO(), "w", format=fmt) as c:
        return frozenset(c.supported_codecs)


def _default_pix_fmt(codec: str, profile: str) -> str:
    if codec == "ffv1":
        return "bgr0"  # packed 8-bit RGB: lossless from the RGB frames, bit for bit
    if codec == "prores_ks":
        return "yuva444p10le" if profile.startswith("4444") else "yuv422p10le"
    return "yuv420p"


class AudioMuxer:
    """The source's audio for one stretch of the shot, muxed into an output container.

    Packets between ``audio.start`` and ``audio.end`` (seconds of the source) are copied
    without re-encoding when the container takes the codec (``auto``/``copy``), else
    encoded to AAC; their timestamps are shifted so the stretch starts at 0. ``pump``
    interleaves them with the video as it is written.
    """

    def __init__(self, container: av.container.OutputContainer, final: Path, audio: Audio | None, mode: str,
                 bitrate: int) -> None:
        self.container = container
        self.audio_in = None
        self.audio_map: dict[int, Any] = {}
        self.audio_transcode: dict[int, tuple[Any, Any]] = {}
        self.modes_used: list[str] = []
        fmt = container.format.name.split(",")[0]
        self.keeps_negative_pts = fmt in ("mp4", "mov")
        if audio is None or mode == "none" or not audio.streams or audio.source is None:
            return
        self.audio_in = av.open(str(audio.source))
        supported = _supported_codecs(fmt)
        for s in self.audio_in.streams.audio:
            if mode in ("auto", "copy") and s.codec_context.name in supported:
                self.audio_map[s.index] = container.add_stream_from_template(s)
                self.modes_used.append(f"copy {s.codec_context.name}")
            elif mode == "copy":
                raise MediaError(f"{final}: the container does not take {s.codec_context.name} audio; "
                                 "use audio 'auto' (AAC) or a .mkv/.mov output")
            else:
                # the default layout for the channel count: a source's may be "unspecified order",
                # which the AAC encoder refuses
                channels = s.codec_context.channels or 2
                layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(channels, f"{channels}c")
                out = container.add_stream("aac", rate=s.codec_context.sample_rate)
                out.bit_rate = bitrate
                out.layout = layout
                resampler = av.AudioResampler(format="fltp", layout=layout, rate=s.codec_context.sample_rate)
                self.audio_map[s.index] = out
                self.audio_transcode[s.index] = (resampler, [0])
                self.modes_used.append(f"aac from {s.codec_context.name}")
        self.audio_start = audio.start
        self.audio_end = audio.end if audio.end is not None else float("inf")
        self._packets = self.audio_in.demux(*[s for s in self.audio_in.streams.audio if s.index in self.audio_map])
        self._pending = None

    def pump(self, until: float) -> None:
        """Mux source audio packets up to ``until`` seconds (of the output), interleaving with video."""
        if self.audio_in is None:
            return
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.pts is None or packet.size == 0:
                continue
            t = float(packet.pts * packet.time_base)
            if t >= self.audio_end:
                continue
            # Before the range. MP4/MOV keep the codec's priming packets and a packet that straddles
            # the range's start (negative pts, hidden by an edit list); other containers would shift
            # the video to make them non-negative, so there audio starts with the first whole packet.
            if self.keeps_negative_pts:
                before = t + float((packet.duration or 0) * packet.time_base) <= self.audio_start
                if before and self.audio_start > 0:
                    continue
            elif t < self.audio_start - 1e-9:
                continue
            if t - self.audio_start > until:
                self._pending = packet
                return
            shift = int(round(self.audio_start / packet.time_base))
            idx = packet.stream.index
            if idx in self.audio_transcode:
                self._transcode(idx, packet)
                continue
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.audio_map[idx]
            self.container.mux(packet)

    def _transcode(self, idx: int, packet: av.Packet) -> None:
        resampler, written = self.audio_transcode[idx]
        out = self.audio_map[idx]
        for frame in packet.decode():
            for f in resampler.resample(frame):
                f.pts = written[0]
                f.time_base = Fraction(1, out.codec_context.sample_rate)
                written[0] += f.samples
                self.container.mux(out.encode(f))

    def close(self) -> None:
        """Mux the rest of the range and flush the AAC encoders."""
        self.pump(float("inf"))
        for idx, out in self.audio_map.items():
            if idx in self.audio_transcode:
                self.container.mux(out.encode(None))
        self.discard()

    def discard(self) -> None:
        if self.audio_in is not None:
            self.audio_in.close()
            self.audio_in = None


class VideoWriter:
    """Encode RGB frames to a file under a temporary name, remuxing the source's audio.

    Timing comes from the source: output pts are the source pts less the first frame's,
    in the source's time base, with each frame's duration, so duration and frame count
    match. Audio packets between the range's start and end are copied without
    re-encoding when the container takes the codec, else encoded to AAC (AudioMuxer).
    """

    def __init__(self, final: Path, *, codec: str, crf: int, preset: str, profile: str, pix_fmt: str | None,
                 info: VideoInfo, first_pts: int, audio: Audio | None, audio_mode: str, audio_bitrate: int) -> None:
        self.final = final
        self.temp = temp_path_for(final)
        self.info = info
        self.first_pts = first_pts
        self.pix_fmt = pix_fmt or _default_pix_fmt(codec, profile)
        self.container = open_output(self.temp, final)
        stream = self.container.add_stream(codec, rate=info.fps)
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = self.pix_fmt
        stream.time_base = info.time_base
        cc = stream.codec_context
        cc.time_base = info.time_base
        opts: dict[str, str] = {}
        if codec in ("libx264", "libx265"):
            opts = {"crf": str(crf), "preset": preset}
            if codec == "libx265":
                opts["x265-params"] = "log-level=error"
        elif codec == "prores_ks":
            cc.profile = _PRORES_PROFILES[profile]
            opts = {"vendor": "apl0"}
        elif codec == "ffv1":
            opts = {"level": "3", "slices": "4", "slicecrc": "1", "g": "1"}
        cc.options = opts
        self.deep = any(c.bits > 8 for c in av.VideoFormat(self.pix_fmt).components)
        self.rgb_fmt = "rgb48le" if self.deep else "rgb24"
        self.is_rgb = self.pix_fmt.startswith(("gbr", "rgb", "bgr"))
        if not self.is_rgb:
            cc.color_range = 2 if info.color_range == "pc" else 1
            cc.colorspace = {"itu709": 1, "itu601": 6, "smpte240m": 7, "bt2020": 9}[info.color_space]
        self.stream = stream
        self.durations: dict[int, int] = {}
        self.frames_written = 0
        self.audio = AudioMuxer(self.container, final, audio, audio_mode, audio_bitrate)
        self.audio_mode_used = self.audio.modes_used

    # video -----------------------------------------------------------------------------
    def write(self, frames: Frames) -> None:
        """Encode a batch of frames with their source pts and durations."""
        pts, durations = frames.pts, frames.duration
        if (frames.info.height, frames.info.width) != (self.stream.height, self.stream.width):
            raise NodeError(f"{self.final}: frame size changed from {self.stream.width}x{self.stream.height} to "
                            f"{frames.info.width}x{frames.info.height} mid-shot; keep one size per output")
        arrays = tensor_to_rgb(frames.data, deep=True) if self.deep else frames_to_rgb8(frames.pixels)
        with disk_errors(self.final):
            for arr, p, d in zip(arrays, pts, durations):
                frame = av.VideoFrame.from_ndarray(arr, format=self.rgb_fmt)
                if self.is_rgb:
                    frame = frame.reformat(format=self.pix_fmt)
                else:
                    frame = frame.reformat(format=self.pix_fmt, dst_colorspace=self.info.color_space,
                                           dst_color_range="JPEG" if self.info.color_range == "pc" else "MPEG")
                frame.pts = p - self.first_pts
                frame.time_base = self.info.time_base
                self.durations[frame.pts] = d
                self._mux_video(self.stream.encode(frame))
                self.frames_written += 1
            last = pts[-1] - self.first_pts + durations[-1]
            self.audio.pump(float(last * self.info.time_base))

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if not packet.duration and packet.pts is not None:
                packet.duration = self.durations.get(packet.pts, 0)
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and the rest of the range's audio; the file stays at its temporary name."""
        with disk_errors(self.final):
            self._mux_video(self.stream.encode(None))
            self.audio.close()
            self.container.close()

    def discard(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass
        self.audio.discard()
        self.temp.unlink(missing_ok=True)


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Turn a write to ``path`` that failed because the disk (or a file-size limit) is full
    into one clear MediaError; other errors pass as they are."""
    try:
        yield
    except OSError as exc:
        text = str(exc).lower()
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and "no space left" not in text \
                and "file too large" not in text:
            raise
        raise MediaError(f"{path}: the disk is full ({exc}); nothing was written under that name; "
                         "fix: free space on that disk or write the output elsewhere") from None


def open_output(temp: Path, final: Path) -> av.container.OutputContainer:
    """An output container for ``final`` (format from its suffix) written at ``temp``,
    tagged as synthetic media."""
    fmt = _container_format(final)
    options = {"movflags": "use_metadata_tags"} if fmt in ("mp4", "mov") else {}
    with disk_errors(final):
        container = av.open(str(temp), "w", format=fmt, container_options=options)
    container.metadata.update(container_metadata())
    return container


class ImageSequenceWriter:
    """PNG frames named by source frame number, in a temporary folder renamed when complete."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.temp = temp_path_for(final)
        self.temp.mkdir(parents=True, exist_ok=True)
        self.frames_written = 0
        self.audio_mode_used: list[str] = []

    def write(self, frames: Frames) -> None:
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        meta = PngInfo()
        for key, value in container_metadata().items():
            meta.add_text(key, value)
        with disk_errors(self.final):
            for arr, n in zip(frames_to_rgb8(frames.pixels), frames.index):
                Image.fromarray(arr).save(self.temp / f"{n:06d}.png", pnginfo=meta, compress_level=1)
                self.frames_written += 1

    def close(self) -> None:
        pass

    def discard(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)


class EncodeParams(Params):
    path: OutputPath = Field(description="output file (.mp4, .mov, .mkv); for codec png, a folder")
    codec: Literal["libx264", "libx265", "prores_ks", "ffv1", "png"] = Field(
        "libx264", description="video codec; png writes an image sequence")
    crf: int = Field(18, ge=0, le=51, description="libx264/libx265 quality: lower is better, 0 lossless")
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                    "veryslow"] = Field("medium", description="libx264/libx265 speed against size")
    profile: Literal["proxy", "lt", "standard", "hq", "4444", "4444xq"] = Field("hq", description="ProRes profile")
    pix_fmt: str | None = Field(None, description="pixel format; default yuv420p (x264/x265), yuv422p10le "
                                                  "(ProRes 422) or yuva444p10le (4444), bgr0 (ffv1, lossless RGB)")
    audio: Literal["auto", "copy", "aac", "none"] = Field(
        "auto", description="auto: copy the source audio when the container takes it, else AAC")
    audio_bitrate: int = Field(192_000, ge=32_000, le=512_000, description="AAC bit rate when audio is encoded")


class Encode(Sink):
    """Write frames to a video file (libx264, libx265, ProRes, FFV1) or a PNG sequence.

    Timing comes from the source, so the output has the input's frame count and
    duration; the source audio is remuxed (or encoded to AAC where the container needs
    it). The file is written under a temporary name and renamed when the whole run
    succeeded; its metadata says it is synthetic media made by swapgraph, and a JSON
    sidecar (``OUTPUT.swapgraph.json``) records the graph hash, params, frame range,
    versions and per-node time.
    """

    schema = NodeSchema(
        inputs={"frames": Port(Frames, "RGB frames to write"),
                "audio": Port(Audio, "source audio to remux", required=False)},
        params=EncodeParams, devices=("cpu",), category="video")

    params: EncodeParams

    def check(self, connected: set[str]) -> list[Issue]:
        p = self.params
        path = Path(p.path)
        if p.codec == "png":
            if path.suffix:
                return [Issue("param 'path'", f"codec png writes a folder of PNG frames, found the file name "
                              f"{path.name!r}", f"drop the suffix, e.g. {path.with_suffix('').name!r}")]
            return []
        fmt = _container_format(path)
        if fmt is None:
            return [Issue("param 'path'", f"unknown container {path.suffix or '(no suffix)'!r}",
                          "end the path with .mp4, .mov or .mkv (or use codec png for a folder)")]
        if _CODEC_IDS[p.codec] not in _supported_codecs(fmt):
            return [Issue("param 'codec'", f"{path.suffix} does not take {p.codec}",
                          "use a .mov or .mkv output, or another codec")]
        if p.pix_fmt is not None:
            formats = {f.name for f in (av.Codec(p.codec, "w").video_formats or ())}
            if p.pix_fmt not in formats:
                return [Issue("param 'pix_fmt'", f"{p.codec} does not take {p.pix_fmt!r}",
                              "choose one of: " + ", ".join(sorted(formats)))]
        return []

    def open(self, ctx: RunContext) -> None:
        self.writer: VideoWriter | ImageSequenceWriter | None = None
        self.final = Path(self.params.path)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.info: VideoInfo | None = None
        self.first_index: int | None = None
        self.last_index: int | None = None

    def process(self, frames: Frames, audio: Audio | None = None) -> dict[str, Any]:
        p = self.params
        if self.writer is None:
            self.info = frames.info
            self.first_index = frames.index[0]
            if p.codec == "png":
                self.writer = ImageSequenceWriter(self.final)
            else:
                subsampled = (p.pix_fmt or _default_pix_fmt(p.codec, p.profile)).startswith(("yuv420", "yuv422"))
                if subsampled and (frames.info.width % 2 or frames.info.height % 2):
                    raise NodeError(f"node {self.id!r}: {p.codec} with chroma subsampling needs an even frame size, "
                                    f"found {frames.info.width}x{frames.info.height}; Resize to an even size or "
                                    "set pix_fmt to a 4:4:4 format")
                self.writer = VideoWriter(self.final, codec=p.codec, crf=p.crf, preset=p.preset, profile=p.profile,
                                          pix_fmt=p.pix_fmt, info=frames.info, first_pts=frames.pts[0], audio=audio,
                                          audio_mode=p.audio, audio_bitrate=p.audio_bitrate)
        self.writer.write(frames)
        self.last_index = frames.index[-1]
        return {}

    def finish(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def commit(self, ctx: RunContext) -> None:
        if self.writer is None:
            raise NodeError(f"node {self.id!r}: no frames reached Encode; check the frame range")
        p = self.params
        doc = sidecar_document(self.final, ctx.summary, graph_hash=ctx.graph_hash, graph_name=ctx.graph_name,
                               graph_path=ctx.graph_path, node_id=self.id, extra={
                                   "source": str(self.info.source) if self.info else None,
                                   "source_frames": [self.first_index, self.last_index],
                                   "frames_written": self.writer.frames_written,
                                   "codec": p.codec, "audio": self.writer.audio_mode_used})
        write_json_atomic(sidecar_path(self.final), doc)
        publish(self.writer.temp, self.final)

    def abort(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.discard()

    def stats(self) -> dict[str, Any]:
        writer = getattr(self, "writer", None)
        return {"frames_written": writer.frames_written} if writer else {}


