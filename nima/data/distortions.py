"""Two-sided synthetic distortions of pristine photos, at graded levels, for a ranking loss on the scorer.

A scorer trained only on human opinion scores rewards over-processing. Here each pristine photo is
distorted in both directions of every editing axis (too dark / too bright, too flat / too punchy,
...) and in the usual degradations (noise, blur, JPEG, halos, plastic smoothing), at ``LEVELS``
graded strengths. Training then asks: pristine above each distortion, milder level above stronger
level of the same family.

One pure function per distortion. Images are sRGB-encoded floats in [0,1], (3,H,W) or (B,3,H,W)
(except `jpeg`, (3,H,W) only); a parameter is a float, or for the tone functions a (B,1,1,1)
tensor with (B,3,H,W) images. Pixel-sized parameters (blur sigma, filter radii) are in pixels of the
working image, whose long side is meant to be ~512 px. `distort` applies one family at one level.

The sRGB transfer, luma and the fixed-kernel filters are kornia's, imported where they are called so
that importing this module (``enhance eval`` does) does not load kornia until a photo is distorted.
"""

from __future__ import annotations

import difflib
import io
import math
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

LEVELS = 5  # 1 = mildest (but visible), LEVELS = strongest

_LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709 weights, linear RGB -> relative luminance


# --- colour and filters (kornia's) ---------------------------------------------------------


def srgb_to_linear(x: Tensor) -> Tensor:
    """Exact sRGB decode of (...,3,H,W) values clamped to [0,1] -> linear light in [0,1]."""
    from kornia.color import rgb_to_linear_rgb

    return rgb_to_linear_rgb(x.clamp(0.0, 1.0))


def linear_to_srgb(y: Tensor) -> Tensor:
    """Exact sRGB encode of (...,3,H,W) linear light clamped to [0,1] -> [0,1]; the gradient stays
    finite at black (kornia's power only sees values above the toe)."""
    from kornia.color import linear_rgb_to_rgb

    return linear_rgb_to_rgb(y.clamp(0.0, 1.0)).clamp(0.0, 1.0)


def luma(x: Tensor) -> Tensor:
    """(...,3,H,W) -> (...,1,H,W) weighted sum of the channels with Rec. 709 weights."""
    from kornia.color import rgb_to_grayscale

    return rgb_to_grayscale(x, rgb_weights=x.new_tensor(_LUMA))


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of (3,H,W) or (B,3,H,W), ``sigma`` in px, taps out to max(1, ceil(3 sigma)) px,
    edges replicated. Same shape out."""
    from kornia.filters import gaussian_blur2d

    size = 2 * max(1, math.ceil(3 * sigma)) + 1
    y = gaussian_blur2d(x if x.ndim == 4 else x[None], size, (sigma, sigma), border_type="replicate")
    return y if x.ndim == 4 else y[0]


# --- one function per distortion ----------------------------------------------------------


def exposure(x: Tensor, ev: float | Tensor) -> Tensor:
    """Scale linear light by 2**ev, then clip."""
    return linear_to_srgb(srgb_to_linear(x) * 2.0**ev)


def contrast(x: Tensor, gain: float | Tensor) -> Tensor:
    """Scale deviations from the image's mean grey by ``gain`` (<1 flattens, >1 clips)."""
    grey = luma(x).mean((-2, -1), keepdim=True)
    return (grey + gain * (x - grey)).clamp(0.0, 1.0)


def saturation(x: Tensor, s: float | Tensor) -> Tensor:
    """Scale deviations from per-pixel luma by ``s`` (0 = grey), then clip."""
    y = luma(x)
    return (y + s * (x - y)).clamp(0.0, 1.0)


def gamma(x: Tensor, g: float | Tensor) -> Tensor:
    """x ** g on encoded values (g > 1 darkens mid-tones); the gradient in g is finite at black."""
    return torch.where(x > 0, x.clamp(1e-12, 1.0) ** g, 0.0)


def s_curve(x: Tensor, a: float | Tensor) -> Tensor:
    """x - a sin(2 pi x) / (2 pi) on encoded values: black, mid-grey and white stay put and the curve
    is monotone for |a| < 1; a > 0 steepens the mid-tones (an S-curve), a < 0 flattens them."""
    return (x - a * torch.sin(2 * math.pi * x) / (2 * math.pi)).clamp(0.0, 1.0)


# Full-strength scale of each tone_edit axis: EV, log2 contrast gain, S-curve amount, log2 saturation,
# log2 gamma. Scaled so that each axis alone at full strength is a clearly visible edit of similar
# size (about 20 dB PSNR from the photo; saturation needs less pixel change for the same visible change).
TONE_SCALE = (0.85, 0.85, 0.9, 1.2, 0.45)


