"""The least-squares fit of one point set onto another: similarity or rigid, any dimension.

Alignment fits 2D landmarks to the canonical face, head pose fits the face's rigid points
in 3D (rotation only), and the template is built by fitting faces onto each other in 3D:
all three are this one fit.
"""

from __future__ import annotations

import torch

from swapgraph.runtime.ports import check_shape


def fit_similarity(src: torch.Tensor, dst: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """Least-squares transform (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    src: (N, K, D) points; dst: (K, D) or (N, K, D) points. Returns (N, D, D + 1) affines
    M = [s R | t] with dst ≈ s R x + t, R a proper rotation (det +1, never a reflection).
    ``scale=False`` fixes s = 1: the rigid fit (Kabsch). Umeyama (1991), batched, in the
    dtype of ``src``.
    """
    check_shape(src, ["N", "K", "D"], "src")
    dst = dst.to(src).expand_as(src)
    k = src.shape[1]
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s, d = src - mu_s, dst - mu_d
    cov = d.transpose(1, 2) @ s / k  # (N, D, D)
    u, sig, vt = torch.linalg.svd(cov)
    # flip the least significant axis where the best orthogonal fit would be a reflection
    fix = torch.ones_like(sig)
    fix[:, -1] = torch.sign(torch.linalg.det(u @ vt))
    lin = u @ torch.diag_embed(fix) @ vt
    if scale:
        var = s.pow(2).sum((1, 2)) / k
        lin = ((sig * fix).sum(1) / var)[:, None, None] * lin
    t = mu_d.squeeze(1) - (lin @ mu_s.transpose(1, 2)).squeeze(2)
    return torch.cat([lin, t[:, :, None]], dim=2)
