"""Port types: the classes of the values that flow along graph links.

A link is legal when the output port's type is the input port's type or a subclass of
it. Images are RGB float in [0, 1], shape (B, 3, H, W), on the producing node's device.
The engine's own types are here (frames, audio); the domain's (faces, crops, masks) are
subclasses of :class:`PortType` that live with the nodes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import ShapeError


def check_shape(x: torch.Tensor, shape: Sequence[str | int], name: str = "tensor") -> None:
    """Check ``x`` against a symbolic shape such as ``["B", 3, "H", "W"]``.

    Strings are free dimensions (the same string must bind to the same size), ints are
    exact sizes. Raises :class:`ShapeError` showing expected and actual.
    """
    if x.ndim != len(shape):
        raise ShapeError(f"{name}: expected shape {list(shape)}, found {tuple(x.shape)}")
    bound: dict[str, int] = {}
    for dim, want in zip(x.shape, shape):
        if isinstance(want, int):
            ok = dim == want
        else:
            ok = bound.setdefault(want, dim) == dim
        if not ok:
            raise ShapeError(f"{name}: expected shape {list(shape)}, found {tuple(x.shape)}")


class PortType:
    """Base of every port type. Subclasses are the values carried on links."""

    #: short human name used in messages and the JSON Schema
    label: str = "value"

    def to(self, device: torch.device, non_blocking: bool = False) -> "PortType":
        """This value with its tensors on ``device``; the same object when already there."""
        return self

    def frames_in_batch(self) -> int:
        """How many frames of the shot this value covers (progress counts these)."""
        return 0

    def preview_image(self, frame: int) -> torch.Tensor | None:
        """What ``swapgraph preview`` shows for source frame ``frame``: RGB (3, H, W) in [0, 1],
        or None when this value has nothing to show for that frame."""
        return None

    def frame_numbers(self) -> list[int] | None:
        """The source frame numbers this value covers, in order; None for values without frames."""
        return None

    def keep_frames(self, first: int, last: int | None) -> "PortType | None":
        """This value restricted to frames ``first..last`` (inclusive; None: no end), or None
        when none of its frames are in that range. Values without frames pass unchanged."""
        return self


def frame_rows(index: Sequence[int], first: int, last: int | None) -> slice | None:
    """The rows of a batch (ascending frame numbers ``index``) inside ``first..last``."""
    lo = next((i for i, n in enumerate(index) if n >= first), len(index))
    hi = next((i for i, n in enumerate(index) if last is not None and n > last), len(index))
    return slice(lo, hi) if hi > lo else None


@dataclass(frozen=True)
class VideoInfo:
    """What a shot's frames share: size after rotation, timing, colour, source.

    ``fps`` is the stream's average rate as a fraction; ``time_base`` is the unit of
    ``pts``. ``rotation`` is the display-matrix rotation of the source in degrees
    (counter-clockwise); Decode has already applied it, so frames are upright.
    ``timecode`` is the start timecode as the file states it (the timecode of frame 0,
    e.g. ``01:00:00;00``; see ``runtime/timecode.py``), None when it states none.
    """

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    rotation: int = 0
    color_range: str = "tv"
    color_space: str = "bt709"
    source: Path | None = None
    frame_count: int | None = None
    duration_pts: int | None = None
    start_pts: int = 0
    timecode: str | None = None

    def with_size(self, width: int, height: int) -> "VideoInfo":
        return dataclasses.replace(self, width=width, height=height)


@dataclass(eq=False)
class Frames(PortType):
    """A batch of consecutive frames of one shot.

    pixels: RGB, shape (B, 3, H, W), on the producing node's device: float in [0, 1], or
        uint8 straight from Decode. Nodes read ``data``, always float in [0, 1]; the
        uint8 form lets a frame that no node changes go from Decode to Encode without a
        round trip through float, and crosses to a GPU at a quarter of the bytes.
    index: the B frame numbers in the source (0-based, presentation order).
    pts: the B presentation timestamps, in ``info.time_base`` units.
    duration: the B frame durations in ``info.time_base`` units (the last frame's
        duration sets the end of the shot, so a shot keeps its length through a graph).
    """

    label = "frames"
    pixels: torch.Tensor
    index: list[int]
    pts: list[int]
    duration: list[int]
    info: VideoInfo

    def __post_init__(self) -> None:
        check_shape(self.pixels, ["B", 3, "H", "W"], "Frames.pixels")
        if not (self.pixels.is_floating_point() or self.pixels.dtype == torch.uint8):
            raise ShapeError(f"Frames.pixels: expected float or uint8, found {self.pixels.dtype}")
        if not (len(self.index) == len(self.pts) == len(self.duration) == self.pixels.shape[0]):
            raise ShapeError(
                f"Frames: {self.pixels.shape[0]} images but {len(self.index)} indices, "
                f"{len(self.pts)} pts, {len(self.duration)} durations"
            )
        self._float: torch.Tensor | None = None

    @property
    def data(self) -> torch.Tensor:
        """RGB float in [0, 1], shape (B, 3, H, W); converted from uint8 once, on first use."""
        if not self.pixels.is_floating_point():
            if self._float is None:  # two consumers racing here both compute the same tensor
                self._float = self.pixels.to(torch.float32).mul_(1 / 255)
            return self._float
        return self.pixels

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def frames_in_batch(self) -> int:
        return len(self)

    def to(self, device: torch.device, non_blocking: bool = False) -> "Frames":
        if self.pixels.device == torch.device(device):
            return self
        pixels = self.pixels
        if pixels.device.type == "cpu" and torch.device(device).type == "cuda":
            pixels = pixels.pin_memory()
        return dataclasses.replace(self, pixels=pixels.to(device, non_blocking=non_blocking))

    def with_data(self, data: torch.Tensor) -> "Frames":
        """Same frames and timing, new pixels (e.g. resized); ``info`` follows the new size."""
        info = self.info
        if tuple(data.shape[-2:]) != (info.height, info.width):
            info = info.with_size(int(data.shape[-1]), int(data.shape[-2]))
        return dataclasses.replace(self, pixels=data, info=info)

    def preview_image(self, frame: int) -> torch.Tensor | None:
        if frame not in self.index:
            return None
        return self.data[self.index.index(frame)].detach().cpu()

    def select(self, rows: slice) -> "Frames":
        return Frames(self.pixels[rows], self.index[rows], self.pts[rows], self.duration[rows], self.info)

    def frame_numbers(self) -> list[int]:
        return self.index

    def keep_frames(self, first: int, last: int | None) -> "Frames | None":
        rows = frame_rows(self.index, first, last)
        if rows is None or (rows.start, rows.stop) == (0, len(self)):
            return None if rows is None else self
        return self.select(rows)


@dataclass(frozen=True)
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    time_base: Fraction


@dataclass
class Audio(PortType):
    """The source's audio streams, passed through untouched to Encode.

    No samples travel on the link: Encode re-reads the packets from ``source`` between
    ``start`` and ``end`` (seconds, the shot's frame range) and remuxes them.
    """

    label = "audio"
    source: Path | None
    streams: list[AudioStreamInfo] = field(default_factory=list)
    start: float = 0.0
    end: float | None = None


def port_type_name(t: type) -> str:
    return t.__name__


def is_compatible(output: type, input_: type) -> bool:
    """A link is legal when the output type is the input type or a subclass of it."""
    return isinstance(output, type) and isinstance(input_, type) and issubclass(output, input_)


def move(value: Any, device: torch.device) -> Any:
    """Move a port value to ``device`` (non-blocking from pinned memory)."""
    if isinstance(value, PortType):
        return value.to(device, non_blocking=True)
    return value
