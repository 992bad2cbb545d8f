"""Spatial filters with per-sample radii and O(HW) memory: self-guided filter and Gaussian blur.

Radii and sigmas are in pixels, one per batch element (B,), and may be fractional; results are
differentiable w.r.t. the image and the radius. Each filter reads only pixels within its `*_support`
of the output pixel, so a tile rendered with that much overlap matches the whole-image result.
kornia's box, Gaussian and guided filters take one integer kernel size for the whole batch, so the
tuner's fractional, per-photo radii (and their gradients) stay here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pixels(fraction: Tensor, ref_size: int) -> Tensor:
    """A spatial parameter as a fraction of the short side (B,) -> pixels (B,)."""
    return fraction * ref_size


def box_support(r: Tensor) -> int:
    """Pixels a box of fractional radius r (B,) reaches: ceil(max r)."""
    return int(torch.ceil(r.detach()).max())


def gaussian_support(sigma: Tensor) -> int:
    """Pixels `gaussian_blur` reaches for sigma (B,): ceil(3 max sigma)."""
    return int(torch.ceil(3 * sigma.detach()).max())


def _box_sum(x: Tensor, r: Tensor) -> Tensor:
    """Windowed sum along the last dim of x (B,...,W): weight 1 within floor(r[b]) pixels, frac(r[b])
    on the next one, nothing outside the image. Cumulative sums in float64 keep tiles exact."""
    n = r.detach().floor()
    frac = r - n
    pad = int(n.max()) + 1
    acc = torch.float32 if x.device.type == "mps" else torch.float64
    xp = F.pad(x, (pad, pad))
    c = F.pad(xp.to(acc).cumsum(-1), (1, 0))
    w = x.shape[-1]
    out = []
    for b in range(x.shape[0]):
        k = int(n[b])
        inner = c[b, ..., pad + k + 1 : pad + k + 1 + w] - c[b, ..., pad - k : pad - k + w]
        edge = xp[b, ..., pad + k + 1 : pad + k + 1 + w] + xp[b, ..., pad - k - 1 : pad - k - 1 + w]
        out.append(inner.to(x.dtype) + frac[b] * edge)
    return torch.stack(out)


def _box_sum_2d(x: Tensor, r: Tensor) -> Tensor:
    return _box_sum(_box_sum(x, r).transpose(-1, -2), r).transpose(-1, -2)


def guided_filter(x: Tensor, r: Tensor, eps: Tensor | float) -> Tensor:
    """Self-guided filter (He et al., 2013), each channel guided by itself.

    x (B,C,H,W); r (B,) box radius in pixels; eps: variance regulariser, broadcastable to
    (B,C,1,1). Regions whose local variance is well below eps are smoothed, edges well above it kept.
    Reads pixels up to 2 * box_support(r) away. (kornia's guided_blur: one integer window for the batch.)
    """
    r = r.reshape(-1).expand(x.shape[0])
    count = _box_sum_2d(x.new_ones(x.shape[0], 1, *x.shape[-2:]), r)

    def mean(t: Tensor) -> Tensor:
        return _box_sum_2d(t, r) / count

    mu = mean(x)
    var = (mean(x * x) - mu * mu).clamp_min(0)
    a = var / (var + eps)
    return mean(a) * x + mean(mu - a * mu)


def gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur: x (B,C,H,W), sigma (B,) pixels (>= ~0.1) -> (B,C,H,W).

    Each sample's kernel is truncated at ceil(3 sigma[b]); edges are replicated. (kornia's
    gaussian_blur2d takes a sigma per sample but one kernel size, and pads with ``F.pad``, whose CUDA
    backward is not deterministic: see `_replicate_pad`.)
    """
    b, c, h, w = x.shape
    sigma = sigma.reshape(-1).expand(b)
    k = gaussian_support(sigma)
    i = torch.arange(-k, k + 1, device=x.device, dtype=x.dtype)
    reach = torch.ceil(3 * sigma.detach())[:, None]
    taps = torch.exp(-0.5 * (i / sigma[:, None]) ** 2) * (i.abs() <= reach)
    taps = (taps / taps.sum(1, keepdim=True)).repeat_interleave(c, 0)
    y = replicate_pad(x.reshape(1, b * c, h, w), k)
    y = F.conv2d(y, taps[:, None, None, :], groups=b * c)
    y = F.conv2d(y, taps[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def replicate_pad(x: Tensor, k: int) -> Tensor:
    """Edge-replicating pad of k pixels on all four sides of (..., H, W). Same values as
    ``F.pad(mode="replicate")``, whose CUDA backward accumulates with atomic adds (run-to-run
    differences); here the backward is slicing and sums."""
    if k == 0:
        return x
    x = torch.cat([x[..., :1].expand(*x.shape[:-1], k), x, x[..., -1:].expand(*x.shape[:-1], k)], -1)
    return torch.cat([x[..., :1, :].expand(*x.shape[:-2], k, x.shape[-1]), x,
                      x[..., -1:, :].expand(*x.shape[:-2], k, x.shape[-1])], -2)