def tone_edit(x: Tensor, theta: Tensor) -> Tensor:
    """A joint global tone edit of the kind a tuner makes, differentiable in ``theta``.

    x (B,3,H,W) sRGB-encoded in [0,1]; theta (B,5): exposure (EV, in linear light), log2 contrast
    gain about the image's mean grey, S-curve amount (|a| < 1, `s_curve`), log2 saturation and
    log2 gamma, applied as exposure, gamma, S-curve, contrast, saturation. Zero is the identity;
    gradients stay finite at black and white. Returns (B,3,H,W) in [0,1].
    """
    ev, gain, s, sat, g = (theta[:, i].view(-1, 1, 1, 1) for i in range(5))
    x = s_curve(gamma(exposure(x, ev), torch.exp2(g)), s)
    return saturation(contrast(x, torch.exp2(gain)), torch.exp2(sat))


def tone_mix_strength(level: Tensor | int) -> Tensor | float:
    """The ``tone_mix`` family's strength at ``level`` (1..LEVELS): 0.3 to 1 of `TONE_SCALE`."""
    return 0.3 + 0.7 * (level - 1) / (LEVELS - 1)


def tone_mix(x: Tensor, t: float, seed: int) -> Tensor:
    """`tone_edit` of (3,H,W) along a direction drawn from ``seed`` (uniform on the unit sphere, per
    axis scaled by `TONE_SCALE`) at ``t`` in (0,1]. Each axis on its own may be mild; together they
    are the punchy or washed-out look that single-axis families do not cover."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(len(TONE_SCALE), generator=g, dtype=torch.float64)
    theta = (u / u.norm() * t * torch.tensor(TONE_SCALE, dtype=torch.float64)).float()
    return tone_edit(x[None], theta[None])[0]


def cast(x: Tensor, direction: tuple[float, float, float], t: float) -> Tensor:
    """Per-channel gains 1 + t*direction in linear light, normalised to keep luminance."""
    gains = torch.tensor([1.0 + t * d for d in direction], dtype=x.dtype)
    gains = gains / (gains * x.new_tensor(_LUMA)).sum()
    return linear_to_srgb(srgb_to_linear(x) * gains.view(3, 1, 1))


_SHADOW_KNEE = 0.05  # linear luminance where `crush_shadows` darkens by half its EV (sRGB ~0.25)


def crush_shadows(x: Tensor, ev: float) -> Tensor:
    """Darken the shadows: a gain of 2**(-ev * w) on linear light, w = 1 / (1 + Y / 0.05), near 1 in
    the deepest shadows and fading out above them (black stays black, white nearly unchanged)."""
    lin = srgb_to_linear(x)
    w = 1 / (1 + luma(lin) / _SHADOW_KNEE)
    return linear_to_srgb(lin * torch.exp2(-ev * w))


_AIRLIGHT = (0.86, 0.89, 0.95)  # bright, slightly blue grey, sRGB-encoded


def haze(x: Tensor, t: float) -> Tensor:
    """Blend encoded values toward a bright airlight by fraction ``t`` (veils the shadows)."""
    return (1 - t) * x + t * x.new_tensor(_AIRLIGHT).view(3, 1, 1)


def gaussian_noise(x: Tensor, sigma: float, seed: int) -> Tensor:
    """Add i.i.d. N(0, sigma^2) per pixel and channel, then clip."""
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0.0, 1.0)


def luma_noise(x: Tensor, sigma: float, seed: int) -> Tensor:
    """Grain: one N(0, sigma^2) value per pixel added to R, G and B alike (no colour), then clip."""
    g = torch.Generator().manual_seed(seed)
    grain = torch.randn((*x.shape[:-3], 1, *x.shape[-2:]), generator=g, dtype=x.dtype)
    return (x + sigma * grain).clamp(0.0, 1.0)


def realistic_noise(x: Tensor, a: float, chroma: float, seed: int) -> Tensor:
    """Sensor-like noise: Poisson-Gaussian in linear light plus low-frequency colour blotches.

    Linear-light variance is ``a * y + a / 50`` (shot noise plus a read-noise floor), so the
    encoded shadows come out noisiest. The colour noise is white noise blurred (sigma 2 px),
    with its channel mean removed, at standard deviation ``chroma`` per channel.
    """
    g = torch.Generator().manual_seed(seed)
    lin = srgb_to_linear(x)
    lin = lin + torch.sqrt(a * lin + a / 50) * torch.randn(x.shape, generator=g, dtype=x.dtype)
    blotch = gaussian_blur(torch.randn(x.shape, generator=g, dtype=x.dtype), 2.0)
    blotch = blotch - blotch.mean(-3, keepdim=True)
    # Blurred unit white noise has std 1/(2*sqrt(pi)*sigma); removing the mean of 3 channels
    # leaves sqrt(2/3) of it.
    blotch = blotch * (2 * math.sqrt(math.pi) * 2.0 * math.sqrt(1.5) * chroma)
    return (linear_to_srgb(lin) + blotch).clamp(0.0, 1.0)


def jpeg(x: Tensor, quality: int) -> Tensor:
    """Round-trip of (3,H,W) through PIL JPEG at ``quality`` (4:2:0 chroma subsampling)."""
    u8 = (x.clamp(0.0, 1.0) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert("RGB"))
    return torch.from_numpy(out.copy()).permute(2, 0, 1).to(x.dtype) / 255


def unsharp(x: Tensor, amount: float, sigma: float) -> Tensor:
    """Unsharp mask x + amount * (x - blur(x)); strong amounts leave halos, clipped."""
    return (x + amount * (x - gaussian_blur(x, sigma))).clamp(0.0, 1.0)


def guided_smooth(x: Tensor, r: int, eps: float) -> Tensor:
    """Guided filter (He et al.) of each channel with the image's luma as guide, edges replicated.

    Flattens texture whose local luma variance is below ~``eps`` while keeping luma edges:
    the waxy, plastic look of an over-strong denoiser. ``r`` is the window radius in px.
    """
    from kornia.filters import guided_blur

    batch = x if x.ndim == 4 else x[None]
    y = guided_blur(luma(batch), batch, 2 * r + 1, eps, border_type="replicate", separable=True)
    return (y if x.ndim == 4 else y[0]).clamp(0.0, 1.0)


# Regularisers (variances) of `denoise`'s guided filter on Y, Cb and Cr: local detail weaker than
# ~0.1 in luma or ~0.05 in chroma is treated as noise, stronger edges are kept.
_DENOISE_EPS = (0.1**2, 0.05**2, 0.05**2)


def denoise(x: Tensor, luma_amount: float, chroma_amount: float, r: int) -> Tensor:
    """Edge-preserving denoising: each YCbCr channel (kornia's full-range BT.601) blended towards
    its self-guided filter (He et al.) of radius ``r`` px, by ``luma_amount`` on Y and
    ``chroma_amount`` on Cb and Cr (0 keeps the image, 1 is the filtered channel), edges replicated.

    A good denoiser's result, not a distortion: it anchors the ranking groups that put "noise
    removed" above "noise kept" and "noise hidden by a tone change". x (3,H,W) or (B,3,H,W).
    """
    from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb
    from kornia.filters import guided_blur

    batch = x if x.ndim == 4 else x[None]
    ycc = rgb_to_ycbcr(batch)
    channels = ycc.reshape(-1, 1, *ycc.shape[-2:])
    eps = ycc.new_tensor(_DENOISE_EPS).repeat(batch.shape[0])
    smooth = guided_blur(channels, channels, 2 * r + 1, eps, border_type="replicate").reshape(ycc.shape)
    amount = ycc.new_tensor((luma_amount, chroma_amount, chroma_amount)).view(1, 3, 1, 1)
    y = ycbcr_to_rgb(ycc + amount * (smooth - ycc)).clamp(0.0, 1.0)
    return y if x.ndim == 4 else y[0]


# --- families and their levels ------------------------------------------------------------


def _lin(lo: float, hi: float, level: int) -> float:
    """Level 1 -> lo, LEVELS -> hi, evenly spaced."""
    return lo + (hi - lo) * (level - 1) / (LEVELS - 1)


def _geo(lo: float, hi: float, level: int) -> float:
    """Level 1 -> lo, LEVELS -> hi, evenly spaced in log."""
    return lo * (hi / lo) ** ((level - 1) / (LEVELS - 1))


# family -> (image, level, seed) -> distorted image. Units of the per-level values: EV, gain
# about mean grey, saturation factor, gamma, cast gain fraction, airlight fraction, noise sigma
# (of 255), shot-noise gain and chroma sigma, blur sigma (px), JPEG quality, unsharp amount and
# sigma (px), guided-filter radius (px) and eps (variance), grain sigma (of 255), tone_mix strength
# (fraction of `TONE_SCALE`), EV taken from the deepest shadows.
_OPS: dict[str, Callable[[Tensor, int, int], Tensor]] = {
    "exposure_under": lambda x, k, s: exposure(x, _lin(-0.5, -2.5, k)),
    "exposure_over": lambda x, k, s: exposure(x, _lin(0.4, 2.0, k)),
    "contrast_low": lambda x, k, s: contrast(x, 1 - _lin(0.15, 0.7, k)),
    "contrast_high": lambda x, k, s: contrast(x, _geo(1.3, 3.0, k)),
    "saturation_low": lambda x, k, s: saturation(x, _lin(0.8, 0.1, k)),
    "saturation_high": lambda x, k, s: saturation(x, _lin(1.3, 2.5, k)),
    "gamma_dark": lambda x, k, s: gamma(x, _geo(1.25, 2.5, k)),
    "gamma_bright": lambda x, k, s: gamma(x, 1 / _geo(1.25, 2.5, k)),
    "cast_warm": lambda x, k, s: cast(x, (1.0, 0.0, -1.0), _lin(0.05, 0.4, k)),
    "cast_cool": lambda x, k, s: cast(x, (-1.0, 0.0, 1.0), _lin(0.05, 0.4, k)),
    "cast_green": lambda x, k, s: cast(x, (-0.5, 1.0, -0.5), _lin(0.05, 0.4, k)),
    "cast_magenta": lambda x, k, s: cast(x, (0.5, -1.0, 0.5), _lin(0.05, 0.4, k)),
    "haze": lambda x, k, s: haze(x, _lin(0.1, 0.6, k)),
    "noise_gaussian": lambda x, k, s: gaussian_noise(x, _geo(3.0, 25.0, k) / 255, s),
    "noise_realistic": lambda x, k, s: realistic_noise(x, _geo(5e-4, 2e-2, k), _geo(1.5, 10.0, k) / 255, s),
    "blur": lambda x, k, s: gaussian_blur(x, _geo(0.6, 3.0, k)).clamp(0.0, 1.0),
    "jpeg": lambda x, k, s: jpeg(x, round(_geo(40.0, 5.0, k))),
    "oversharpen": lambda x, k, s: unsharp(x, _lin(1.0, 6.0, k), _lin(1.5, 2.0, k)),
    "oversmooth": lambda x, k, s: guided_smooth(x, round(_geo(2.0, 8.0, k)), _geo(0.03, 0.12, k) ** 2),
    "noise_luma": lambda x, k, s: luma_noise(x, _geo(4.0, 25.0, k) / 255, s),
    "tone_mix": lambda x, k, s: tone_mix(x, float(tone_mix_strength(k)), s),
    "shadows_crushed": lambda x, k, s: crush_shadows(x, _lin(0.4, 2.0, k)),
}
FAMILIES: tuple[str, ...] = tuple(_OPS)  # ordered family names; index = family id
# Compound groups start from a noisy photo (one of these families at levels 1..COMPOUND_LEVELS) and
# rank it above further distortions of it, except those that smooth noise away and may improve it.
COMPOUND_BASES: tuple[str, ...] = ("noise_gaussian", "noise_realistic", "noise_luma")
COMPOUND_LEVELS = 3
SMOOTHING: tuple[str, ...] = ("blur", "oversmooth")
# Denoised groups start from a noisy photo (a family of COMPOUND_BASES at one of DENOISED_LEVELS)
# and rank its `denoise`d copy above the noisy photo and above tone and colour edits
# (DENOISED_EDITS, levels 1..DENOISED_EDIT_LEVELS) of either.
DENOISED_LEVELS: tuple[int, ...] = (3, 4)
DENOISED_EDITS: tuple[str, ...] = ("exposure_under", "exposure_over", "contrast_high", "contrast_low", "gamma_dark",
                                   "gamma_bright", "shadows_crushed", "tone_mix", "saturation_high", "saturation_low")
DENOISED_EDIT_LEVELS = 3
DENOISE_AMOUNTS = (0.6, 0.8)  # `denoise`'s luma and chroma amounts for the anchor
DENOISE_RADIUS = 0.005  # its radius, as a fraction of the photo's short side


def distort(image: Tensor, family: str, level: int, seed: int = 0) -> Tensor:
    """Apply one family at one level (1 = mildest but visible, ``LEVELS`` = strongest).

    image: (3,H,W) float sRGB-encoded in [0,1]. Returns (3,H,W) float32 in [0,1].
    Deterministic in (image, family, level, seed); ``seed`` only matters for noise.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3,H,W) image, got {tuple(image.shape)}")
    if family not in _OPS:
        close = difflib.get_close_matches(family, FAMILIES, n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"unknown family {family!r}; {hint}expected one of {FAMILIES}")
    if not 1 <= level <= LEVELS:
        raise ValueError(f"level must be in 1..{LEVELS}, got {level}")
    return _OPS[family](image.float().clamp(0.0, 1.0), level, seed)
