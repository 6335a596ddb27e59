"""What ``preview`` draws for the face port types: faces on their frame, crops as a grid.

Drawing happens on 8-bit copies with OpenCV; inputs and outputs are RGB float in [0, 1],
shape (3, H, W), so preview can write any of them the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np
import torch

from swapgraph.runtime.images import frames_to_rgb8

if TYPE_CHECKING:
    from .ports import Face

_COLOURS = [(255, 80, 80), (80, 200, 255), (120, 255, 120), (255, 200, 60), (220, 120, 255)]


def _to_image(image: torch.Tensor) -> np.ndarray:
    return frames_to_rgb8(image[None].detach().cpu())[0].copy()


def _from_image(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)


def draw_faces(image: torch.Tensor, faces: Sequence["Face"]) -> torch.Tensor:
    """The frame with each face's 478 landmarks, box, track id, pose and bucket drawn on it.

    image: RGB in [0, 1], shape (3, H, W). Returns the same shape, on the CPU.
    """
    rgb = _to_image(image)
    h = rgb.shape[0]
    thick = max(1, round(h / 540))
    for face in faces:
        colour = _COLOURS[face.track % len(_COLOURS)] if face.track >= 0 else (255, 255, 255)
        for x, y in face.landmarks[:, :2]:
            cv2.circle(rgb, (int(round(x)), int(round(y))), thick, colour, -1, cv2.LINE_AA)
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(rgb, (x0, y0), (x1, y1), colour, thick, cv2.LINE_AA)
        yaw, pitch, roll = face.pose
        label = f"#{face.track} {face.bucket} yaw {yaw:+.0f} pitch {pitch:+.0f} roll {roll:+.0f}"
        scale = max(0.4, h / 1400)
        cv2.putText(rgb, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2,
                    cv2.LINE_AA)
        cv2.putText(rgb, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    return _from_image(rgb)


def crop_grid(crops: torch.Tensor, coverage: int | None = None, columns: int = 4) -> torch.Tensor:
    """Crops (N, 3, S, S) in [0, 1] tiled in rows of ``columns``, with the model's central
    ``coverage`` square outlined. Returns (3, H, W) on the CPU."""
    n, _, s, _ = crops.shape
    cols = min(columns, n)
    rows = -(-n // cols)
    grid = np.zeros((rows * s, cols * s, 3), np.uint8)
    tiles = frames_to_rgb8(crops.detach().cpu())
    for i, tile in enumerate(tiles):
        tile = tile.copy()
        if coverage:
            pad = (s - coverage) // 2
            cv2.rectangle(tile, (pad, pad), (pad + coverage - 1, pad + coverage - 1), (255, 220, 0), 1)
        r, c = divmod(i, cols)
        grid[r * s:(r + 1) * s, c * s:(c + 1) * s] = tile
    return _from_image(grid)
