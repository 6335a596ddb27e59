"""Blending swapped faces into the plate at full resolution."""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import Field

from swapgraph.runtime.images import frames_to_rgb8, rgb_to_tensor
from swapgraph.runtime.node import Node, NodeSchema, Params, Port
from swapgraph.runtime.ports import Frames

from .align import paste_crops
from .ports import FaceCrops, Masks


def seamless_paste(frames: torch.Tensor, crops: FaceCrops, masks: torch.Tensor) -> torch.Tensor:
    """Poisson blending (OpenCV's seamlessClone) of each crop into its frame, on the CPU.

    frames: (B, 3, H, W) in [0, 1]. Each crop and its mask are warped to the frame first,
    so the gradients are matched at plate resolution.
    """
    rgb = frames_to_rgb8(frames.detach().cpu())
    h, w = rgb.shape[1:3]
    crop_rgb = frames_to_rgb8(crops.crops.detach().cpu())
    m = crops.frame_from_crop.detach().cpu().numpy()
    for i, r in enumerate(crops.row):
        face = cv2.warpAffine(crop_rgb[i], m[i], (w, h), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(masks[i, 0].detach().cpu().numpy(), m[i], (w, h), flags=cv2.INTER_LINEAR)
        hard = (alpha > 0.5).astype(np.uint8) * 255
        ys, xs = np.nonzero(hard)
        if len(xs) == 0 or xs.min() == 0 or ys.min() == 0 or xs.max() == w - 1 or ys.max() == h - 1:
            continue  # at the frame edge Poisson blending has no border to solve against
        # OpenCV puts the mask's bounding box at centre - size // 2: this centre keeps the face
        # where it was (the midpoint shifted it a pixel up and left whenever a side was even)
        x0, y0 = int(xs.min()), int(ys.min())
        centre = (x0 + (int(xs.max()) - x0 + 1) // 2, y0 + (int(ys.max()) - y0 + 1) // 2)
        rgb[r] = cv2.seamlessClone(face, rgb[r], hard, centre, cv2.NORMAL_CLONE)
    return rgb_to_tensor(rgb).to(frames.device)


class MaskBlendParams(Params):
    mode: Literal["feather", "seamless"] = Field("feather", description="feather: the soft mask as alpha; "
                                                                        "seamless: Poisson blending (CPU)")


class MaskBlend(Node):
    """Paste each swapped face into its full-resolution frame through ``frame_from_crop``.

    ``feather`` uses the (feathered) mask as alpha, batched on the device; ``seamless``
    solves a Poisson blend per face with OpenCV. Several faces per frame are pasted in
    turn; frames without a face pass through unchanged.
    """

    schema = NodeSchema(inputs={"frames": Port(Frames, "the plate"), "crops": Port(FaceCrops, "swapped crops"),
                                "masks": Port(Masks, "where each crop is the face")},
                        outputs={"frames": Port(Frames, "the plate with the faces pasted in")},
                        params=MaskBlendParams, category="blend")

    params: MaskBlendParams

    def process(self, frames: Frames, crops: FaceCrops, masks: Masks) -> dict[str, Any]:
        if not len(crops):
            return {"frames": frames}
        if self.params.mode == "seamless":
            return {"frames": frames.with_data(seamless_paste(frames.data, crops, masks.masks))}
        rows = torch.tensor(crops.row)
        data = paste_crops(frames.data, crops.crops.to(frames.data.device), rows, crops.frame_from_crop,
                           masks.masks.to(frames.data.device))
        return {"frames": frames.with_data(data)}
