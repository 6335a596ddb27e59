"""The two conversions between tensors and 8/16-bit pixels, shared by every writer.

Encode, preview and facesets all round the same way, so a preview PNG equals the frame
a full run writes, bit for bit.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path
from .ports import check_shape


def rgb_to_tensor(batch: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8/uint16 arrays -> RGB float32 in [0, 1], shape (B, 3, H, W).

    The result is a channels-last tensor: one pass over the pixels, no reordering copy.
    """
    stacked = np.stack(batch) if isinstance(batch, list) else batch
    deep = stacked.dtype == np.uint16
    if deep:
        stacked = stacked.astype(np.int32)
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).to(torch.float32).mul_(1 / (65535.0 if deep else 255.0))


def tensor_to_rgb(data: torch.Tensor, deep: bool = False) -> np.ndarray:
    """RGB float in [0, 1], (B, 3, H, W) -> (B, H, W, 3) uint8 (uint16 when ``deep``), rounded to nearest."""
    check_shape(data, ["B", 3, "H", "W"], "images")
    scale = 65535.0 if deep else 255.0
    q = data.detach().permute(0, 2, 3, 1).mul(scale).add_(0.5).clamp_(0, scale)
    if deep:
        return q.to(torch.int32).cpu().numpy().astype(np.uint16)
    return np.ascontiguousarray(q.to(torch.uint8).cpu().numpy())


def frames_to_rgb8(pixels: torch.Tensor) -> np.ndarray:
    """A Frames' pixels (float or uint8, (B, 3, H, W)) -> (B, H, W, 3) uint8 for writers."""
    if pixels.dtype == torch.uint8:
        return np.ascontiguousarray(pixels.detach().permute(0, 2, 3, 1).cpu().numpy())
    return tensor_to_rgb(pixels)


def encode_png(image: torch.Tensor) -> bytes:
    """One RGB image (3, H, W) in [0, 1] as the bytes of an 8-bit PNG that says swapgraph
    made it (``provenance.png_metadata``)."""
    from PIL import Image

    from .provenance import png_metadata

    buffer = io.BytesIO()
    Image.fromarray(frames_to_rgb8(image[None])[0]).save(buffer, format="PNG", pnginfo=png_metadata())
    return buffer.getvalue()


def write_png(path: Path, image: torch.Tensor) -> None:
    """Write one RGB image (3, H, W) in [0, 1] as an 8-bit PNG, atomically."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(encode_png(image))
