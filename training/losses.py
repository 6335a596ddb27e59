"""The reconstruction loss the trainer minimises and the validation score reports."""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F


def detail_bands(images: torch.Tensor) -> torch.Tensor:
    """The finest detail of images (N, 3, H, W): the image less its Gaussian blur (sigma 1)."""
    return images - kornia.filters.gaussian_blur2d(images, (5, 5), (1.0, 1.0))


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                        features: torch.Tensor | None = None, feature_weight: float = 0.0,
                        detail_weight: float = 0.0) -> torch.Tensor:
    """Mean absolute error plus structural dissimilarity (DSSIM), per batch.

    With a learned mask channel, ``pred`` has 4 channels and the mask is trained against
    the face oval ``mask`` by binary cross-entropy. ``features`` (N, 1, H, W) in [0, 1]
    marks eyes, brows and lips: their absolute error counts ``1 + feature_weight`` times
    (the weights are normalised, so the loss keeps its scale). ``detail_weight`` adds the
    absolute error of the finest detail band, which a plain L1 lets a young model blur.
    """
    rgb = pred[:, :3]
    err = (rgb - target).abs()
    if features is not None and feature_weight > 0:
        w = 1 + feature_weight * features
        l1 = (err * w).mean() / w.mean()
    else:
        l1 = err.mean()
    loss = l1 + kornia.losses.ssim_loss(rgb, target, window_size=7)
    if detail_weight > 0:
        loss = loss + detail_weight * (detail_bands(rgb) - detail_bands(target)).abs().mean()
    if pred.shape[1] == 4 and mask is not None:
        loss = loss + F.binary_cross_entropy(pred[:, 3:].clamp(1e-4, 1 - 1e-4), mask)
    return loss
