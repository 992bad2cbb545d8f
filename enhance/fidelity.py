"""Structural fidelity of a tone-mapped rendering to its scene, and the Tone Mapped image Quality Index.

After H. Yeganeh and Z. Wang, "Objective quality assessment of tone-mapped images", IEEE
Transactions on Image Processing 22(2), 2013 (TMQI). The structural fidelity compares local
structure of the rendering's luma with the scene's luminance, SSIM-like, at five scales: in
11x11 Gaussian windows the local standard deviations of both are passed through a visibility
function (a Gaussian cumulative whose threshold comes from a contrast sensitivity model at the
scale's spatial frequency), so that scene detail too faint to see is not demanded and detail
the rendering crushes below visibility is penalised; a cross-correlation term compares the
structure itself. The per-scale means are combined by a weighted geometric mean.

:func:`structural_fidelity` is differentiable (the tuner adds it to its objective for HDR
input, :func:`hdr_objective`); :func:`tmqi` reports S, the statistical naturalness N and
Q = a S**alpha + (1 - a) N**beta with the paper's constants, the scene's luminance taken linear
and stretched to [0, 2**32 - 1] as the paper does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from enhance.ops.color import luminance

SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # finest to coarsest (MS-SSIM's)
C1, C2 = 0.01, 10.0  # stabilisers of the visibility and the cross-correlation terms
WINDOW, WINDOW_SIGMA = 11, 1.5  # Gaussian window of the local statistics, pixels
A, ALPHA, BETA = 0.8012, 0.3046, 0.7088  # TMQI's combination of S and N
LOG_LEVELS_PER_EV = 16.0  # the scene reference in the "log" domain: display levels (of 255) per scene EV
LOG_FLOOR = 2.0**-20  # added to scene luminance before log2: finite at black
VAR_EPS = 1e-6  # added to local variances before the square root: a finite gradient in flat windows
HDR_WEIGHT = 20.0  # the tuner's default fidelity weight for HDR input (a recipe's `fidelity`; benchmarks/RESULTS.md)

# Statistical naturalness: a beta density of the mean local contrast and a Gaussian of the mean luma,
# both fitted by the paper to natural, well-exposed 8-bit photos.
_CONTRAST_BETA = (4.4, 10.1)
_CONTRAST_SCALE = 64.29
_LUMA_MEAN, _LUMA_STD = 115.94, 27.99
_BLOCK = 11


def display_luma(image: Tensor) -> Tensor:
    """(B,3,H,W) display image in [0,1] -> (B,1,H,W) luma in [0,255] (Rec. 709 weights on the
    encoded values, as TMQI takes the luminance of an 8-bit rendering)."""
    return 255 * luminance(image)


def scene_reference(radiance: Tensor, domain: str = "log") -> Tensor:
    """(B,3,H,W) linear scene radiance >= 0 -> (B,1,H,W) the scene's luminance as the structure reference.

    ``"log"``: ``LOG_LEVELS_PER_EV`` levels per EV of log2 luminance (shift-invariant, so the
    radiance's exposure does not matter); ``"linear"``: luminance stretched to [0, 2**32 - 1] per
    image, as the paper does (float64).
    """
    y = luminance(radiance.clamp_min(0))
    if domain == "log":
        return LOG_LEVELS_PER_EV * torch.log2(y + LOG_FLOOR)
    if domain == "linear":
        y = y.double()
        lo = y.amin(dim=(1, 2, 3), keepdim=True)
        hi = y.amax(dim=(1, 2, 3), keepdim=True)
        return (2.0**32 - 1) * (y - lo) / (hi - lo).clamp_min(1e-30)
    raise ValueError(f"unknown scene domain {domain!r}: use 'log' or 'linear'")


def _window(dtype: torch.dtype, device: torch.device) -> Tensor:
    x = torch.arange(WINDOW, dtype=dtype, device=device) - (WINDOW - 1) / 2
    g = torch.exp(-x**2 / (2 * WINDOW_SIGMA**2))
    return g / g.sum()


def _blur(x: Tensor, g: Tensor) -> Tensor:
    """Separable Gaussian filter of (B,C,H,W), 'valid' region only: (B,C,H-10,W-10). Written as
    weighted sums of shifted slices, which run far faster than a one-channel conv2d on a CPU."""
    h, w = x.shape[-2] - WINDOW + 1, x.shape[-1] - WINDOW + 1
    x = sum(g[i] * x[..., :, i: i + w] for i in range(WINDOW))  # type: ignore[assignment]
    return sum(g[i] * x[..., i: i + h, :] for i in range(WINDOW))  # type: ignore[return-value]


def visibility_threshold(frequency: float) -> float:
    """The local standard deviation (display levels) at which structure of spatial ``frequency``
    (cycles per degree) is seen half the time: 128 / (1.4 CSF), CSF Mannos-Sakrison's scaled by 260."""
    csf = 100.0 * 2.6 * (0.0192 + 0.114 * frequency) * math.exp(-((0.114 * frequency) ** 1.1))
    return 128 / (1.4 * csf)


def local_fidelity(scene: Tensor, rendered: Tensor, frequency: float) -> Tensor:
    """(B,1,H,W) scene reference and rendered luma, H and W >= 11 -> (B,) the mean local structural
    fidelity at one scale: visibility-mapped standard deviations compared SSIM-like, times the
    windows' cross-correlation."""
    g = _window(scene.dtype, scene.device)
    rendered = rendered.to(scene.dtype)
    mu_s, mu_r, ss, rr, sr = _blur(torch.cat([scene, rendered, scene * scene, rendered * rendered, scene * rendered], 1),
                                   g).split(1, dim=1)
    var_s = (ss - mu_s**2).clamp_min(0)
    var_r = (rr - mu_r**2).clamp_min(0)
    cov = sr - mu_s * mu_r
    sd_s, sd_r = torch.sqrt(var_s + VAR_EPS), torch.sqrt(var_r + VAR_EPS)
    u = visibility_threshold(frequency)
    p_s = torch.special.ndtr((sd_s - u) / (u / 3))
    p_r = torch.special.ndtr((sd_r - u) / (u / 3))
    seen = (2 * p_s * p_r + C1) / (p_s**2 + p_r**2 + C1)
    correlation = (cov + C2) / (sd_s * sd_r + C2)
    return (seen * correlation).mean(dim=(1, 2, 3))


def fidelity_per_scale(scene: Tensor, rendered: Tensor) -> Tensor:
    """(B,1,H,W) scene reference and rendered luma -> (B,L) the local fidelity at each of L =
    len(SCALE_WEIGHTS) scales, finest first; between scales both are 2x2-averaged and halved.
    Needs min(H, W) >= 11 * 2**(L-1) (176 px)."""
    need = WINDOW * 2 ** (len(SCALE_WEIGHTS) - 1)
    if min(scene.shape[-2:]) < need:
        raise ValueError(f"structural fidelity needs images of at least {need} px a side, got {tuple(scene.shape[-2:])}")
    out = []
    frequency = 32.0
    for level in range(len(SCALE_WEIGHTS)):
        frequency /= 2
        if level:
            scene, rendered = F.avg_pool2d(scene, 2), F.avg_pool2d(rendered, 2)
        out.append(local_fidelity(scene, rendered, frequency))
    return torch.stack(out, dim=1)


def structural_fidelity(rendered: Tensor, radiance: Tensor, domain: str = "log") -> Tensor:
    """TMQI's structural fidelity S of a rendering to its scene; differentiable in ``rendered``.

    rendered (B,3,H,W) display image in [0,1] (sRGB-encoded); radiance (B,3,H,W) linear scene
    radiance >= 0, the same view; H and W >= 176. ``domain``: the scene reference
    (:func:`scene_reference`). Returns (B,) in about [0,1] (1: the rendering keeps the scene's
    visible structure; lower as detail is crushed or distorted): the weighted geometric mean over
    scales, each scale's mean floored at 1e-6 first.
    """
    per_scale = fidelity_per_scale(scene_reference(radiance, domain), display_luma(rendered))
    weights = torch.tensor(SCALE_WEIGHTS, dtype=per_scale.dtype, device=per_scale.device)
    return torch.exp((weights * torch.log(per_scale.clamp_min(1e-6))).sum(dim=1)).to(rendered.dtype)


def hdr_objective(rendered: Tensor, radiance: Tensor, weight: float) -> Tensor:
    """The tuner's fidelity term for HDR input: ``weight`` times the mean structural fidelity
    (log domain) of rendered views (V,3,H,W) to the same views of the scene radiance (V,3,H,W); a 0-d tensor."""
    return weight * structural_fidelity(rendered, radiance, "log").mean()


def statistical_naturalness(rendered: Tensor) -> Tensor:
    """TMQI's statistical naturalness N of (B,3,H,W) display images in [0,1] -> (B,) in [0,1]:
    the product of a Gaussian density of the mean luma (0..255) and a beta density of the mean
    standard deviation in 11x11 blocks (/64.29), each divided by its peak. Not differentiable in
    a useful way (a report, not an objective)."""
    luma = display_luma(rendered.double())
    mean = luma.mean(dim=(1, 2, 3))
    blocks = F.unfold(luma, _BLOCK, stride=_BLOCK)  # (B, 121, blocks): whole blocks only
    contrast = blocks.std(dim=1).mean(dim=1)
    a, b = _CONTRAST_BETA
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)

    def beta_pdf(x: Tensor) -> Tensor:
        x = x.clamp(1e-12, 1 - 1e-12)
        return torch.exp(log_norm + (a - 1) * torch.log(x) + (b - 1) * torch.log1p(-x))

    mode = torch.tensor((a - 1) / (a + b - 2), dtype=torch.float64)
    p_contrast = beta_pdf(contrast / _CONTRAST_SCALE) / beta_pdf(mode)
    p_luma = torch.exp(-0.5 * ((mean - _LUMA_MEAN) / _LUMA_STD) ** 2)
    return (p_contrast * p_luma).to(rendered.dtype)


class TMQI(NamedTuple):
    """TMQI's figures, each (B,): structural fidelity, statistical naturalness, combined quality."""

    s: Tensor
    n: Tensor
    q: Tensor


def tmqi(rendered: Tensor, radiance: Tensor) -> TMQI:
    """The Tone Mapped image Quality Index of (B,3,H,W) renderings in [0,1] of (B,3,H,W) scenes
    (linear radiance >= 0), H and W >= 176: S (the paper's linear scene reference), N and
    Q = 0.8012 S**0.3046 + 0.1988 N**0.7088."""
    with torch.no_grad():
        s = structural_fidelity(rendered, radiance, "linear")
        n = statistical_naturalness(rendered)
        return TMQI(s, n, A * s**ALPHA + (1 - A) * n**BETA)
