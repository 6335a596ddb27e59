"""Domain port types: the faces found in frames, aligned crops of them, and their masks.

They live with the nodes, not in the engine: the engine moves any :class:`PortType`
between devices and checks links by subclass, without knowing what a face is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from swapgraph.runtime.errors import ShapeError
from swapgraph.runtime.ports import Frames, PortType, frame_rows

from .draw import crop_grid, draw_faces

BUCKETS = ("frontal", "three_quarter", "side")


@dataclass
class Face:
    """One face in one frame.

    track: id stable across frames for the same person (-1 before tracking).
    box: (x0, y0, x1, y1) in frame pixels.
    landmarks: (478, 3) float32, MediaPipe's refined mesh; x, y in frame pixels, z in
        pixels of the same scale, negative towards the camera.
    pose: (yaw, pitch, roll) in degrees; yaw > 0 when the face turns to its own left
        (towards image right), pitch > 0 looking down, roll > 0 tilting clockwise.
    bucket: orientation bucket, one of ``BUCKETS``.
    """

    track: int
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bucket: str = "frontal"

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def scaled(self, sx: float, sy: float) -> "Face":
        lm = self.landmarks * np.array([sx, sy, sx], np.float32)
        x0, y0, x1, y1 = self.box
        return dataclasses.replace(self, box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy), landmarks=lm)


@dataclass(eq=False)
class Faces(PortType):
    """The faces found in a batch of frames.

    faces: one list per frame of ``frames`` (empty where no face was kept).
    frames: the batch the faces were found in (pixels are not copied; preview draws on it).
    """

    label = "faces"
    faces: list[list[Face]]
    frames: Frames

    def __post_init__(self) -> None:
        if len(self.faces) != len(self.frames):
            raise ShapeError(f"Faces: {len(self.faces)} lists for {len(self.frames)} frames")

    def frames_in_batch(self) -> int:
        return len(self.frames)

    def to(self, device: torch.device, non_blocking: bool = False) -> "Faces":
        return dataclasses.replace(self, frames=self.frames.to(device, non_blocking))

    def preview_image(self, frame: int) -> torch.Tensor | None:
        if frame not in self.frames.index:
            return None
        row = self.frames.index.index(frame)
        return draw_faces(self.frames.data[row], self.faces[row])

    def frame_numbers(self) -> list[int]:
        return self.frames.index

    def keep_frames(self, first: int, last: int | None) -> "Faces | None":
        rows = frame_rows(self.frames.index, first, last)
        if rows is None or (rows.start, rows.stop) == (0, len(self.frames)):
            return None if rows is None else self
        return Faces(self.faces[rows], self.frames.select(rows))


def iter_faces(faces: Faces) -> Iterable[tuple[int, int, Face]]:
    """(row in the batch, source frame number, face) for every face of a batch."""
    for row, (n, row_faces) in enumerate(zip(faces.frames.index, faces.faces)):
        for f in row_faces:
            yield row, n, f


@dataclass(eq=False)
class FaceCrops(PortType):
    """Aligned face crops of a batch of frames.

    crops: RGB in [0, 1], shape (N, 3, S, S), S = ``crop`` pixels.
    frame_from_crop: (N, 2, 3) float64 affine taking crop pixels to frame pixels
        (pixel centres at integer coordinates); ``crop_from_frame`` is its inverse.
    row: for each crop, the row of ``frames`` it was cut from.
    faces: for each crop, the face it shows (landmarks in frame pixels).
    coverage, size: the model sees the central ``coverage`` pixels of each crop,
        resized to ``size`` (the classic 160 of 256, to 64).
    frames: the batch the crops were cut from.
    rendered: the side of the central square a swap model rendered (or would render)
        in each crop; pixels outside it are the plate's. None means ``coverage``.
    """

    label = "crops"
    crops: torch.Tensor
    frame_from_crop: torch.Tensor
    row: list[int]
    faces: list[Face]
    coverage: int
    size: int
    frames: Frames
    rendered: int | None = None

    def __post_init__(self) -> None:
        n = len(self.row)
        if self.crops.shape[0] != n or self.frame_from_crop.shape != (n, 2, 3) or len(self.faces) != n:
            raise ShapeError(f"FaceCrops: {self.crops.shape[0]} crops, {tuple(self.frame_from_crop.shape)} "
                             f"matrices, {n} rows and {len(self.faces)} faces must agree")

    def __len__(self) -> int:
        return len(self.row)

    def frames_in_batch(self) -> int:
        return len(self.frames)

    @property
    def crop_size(self) -> int:
        return int(self.crops.shape[-1])

    @property
    def rendered_size(self) -> int:
        """Side of the central square of each crop that is (or will be) the model's pixels."""
        return self.coverage if self.rendered is None else self.rendered

    def to(self, device: torch.device, non_blocking: bool = False) -> "FaceCrops":
        if self.crops.device == torch.device(device):
            return self
        return dataclasses.replace(self, crops=self.crops.to(device, non_blocking=non_blocking),
                                   frame_from_crop=self.frame_from_crop.to(device),
                                   frames=self.frames.to(device, non_blocking))

    def preview_image(self, frame: int) -> torch.Tensor | None:
        if frame not in self.frames.index:
            return None
        row = self.frames.index.index(frame)
        picks = [i for i, r in enumerate(self.row) if r == row]
        if not picks:
            return self.frames.data[row].detach().cpu()
        return crop_grid(self.crops[picks], self.rendered_size)

    def frame_numbers(self) -> list[int]:
        return self.frames.index

    def picks_in(self, rows: slice) -> list[int]:
        """The crops cut from frames ``rows`` of the batch."""
        return [i for i, r in enumerate(self.row) if rows.start <= r < rows.stop]

    def keep_frames(self, first: int, last: int | None) -> "FaceCrops | None":
        rows = frame_rows(self.frames.index, first, last)
        if rows is None or (rows.start, rows.stop) == (0, len(self.frames)):
            return None if rows is None else self
        picks = self.picks_in(rows)
        return FaceCrops(self.crops[picks], self.frame_from_crop[picks], [self.row[i] - rows.start for i in picks],
                         [self.faces[i] for i in picks], self.coverage, self.size, self.frames.select(rows),
                         self.rendered)


