"""Resampling: antialiased resize with kornia, the engine under Downscale and Upscale."""

from __future__ import annotations

from typing import Any, Literal

import kornia
import numpy as np
import torch
from pydantic import Field, model_validator

from swapgraph.runtime.node import Issue, Node, NodeSchema, Params, Port
from swapgraph.runtime.ports import Frames, check_shape

from .ports import Faces


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
    if mode == "area" and size[0] <= images.shape[-2] and size[1] <= images.shape[-1]:
        # area averaging is its own low-pass: kornia's antialias would blur first as well (a
        # softer result, and 17x the time: it was half of a training step on the CPU)
        return torch.nn.functional.interpolate(images, size=size, mode="area").clamp_(0, 1)
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


class DownscaleParams(Params):
    face_height: int = Field(256, ge=16, le=4096, description="target face height in pixels (landmark extent)")
    per_shot: bool = Field(True, description="one scale for the whole shot (the plate's resolution stays uniform), "
                                             "fixed on the first frames with a face; else a scale per batch")
    scale: float | None = Field(None, gt=0, le=16, description="use this scale instead of measuring the faces "
                                                               "(e.g. the same for every chunk on a farm)")
    enlarge: bool = Field(False, description="allow scales above 1 (small faces made bigger)")
    mode: Literal["bilinear", "bicubic", "area", "nearest"] = Field("area", description="interpolation")


class Downscale(Node):
    """Downscale-to-256: scale frames so the tracked face is about ``face_height`` px tall.

    The classic advice: work on faces about 256 px tall, at one scale for the whole shot
    so the plate's resolution stays uniform. Never enlarges unless asked. The faces'
    boxes and landmarks are scaled to match the new frames. With ``per_shot`` the scale is
    fixed by the first batch that has a face (batches before it pass at their own size);
    give ``scale`` to fix it in advance, e.g. for farm chunks.
    """

    schema = NodeSchema(
        inputs={"frames": Port(Frames, "frames to scale"), "faces": Port(Faces, "faces found in those frames")},
        outputs={"frames": Port(Frames, "scaled frames"), "faces": Port(Faces, "faces in scaled-frame pixels")},
        params=DownscaleParams, category="resample")

    params: DownscaleParams

    def range_issues(self) -> list[Issue]:
        if self.params.per_shot and self.params.scale is None:
            return [Issue("param 'scale'", "the per-shot scale is measured on the first frames a run decodes, so "
                          "chunks would each measure their own", "run the shot once (its summary gives the "
                          f"measured scale) and set it, e.g. as the override {self.id}.scale=S")]
        return []

    def open(self, ctx) -> None:
        self.shot_scale: float | None = self.params.scale

    def _measure(self, faces: Faces) -> float | None:
        heights = [float(f.landmarks[:, 1].max() - f.landmarks[:, 1].min()) for row in faces.faces for f in row]
        if not heights:
            return None
        s = self.params.face_height / float(np.median(heights))
        return s if self.params.enlarge else min(1.0, s)

    def process(self, frames: Frames, faces: Faces) -> dict[str, Any]:
        scale = self.shot_scale
        if scale is None:
            scale = self._measure(faces)
            if self.params.per_shot and scale is not None:
                self.shot_scale = scale
        scale = 1.0 if scale is None else scale
        _, _, h, w = frames.pixels.shape
        size = target_size(h, w, factor=scale) if scale != 1.0 else (h, w)
        out = frames.with_data(resize_images(frames.data, size, self.params.mode)) if size != (h, w) else frames
        sx, sy = size[1] / w, size[0] / h
        scaled = [[f.scaled(sx, sy) for f in row] for row in faces.faces]
        return {"frames": out, "faces": Faces(scaled, out)}

    def stats(self) -> dict[str, Any]:
        s = getattr(self, "shot_scale", None)
        return {"scale": round(s, 4)} if s is not None else {}


class UpscaleParams(Params):
    mode: Literal["bilinear", "bicubic", "area", "nearest"] = Field("bicubic", description="interpolation")


class Upscale(Node):
    """Return frames to the size of the ``reference`` frames (the plate before Downscale)."""

    schema = NodeSchema(
        inputs={"frames": Port(Frames, "frames to scale back"), "reference": Port(Frames, "frames whose size to match")},
        outputs={"frames": Port(Frames, "frames at the reference's size")},
        params=UpscaleParams, category="resample")

    params: UpscaleParams

    def process(self, frames: Frames, reference: Frames) -> dict[str, Any]:
        size = (reference.info.height, reference.info.width)
        return {"frames": frames.with_data(resize_images(frames.data, size, self.params.mode))}
