"""Resampling: antialiased resize with kornia, the engine under Downscale and Upscale."""

from __future__ import annotations

from typing import Any, Literal

import kornia
import torch
from pydantic import Field, model_validator

from swapgraph.runtime.node import Issue, Node, NodeSchema, Params, Port
from swapgraph.runtime.ports import Frames, check_shape


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def target_size(height: int, width: int, *, factor: float | None = None, to_height: int | None = None,
                even: bool = True) -> tuple[int, int]:
    """Output (H, W) for a resize by ``factor`` or to ``to_height`` keeping the aspect ratio.

    With ``even`` both sides round to even numbers (4:2:0 video needs them).
    """
    if to_height is not None:
        h, w = float(to_height), width * to_height / height
    elif factor is not None:
        h, w = height * factor, width * factor
    else:
        raise ValueError("give factor or to_height")
    return (_even(h), _even(w)) if even else (max(1, round(h)), max(1, round(w)))


def resize_images(images: torch.Tensor, size: tuple[int, int],
                  mode: Literal["bilinear", "bicubic", "area", "nearest"] = "bilinear",
                  antialias: bool = True) -> torch.Tensor:
    """Resize RGB images.

    images: RGB in [0, 1], shape (B, 3, H, W), any device.
    size: output (H', W').
    Returns (B, 3, H', W') in [0, 1]. Shrinking low-pass filters first (``antialias``),
    so fine detail turns into blur rather than aliasing.
    """
    check_shape(images, ["B", 3, "H", "W"], "images")
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = kornia.geometry.transform.resize(images, size, interpolation=mode, antialias=antialias,
                                           align_corners=None if mode in ("area", "nearest") else False)
    return out.clamp_(0, 1)


class ResizeParams(Params):
    factor: float | None = Field(None, gt=0, le=16, description="scale by this factor (0.5 halves each side)")
    height: int | None = Field(None, ge=2, le=8640, description="scale to this height, keeping the aspect ratio")
    mode: Literal["bilinear", "bicubic", "area", "nearest"] = Field("bicubic", description="interpolation")
    antialias: bool = Field(True, description="low-pass before shrinking")
    even: bool = Field(True, description="round width and height to even numbers (needed by 4:2:0 video)")

    @model_validator(mode="after")
    def _one_target(self) -> "ResizeParams":
        if self.factor is not None and self.height is not None:
            raise ValueError("give factor or height, not both")
        return self


class Resize(Node):
    """Resize frames: by a factor, to a target height, or back to a reference's size.

    With the ``reference`` input linked, frames are resized to the reference frames'
    size (how an Upscale returns a downscaled plate to its original resolution); else
    ``factor`` or ``height`` sets the size. Antialiased (kornia), batched on the device.
    """

    schema = NodeSchema(
        inputs={"frames": Port(Frames, "frames to resize"),
                "reference": Port(Frames, "frames whose size to match", required=False)},
        outputs={"frames": Port(Frames, "resized frames, same timing")},
        params=ResizeParams, category="resample")

    params: ResizeParams

    def check(self, connected: set[str]) -> list[Issue]:
        p = self.params
        if "reference" not in connected and p.factor is None and p.height is None:
            return [Issue("params", "no target size: neither factor, height nor a reference input",
                          "set factor or height, or link the reference input")]
        if "reference" in connected and (p.factor is not None or p.height is not None):
            return [Issue("params", "the reference input sets the size, so factor/height would be ignored",
                          "remove factor and height, or unlink reference")]
        return []

    def process(self, frames: Frames, reference: Frames | None = None) -> dict[str, Any]:
        _, _, h, w = frames.data.shape
        p = self.params
        if reference is not None:
            size = (reference.info.height, reference.info.width)
        else:
            size = target_size(h, w, factor=p.factor, to_height=p.height, even=p.even)
        return {"frames": frames.with_data(resize_images(frames.data, size, p.mode, p.antialias))}
