"""The scorer's input resize: antialiased bilinear, differentiable, and repeatable on CUDA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _weights(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) float64 rows of the antialiased bilinear (triangle) filter that
    ``F.interpolate(mode="bilinear", antialias=True, align_corners=False)`` applies along one axis:
    support widened by the scale when shrinking, each row summing to 1."""
    scale = n_in / n_out
    support, inv = (scale, 1 / scale) if scale > 1 else (1.0, 1.0)
    center = scale * (torch.arange(n_out, dtype=torch.float64) + 0.5)
    j = torch.arange(n_in, dtype=torch.float64)
    lo = (center - support + 0.5).floor().clamp_min(0)
    hi = (center + support + 0.5).floor().clamp_max(n_in)
    w = (1 - ((j[None] - center[:, None] + 0.5) * inv).abs()).clamp_min(0)
    w = w * ((j[None] >= lo[:, None]) & (j[None] < hi[:, None]))
    return w / w.sum(1, keepdim=True)


def resize_separable(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Antialiased bilinear resize of (B,C,H,W) to (B,C,*size) as two matrix products.

    Agrees with ``F.interpolate(..., mode="bilinear", antialias=True)`` to about 1e-5 (float32);
    its backward pass is two matrix products as well, which CUDA computes the same way on every
    run, where interpolate's antialiased backward uses atomic adds and does not. Memory: the two
    weight matrices, (size[0], H) and (size[1], W).
    """
    wh = _weights(x.shape[-2], size[0]).to(x)
    ww = _weights(x.shape[-1], size[1]).to(x)
    return wh @ x @ ww.T


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(B,C,H,W) -> (B,C,*size), antialiased bilinear, as the scorer resizes its input.

    On CUDA the matrix-product form (:func:`resize_separable`), whose backward repeats exactly from
    run to run; elsewhere ``F.interpolate`` (the same weights, faster on a CPU, deterministic there).
    """
    if x.is_cuda:
        return resize_separable(x, size)
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
