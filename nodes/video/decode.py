"""The Decode node: a video file as batches of RGB frames, with its audio for Encode."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from pydantic import Field, field_validator

from swapgraph.runtime.errors import ArgumentError, MediaError, ParamError
from swapgraph.runtime.images import rgb_to_tensor
from swapgraph.runtime.node import InputPath, Issue, NodeSchema, Params, Port, RunContext, Source, parse_frame_range
from swapgraph.runtime.ports import Audio, Frames

from .probe import probe_video, read_video


class DecodeParams(Params):
    path: InputPath = Field(description="video file to read (relative to the graph file)")
    frames: str | None = Field(None, description="frame range A-B, inclusive and 0-based (A- to the end); "
                                                 "a run's frame range overrides it")
    threads: int = Field(0, ge=0, le=64, description="decoder threads; 0 lets FFmpeg choose")

    @field_validator("frames")
    @classmethod
    def _range(cls, v: str | None) -> str | None:
        if v is not None:
            parse_frame_range(v)
        return v


def range_problem(frames: tuple[int, int | None], count: int, path) -> str | None:
    """Why the inclusive 0-based range ``frames`` (end None: to the end) is not inside a
    clip of ``count`` frames, or None when it is."""
    start, end = frames
    if start < count and (end is None or end < count):
        return None
    return f"past the end of {path}: the clip has {count} frames (0-{count - 1})"


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
            index = probe_video(self.params.path)
        except MediaError as exc:
            return [Issue("param 'path'", str(exc))]
        if self.params.frames:
            problem = range_problem(parse_frame_range(self.params.frames), len(index.pts), self.params.path)
            if problem is not None:
                return [Issue("param 'frames'", problem, "give a range inside the clip, or leave it out")]
        return []

    def output_range(self, ctx: RunContext) -> tuple[int, int]:
        """The frames the run's sinks get: ``--frames``, else the ``frames`` param, else all.
        A range past the clip's end is refused (never cut short): ArgumentError naming the
        run's ``frames``, or ParamError naming the param."""
        n = len(probe_video(self.params.path).pts)
        if ctx.frame_range is not None:
            wanted = ctx.frame_range
            problem = range_problem(wanted, n, self.params.path)
            if problem is not None:
                start, end = wanted
                raise ArgumentError("frames", f"{start}-{'' if end is None else end}",
                                    f"{problem}; give a range inside it")
        else:
            wanted = parse_frame_range(self.params.frames) if self.params.frames else (0, None)
            problem = range_problem(wanted, n, self.params.path)
            if problem is not None:
                raise ParamError(f"node {self.id!r} param 'frames': {problem}; give a range inside the clip")
        start, end = wanted
        return start, n - 1 if end is None else end

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