@dataclass(eq=False)
class Masks(PortType):
    """Masks aligned with a :class:`FaceCrops`: (N, 1, S, S) in [0, 1], 1 = the swapped face."""

    label = "masks"
    masks: torch.Tensor
    crops: FaceCrops

    def __post_init__(self) -> None:
        if self.masks.shape != (len(self.crops), 1, self.crops.crop_size, self.crops.crop_size):
            raise ShapeError(f"Masks: shape {tuple(self.masks.shape)} does not fit {len(self.crops)} crops of "
                             f"{self.crops.crop_size} px")

    def frames_in_batch(self) -> int:
        return len(self.crops.frames)

    def to(self, device: torch.device, non_blocking: bool = False) -> "Masks":
        if self.masks.device == torch.device(device):
            return self
        return Masks(self.masks.to(device, non_blocking=non_blocking), self.crops.to(device, non_blocking))

    def preview_image(self, frame: int) -> torch.Tensor | None:
        if frame not in self.crops.frames.index:
            return None
        row = self.crops.frames.index.index(frame)
        picks = [i for i, r in enumerate(self.crops.row) if r == row]
        if not picks:
            return self.crops.frames.data[row].detach().cpu()
        shown = self.crops.crops[picks] * (0.25 + 0.75 * self.masks[picks])  # the face bright, the rest dimmed
        return crop_grid(shown, None)

    def frame_numbers(self) -> list[int]:
        return self.crops.frames.index

    def keep_frames(self, first: int, last: int | None) -> "Masks | None":
        rows = frame_rows(self.crops.frames.index, first, last)
        if rows is None or (rows.start, rows.stop) == (0, len(self.crops.frames)):
            return None if rows is None else self
        return Masks(self.masks[self.crops.picks_in(rows)], self.crops.keep_frames(first, last))
