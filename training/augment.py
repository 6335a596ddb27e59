"""Augmentation on the training device, in batches with kornia.

Small rotation/scale/shift, flip and colour jitter on the whole crop, then the classic random
warp of the model's input only (the target is not warped), so the decoder learns to rebuild a
face, not to copy pixels.
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F

from swapgraph.nodes.align import model_input


def random_warp(images: torch.Tensor, generator: torch.Generator, strength: float = 0.05, points: int = 5) -> torch.Tensor:
    """The classic random warp: a coarse grid of control points moved at random, smoothed.

    images: (B, C, S, S) in [0, 1]. Each control point moves by a normal offset of
    ``strength`` of the image side; the offsets are upsampled to a smooth flow.
    """
    b = images.shape[0]
    noise = torch.randn(b, 2, points, points, generator=generator, device=generator.device) * (2 * strength)
    noise[:, :, [0, -1], :] = 0  # the edges stay put
    noise[:, :, :, [0, -1]] = 0
    flow = F.interpolate(noise.to(images.device), size=images.shape[-2:], mode="bicubic", align_corners=True)
    theta = torch.eye(2, 3, device=images.device, dtype=images.dtype)[None].expand(b, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=True) + flow.permute(0, 2, 3, 1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def augment(crops: torch.Tensor, masks: torch.Tensor | None, coverage: int, size: int,
            generator: torch.Generator, warp: float = 0.05, features: torch.Tensor | None = None,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(input, target, target mask or None, target feature mask or None) for a batch of
    uint8 crops (N, 3, S, S), on the crops' device; masks and features (N, 1, S, S) uint8.

    Rotation ±10°, scale ±5%, shift ±5%, horizontal flip and colour jitter apply to input
    and target (and the masks) alike; the random warp (``warp``: control-point offsets as a
    share of the side) to the input only. ``coverage`` is the central square the model sees.
    """
    b, _, s, _ = crops.shape
    extra = [m.float() / 255 for m in (masks, features) if m is not None]
    x = torch.cat([crops.float() / 255, *extra], 1)
    g = generator

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=g, device=g.device).to(x.device) * (hi - lo) + lo

    angle, scale = uniform(-10, 10), uniform(0.95, 1.05)
    shift = torch.stack([uniform(-0.05, 0.05), uniform(-0.05, 0.05)], 1) * s
    centre = torch.full((b, 2), (s - 1) / 2, device=x.device)
    m = kornia.geometry.transform.get_rotation_matrix2d(centre, angle, torch.stack([scale, scale], 1))
    m[:, :, 2] += shift
    x = kornia.geometry.transform.warp_affine(x, m, (s, s), padding_mode="border", align_corners=True)
    flip = uniform(0, 1) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    rgb = x[:, :3]
    brightness = uniform(-0.05, 0.05)[:, None, None, None]
    contrast = uniform(0.9, 1.1)[:, None, None, None]
    mean = rgb.mean((1, 2, 3), keepdim=True)
    rgb = ((rgb - mean) * contrast + mean + brightness).clamp(0, 1)
    target = model_input(rgb, coverage, size)
    # the masks travel as one 3-channel image through the resize (one call, not one per mask)
    packed = x[:, 3:]
    if extra:
        packed = model_input(torch.cat([packed, packed[:, :1].expand(-1, 3 - packed.shape[1], -1, -1)], 1)
                             if packed.shape[1] < 3 else packed, coverage, size)
    extra_out = iter(packed.split(1, 1))
    mask = next(extra_out) if masks is not None else None
    feats = next(extra_out) if features is not None else None
    return (random_warp(target, g, warp) if warp > 0 else target), target, mask, feats


def plain_input(crops: torch.Tensor, coverage: int, size: int) -> torch.Tensor:
    """Model input of uint8 crops without augmentation (validation, previews)."""
    return model_input(crops.float() / 255, coverage, size)
