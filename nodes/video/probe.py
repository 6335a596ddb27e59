"""Opening and probing input videos, and reading their frames as upright RGB arrays.

The frame index (every frame's pts, from demuxing once) gives exact frame numbers for
seeking; ``read_video`` batches frames so that a chunk of a shot decodes like the whole.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from swapgraph.runtime.errors import MediaError
from swapgraph.runtime.ports import AudioStreamInfo, VideoInfo

# AVColorSpace numbers -> swscale matrices
_COLORSPACES = {1: "itu709", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}


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


def stated_timecode(container: av.container.InputContainer) -> str | None:
    """The start timecode the file states: its video stream's ``timecode`` tag (a .mov/.mp4
    tmcd track shows there, a .mkv tag as ``TIMECODE``), else a data stream's, else the
    container's; None when it states none. The text is kept as written."""
    tagged = [container.streams.video[0], *container.streams.data, container]
    for holder in tagged:
        for key, value in holder.metadata.items():
            if key.lower() == "timecode" and value.strip():
                return value.strip()
    return None


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
        timecode = stated_timecode(container)
    with _open_input(p) as container:
        vs = container.streams.video[0]
        listed = vs.frames  # what the file's index (an MP4's sample table) promises; 0 when it has none
        pts: list[int] = []
        read = 0
        last_duration = 0
        try:
            for packet in container.demux(vs):
                read += packet.size > 0 or packet.pts is not None  # not the flush packet at the end
                if packet.pts is None or packet.is_discard:
                    continue
                pts.append(packet.pts)
                if packet.pts >= max(pts):
                    last_duration = packet.duration or 0
        except av.FFmpegError as exc:
            raise MediaError(f"{p}: damaged while reading ({exc}); fix: re-export the file") from None
    if not pts:
        raise MediaError(f"{p}: video stream has no frames; fix: give a video with frames")
    if listed > read:
        raise MediaError(f"{p}: the file's index lists {listed} frames, reading it gave {read}; the file is "
                         "truncated or damaged; fix: re-export it")
    pts.sort()
    step = round(1 / (fps * time_base)) if fps else 1
    durations = [b - a for a, b in zip(pts, pts[1:])] + [last_duration or step]
    info = VideoInfo(width=width, height=height, fps=fps, time_base=time_base, rotation=rotation,
                     color_range=rng, color_space=cs, source=p, frame_count=len(pts),
                     duration_pts=pts[-1] + durations[-1] - pts[0], start_pts=pts[0], timecode=timecode)
    return VideoIndex(info, tuple(pts), tuple(durations), audio)


def probe_video(path: Path) -> VideoIndex:
    """Open ``path``, check it has decodable video, and index its frames; MediaError if not."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(f"{p}: file not found; fix: check the path") from None
    if p.is_dir():
        raise MediaError(f"{p}: is a folder, not a video file; fix: give the path of a video file")
    return _probe_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def frame_to_rgb(frame: av.VideoFrame, info: VideoInfo) -> np.ndarray:
    """One decoded frame as upright RGB, (H, W, 3) uint8 for 8-bit sources, uint16 above."""
    deep = max((c.bits for c in frame.format.components), default=8) > 8
    rgb = frame.reformat(format="rgb48le" if deep else "rgb24", src_colorspace=info.color_space,
                         src_color_range="JPEG" if info.color_range == "pc" else "MPEG").to_ndarray()
    if info.rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=info.rotation // 90))
    return rgb


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
            if expected <= stop:  # the decoder ran dry before the frames the index promised
                raise MediaError(f"{path}: the file's index lists {len(index.pts)} frames, decoding gave {expected}; "
                                 "the file is truncated or damaged; fix: re-export it")
            if batch[0]:
                yield batch
            return
