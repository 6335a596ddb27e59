"""Muxing the source's audio into an output container, copied or encoded to AAC."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from swapgraph.runtime.errors import MediaError
from swapgraph.runtime.ports import Audio


def takes_copy(fmt: str, stream: av.audio.stream.AudioStream) -> bool:
    """Whether container format ``fmt`` takes ``stream``'s packets as they are: the codec,
    and its parameters too (MP4 refuses MP3 at 8 kHz), tried by writing a header in memory."""
    with av.open(io.BytesIO(), "w", format=fmt) as trial:
        if stream.codec_context.name not in trial.supported_codecs:
            return False
        trial.add_stream_from_template(stream)
        try:
            trial.start_encoding()
        except (av.FFmpegError, ValueError):
            return False
    return True


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
        for s in self.audio_in.streams.audio:
            if mode in ("auto", "copy") and takes_copy(fmt, s):
                self.audio_map[s.index] = container.add_stream_from_template(s)
                self.modes_used.append(f"copy {s.codec_context.name}")
            elif mode == "copy":
                self.discard()
                codec = s.codec_context.codec.canonical_name
                raise MediaError(f"{final}: the {final.suffix} container does not take the source's {codec} audio at "
                                 f"{s.codec_context.sample_rate} Hz as it is; fix: set audio 'auto' (encoded to AAC) "
                                 "or write a .mkv or .mov output")
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
