"""Writing RGB frames: the video and image-sequence writers, output containers, and the
Encode node.

Frames arrive as RGB in [0, 1], shape (B, 3, H, W) (uint8 pixels for 8-bit sources) and
are converted to the codec's pixel format here, nowhere else.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import shutil
from pathlib import Path
from typing import Any, Iterator, Literal

import av
from pydantic import Field, field_validator

from swapgraph.runtime.errors import MediaError, NodeError, ParamError
from swapgraph.runtime.files import Kind, temp_path_for, write_folder_marker
from swapgraph.runtime.images import frames_to_rgb8, tensor_to_rgb
from swapgraph.runtime.node import Issue, NodeSchema, OutputPath, Params, Port, RunContext, Sink
from swapgraph.runtime.ports import Audio, Frames, VideoInfo
from swapgraph.runtime.provenance import container_metadata, png_metadata, sidecar_document, sidecar_path
from swapgraph.runtime.timecode import TIMECODE_FORM, advance_timecode, timecode_problem

from .audio import AudioMuxer
from .probe import probe_video

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_CODEC_IDS = {"libx264": "h264", "libx265": "hevc", "prores_ks": "prores", "ffv1": "ffv1"}
_PRORES_PROFILES = {"proxy": 0, "lt": 1, "standard": 2, "hq": 3, "4444": 4, "4444xq": 5}


def container_format(path: Path) -> str | None:
    """The FFmpeg container format an output path's suffix names (``"mp4"``, ``"mov"``,
    ``"matroska"``); None for a suffix Encode does not write."""
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


def output_timecode(setting: str, info: VideoInfo, first: int) -> str | None:
    """The start timecode of an output whose first frame is source frame ``first``.

    ``setting`` is Encode's param: "source" (the file's own start timecode, None when it
    states none), "none", or the timecode of the source's frame 0. Either way the output
    starts ``first`` frames later, in the drop-frame style of the timecode it comes from.
    Raises ParamError (naming the timecode) when that timecode has no frame at the rate.
    """
    origin = info.timecode if setting == "source" else None if setting == "none" else setting
    return None if origin is None else advance_timecode(origin, first, info.fps)


class VideoWriter:
    """Encode RGB frames to a file under a temporary name, remuxing the source's audio.

    Timing comes from the source: output pts are the source pts less the first frame's,
    in the source's time base, with each frame's duration, so duration and frame count
    match. Audio packets between the range's start and end are copied without
    re-encoding when the container takes the codec, else encoded to AAC (AudioMuxer).
    ``timecode``, when given, is the start timecode written as the video stream's tag (a
    tmcd track in .mov/.mp4, a TIMECODE tag in .mkv), where editors relink by it.
    """

    def __init__(self, final: Path, *, codec: str, crf: int, preset: str, profile: str, pix_fmt: str | None,
                 info: VideoInfo, first_pts: int, audio: Audio | None, audio_mode: str, audio_bitrate: int,
                 timecode: str | None = None) -> None:
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
        if timecode is not None:
            stream.metadata["timecode"] = timecode
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
    fmt = container_format(final)
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

        meta = png_metadata()
        with disk_errors(self.final):
            for arr, n in zip(frames_to_rgb8(frames.pixels), frames.index):
                Image.fromarray(arr).save(self.temp / f"{n:06d}.png", pnginfo=meta, compress_level=1)
                self.frames_written += 1

    def close(self) -> None:
        with disk_errors(self.final):
            write_folder_marker(self.temp, "png-sequence", [p.name for p in self.temp.iterdir()])

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
    timecode: str = Field("source", description="the output's start timecode: 'source' (the source file's, moved to "
                                                "the first frame written; none when the file states none), 'none', "
                                                f"or {TIMECODE_FORM}: the timecode of the source's frame 0")

    @field_validator("timecode")
    @classmethod
    def _timecode(cls, v: str) -> str:
        problem = None if v in ("source", "none") else timecode_problem(v)
        if problem is not None:
            raise ValueError(problem)  # 'source' and 'none': the description says them
        return v


class Encode(Sink):
    """Write frames to a video file (libx264, libx265, ProRes, FFV1) or a PNG sequence.

    Timing comes from the source, so the output has the input's frame count and
    duration; the source audio is remuxed (or encoded to AAC where the container needs
    it). The file is written under a temporary name and renamed when the whole run
    succeeded; its metadata says it is synthetic media made by swapgraph, and a JSON
    sidecar (``OUTPUT.swapgraph.json``) records the graph hash, params, frame range,
    versions and per-node time. The output's start timecode is the source's moved to the
    first frame written (or the ``timecode`` param's), so editors relink it to the source;
    a PNG sequence's is in its sidecar only.
    """

    schema = NodeSchema(
        inputs={"frames": Port(Frames, "RGB frames to write"),
                "audio": Port(Audio, "source audio to remux", required=False)},
        params=EncodeParams, devices=("cpu",), category="video")

    params: EncodeParams
    chunk_param = "path"

    def check(self, connected: set[str]) -> list[Issue]:
        p = self.params
        path = Path(p.path)
        if p.codec == "png":
            if path.suffix:
                return [Issue("param 'path'", f"codec png writes a folder of PNG frames, found the file name "
                              f"{path.name!r}", f"drop the suffix, e.g. {path.with_suffix('').name!r}")]
            return []
        fmt = container_format(path)
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
        self.timecode: str | None = None

    def process(self, frames: Frames, audio: Audio | None = None) -> dict[str, Any]:
        p = self.params
        if self.writer is None:
            self.info = frames.info
            self.first_index = frames.index[0]
            self.timecode = self._start_timecode(frames.info, frames.index[0])
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
                                          audio_mode=p.audio, audio_bitrate=p.audio_bitrate,
                                          timecode=self.timecode)
        self.writer.write(frames)
        self.last_index = frames.index[-1]
        return {}

    def _start_timecode(self, info: VideoInfo, first: int) -> str | None:
        """``output_timecode``, its errors naming this node's param or the source file.

        Here, not in ``check``: only the frames say the rate a drop-frame timecode needs."""
        setting = self.params.timecode
        try:
            return output_timecode(setting, info, first)
        except ParamError as exc:
            if setting == "source":
                raise MediaError(f"{info.source}: the file's start {exc}, or set node {self.id!r} param 'timecode' "
                                 "to the right one or 'none'") from None
            raise ParamError(f"node {self.id!r} param 'timecode': {exc}") from None

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
                                   "codec": p.codec, "audio": self.writer.audio_mode_used,
                                   "timecode": self.timecode})
        side = sidecar_path(self.final)
        self.sidecar_temp = temp_path_for(side)
        with disk_errors(side):
            self.sidecar_temp.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        ctx.publication.stage(self.writer.temp, self.final)
        ctx.publication.stage(self.sidecar_temp, side)

    def chunk_refusal(self) -> str | None:
        if self.params.codec == "png":
            return ("codec png writes an image sequence, which a render does not join; use a video codec (ffv1 or "
                    "prores_ks for lossless or mastering), or run frame ranges into separate folders")
        return None

    def chunk_record(self) -> dict[str, Any]:
        """The chunk's frames of the shot and where they sit in the source's time line, so the
        join puts each chunk's packets where they belong and cuts the audio to match."""
        p = self.params
        index = probe_video(self.info.source)
        first, last = self.first_index, self.last_index
        return {"frames": [first, last], "files": [str(self.final)], "frame_count": self.writer.frames_written,
                "source": str(self.info.source), "first_pts": index.pts[first],
                "end_pts": index.pts[last] + index.durations[last], "time_base": str(index.info.time_base),
                "codec": p.codec, "suffix": self.final.suffix, "audio": p.audio, "audio_bitrate": p.audio_bitrate,
                "timecode": self.timecode}

    @classmethod
    def join_chunks(cls, chunks: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        from .join import join_video_chunks

        return join_video_chunks(chunks, out)

    @classmethod
    def output_kind(cls, params: Params, name: str) -> Kind:
        return "folder" if params.codec == "png" else "file"

    @classmethod
    def extra_outputs(cls, params: Params, name: str) -> list[Path]:
        return [sidecar_path(Path(params.path))]

    def abort(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.discard()
        sidecar_temp = getattr(self, "sidecar_temp", None)
        if sidecar_temp is not None:
            sidecar_temp.unlink(missing_ok=True)

    def stats(self) -> dict[str, Any]:
        writer = getattr(self, "writer", None)
        return {"frames_written": writer.frames_written} if writer else {}
