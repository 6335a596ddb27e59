"""The least-squares point fit that alignment, head pose and the face template share."""

from __future__ import annotations

import math

import pytest
import torch

from swapgraph.nodes.geometry import fit_similarity
from swapgraph.runtime.errors import ShapeError


def rotation_3d(yaw: float, pitch: float, roll: float) -> torch.Tensor:
    """Rz(roll) @ Ry(yaw) @ Rx(pitch), angles in degrees, float64."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    rx = torch.tensor([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = torch.tensor([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return (rz @ ry @ rx).double()


def apply(m: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Affines (N, D, D + 1) applied to points (N, K, D)."""
    return points @ m[:, :, :-1].transpose(1, 2) + m[:, None, :, -1]


class TestFitSimilarity:
    def test_recovers_a_known_similarity_in_2d_batched(self):
        gen = torch.Generator().manual_seed(0)
        src = torch.rand(3, 20, 2, generator=gen, dtype=torch.float64) * 100
        m = []
        for angle, s, t in ((10, 1.5, (7, -3)), (-80, 0.3, (0, 12)), (170, 2.0, (-40, 5))):
            a = math.radians(angle)
            m.append([[s * math.cos(a), -s * math.sin(a), t[0]], [s * math.sin(a), s * math.cos(a), t[1]]])
        m = torch.tensor(m, dtype=torch.float64)
        got = fit_similarity(src, apply(m, src))
        assert got.shape == (3, 2, 3) and got.dtype == torch.float64
        assert torch.allclose(got, m, atol=1e-9)

    def test_recovers_a_known_similarity_in_3d(self):
        gen = torch.Generator().manual_seed(1)
        src = torch.randn(1, 26, 3, generator=gen, dtype=torch.float64)
        m = torch.cat([0.7 * rotation_3d(35, -20, 10), torch.tensor([[3.0], [-1.0], [2.5]], dtype=torch.float64)], 1)
        got = fit_similarity(src, apply(m[None], src)[0])  # dst (K, D): one target for the batch
        assert got.shape == (1, 3, 4)
        assert torch.allclose(got[0], m, atol=1e-9)

    def test_rigid_keeps_unit_scale_and_never_reflects(self):
        gen = torch.Generator().manual_seed(2)
        src = torch.randn(2, 30, 3, generator=gen, dtype=torch.float64)
        r = rotation_3d(-60, 15, -5)
        t = torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)
        dst = torch.stack([2.0 * src[0] @ r.T + t,  # scaled: rigid must not take the scale
                           src[1] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)])  # a mirror image
        got = fit_similarity(src, dst, scale=False)
        lin = got[:, :, :3]
        assert torch.allclose(lin[0], r, atol=1e-9)
        assert torch.allclose(got[0, :, 3], dst[0].mean(0) - src[0].mean(0) @ r.T, atol=1e-9)
        assert torch.allclose(lin @ lin.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(2, 3, 3), atol=1e-9)
        assert torch.allclose(torch.linalg.det(lin), torch.ones(2, dtype=torch.float64), atol=1e-9)

    def test_scale_is_the_least_squares_one_for_noisy_points(self):
        gen = torch.Generator().manual_seed(3)
        src = torch.randn(4, 40, 2, generator=gen, dtype=torch.float64)
        dst = 1.8 * src + 0.05 * torch.randn(4, 40, 2, generator=gen, dtype=torch.float64)
        m = fit_similarity(src, dst)
        residual = (apply(m, src) - dst).pow(2).sum()
        for eps in (-1e-3, 1e-3):  # nudging the scale either way fits worse
            nudged = m.clone()
            nudged[:, :, :2] *= 1 + eps
            nudged[:, :, 2] = dst.mean(1) - (nudged[:, :, :2] @ src.mean(1)[:, :, None]).squeeze(2)
            assert (apply(nudged, src) - dst).pow(2).sum() > residual

    def test_bad_shape_is_refused(self):
        with pytest.raises(ShapeError):
            fit_similarity(torch.zeros(20, 2), torch.zeros(20, 2))
