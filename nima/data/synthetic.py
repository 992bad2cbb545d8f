"""Two-sided synthetic distortions of pristine photos, for a ranking loss on the scorer.

A scorer trained only on human opinion scores rewards over-processing. Here each pristine
photo is distorted in both directions of every editing axis (too dark / too bright, too flat /
too punchy, ...) and in the usual degradations (noise, blur, JPEG, halos, plastic smoothing),
at ``LEVELS`` graded strengths. Training then asks: pristine above each distortion, milder
level above stronger level of the same family.

Images are (3,H,W) float32 sRGB-encoded in [0,1]. Pixel-sized parameters (blur sigma, filter
radii) are in pixels of the working image, whose long side is meant to be ~512 px.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

LEVELS = 5  # 1 = mildest (but visible), LEVELS = strongest

_LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709 weights, linear RGB -> relative luminance


# --- colour helpers -----------------------------------------------------------------------


def srgb_to_linear(x: Tensor) -> Tensor:
    """Exact sRGB decode, [0,1] -> linear [0,1]."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(y: Tensor) -> Tensor:
    """Exact sRGB encode of linear light, clipped to [0,1]."""
    y = y.clamp(0.0, 1.0)
    # the power only sees values above the toe, so its gradient stays finite at black
    return torch.where(y <= 0.0031308, 12.92 * y, 1.055 * y.clamp_min(0.0031308) ** (1 / 2.4) - 0.055).clamp(0.0, 1.0)


def _luma(x: Tensor) -> Tensor:
    """(...,3,H,W) -> (...,1,H,W) weighted sum of channels with Rec. 709 weights."""
    w = x.new_tensor(_LUMA).view(3, 1, 1)
    return (x * w).sum(-3, keepdim=True)


# --- filters ------------------------------------------------------------------------------


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (C,H,W), sigma in px, edges replicated."""
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[0]
    y = F.pad(x[None], (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y[0]


def _box(x: Tensor, r: int) -> Tensor:
    """Mean over a (2r+1)^2 window of (C,H,W), edges replicated (separable)."""
    y = F.pad(x[None], (r, r, r, r), mode="replicate")
    y = F.avg_pool2d(y, (1, 2 * r + 1), stride=1)
    return F.avg_pool2d(y, (2 * r + 1, 1), stride=1)[0]


# --- one function per distortion ----------------------------------------------------------


def _exposure(x: Tensor, ev: float | Tensor) -> Tensor:
    """Scale linear light by 2**ev, then clip. The helpers here take (3,H,W), or (B,3,H,W) with
    (B,1,1,1) tensor parameters."""
    return linear_to_srgb(srgb_to_linear(x) * 2.0**ev)


def _contrast(x: Tensor, gain: float | Tensor) -> Tensor:
    """Scale deviations from the image's mean grey by ``gain`` (<1 flattens, >1 clips)."""
    grey = _luma(x).mean((-2, -1), keepdim=True)
    return (grey + gain * (x - grey)).clamp(0.0, 1.0)


def _saturation(x: Tensor, s: float | Tensor) -> Tensor:
    """Scale deviations from per-pixel luma by ``s`` (0 = grey), then clip."""
    y = _luma(x)
    return (y + s * (x - y)).clamp(0.0, 1.0)


def _gamma(x: Tensor, g: float | Tensor) -> Tensor:
    """x ** g on encoded values (g > 1 darkens mid-tones); the gradient in g is finite at black."""
    return torch.where(x > 0, x.clamp(1e-12, 1.0) ** g, 0.0)


def _s_curve(x: Tensor, a: float | Tensor) -> Tensor:
    """x - a sin(2 pi x) / (2 pi) on encoded values: black, mid-grey and white stay put and the curve
    is monotone for |a| < 1; a > 0 steepens the mid-tones (an S-curve), a < 0 flattens them."""
    return (x - a * torch.sin(2 * math.pi * x) / (2 * math.pi)).clamp(0.0, 1.0)


# Full-strength scale of each tone_edit axis: EV, log2 contrast gain, S-curve amount, log2 saturation,
# log2 gamma. Each axis alone at this size moves a Kodak photo 19-24 dB PSNR from itself (saturation
# ~27 dB, with less pixel change for the same visible change).
TONE_SCALE = (0.85, 0.85, 0.9, 1.2, 0.45)


def tone_edit(x: Tensor, theta: Tensor) -> Tensor:
    """A joint global tone edit of the kind a tuner makes, differentiable in ``theta``.

    x (B,3,H,W) sRGB-encoded in [0,1]; theta (B,5): exposure (EV, in linear light), log2 contrast
    gain about the image's mean grey, S-curve amount (|a| < 1, `_s_curve`), log2 saturation and
    log2 gamma, applied as exposure, gamma, S-curve, contrast, saturation. Zero is the identity;
    gradients stay finite at black and white. Returns (B,3,H,W) in [0,1].
    """
    ev, contrast, s, sat, gamma = (theta[:, i].view(-1, 1, 1, 1) for i in range(5))
    x = _s_curve(_gamma(_exposure(x, ev), torch.exp2(gamma)), s)
    return _saturation(_contrast(x, torch.exp2(contrast)), torch.exp2(sat))


def tone_mix_strength(level: Tensor | int) -> Tensor | float:
    """The ``tone_mix`` family's strength at ``level`` (1..LEVELS): 0.3 to 1 of `TONE_SCALE`."""
    return 0.3 + 0.7 * (level - 1) / (LEVELS - 1)


def _tone_mix(x: Tensor, t: float, seed: int) -> Tensor:
    """`tone_edit` along a direction drawn from ``seed`` (uniform on the unit sphere, per axis scaled
    by `TONE_SCALE`) at ``t`` in (0,1]. Each axis on its own may be mild; together they are the
    punchy or washed-out look that single-axis families do not cover."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(len(TONE_SCALE), generator=g, dtype=torch.float64)
    theta = (u / u.norm() * t * torch.tensor(TONE_SCALE, dtype=torch.float64)).float()
    return tone_edit(x[None], theta[None])[0]


def _cast(x: Tensor, direction: tuple[float, float, float], t: float) -> Tensor:
    """Per-channel gains 1 + t*direction in linear light, normalised to keep luminance."""
    gains = torch.tensor([1.0 + t * d for d in direction], dtype=x.dtype)
    gains = gains / (gains * x.new_tensor(_LUMA)).sum()
    return linear_to_srgb(srgb_to_linear(x) * gains.view(3, 1, 1))


_SHADOW_KNEE = 0.05  # linear luminance where `_crush_shadows` darkens by half its EV (sRGB ~0.25)


def _crush_shadows(x: Tensor, ev: float) -> Tensor:
    """Darken the shadows: a gain of 2**(-ev * w) on linear light, w = 1 / (1 + Y / 0.05), near 1 in
    the deepest shadows and fading out above them (black stays black, white nearly unchanged)."""
    lin = srgb_to_linear(x)
    w = 1 / (1 + _luma(lin) / _SHADOW_KNEE)
    return linear_to_srgb(lin * torch.exp2(-ev * w))


_AIRLIGHT = (0.86, 0.89, 0.95)  # bright, slightly blue grey, sRGB-encoded


def _haze(x: Tensor, t: float) -> Tensor:
    """Blend encoded values toward a bright airlight by fraction ``t`` (veils the shadows)."""
    return (1 - t) * x + t * x.new_tensor(_AIRLIGHT).view(3, 1, 1)


def _gaussian_noise(x: Tensor, sigma: float, seed: int) -> Tensor:
    """Add i.i.d. N(0, sigma^2) per pixel and channel, then clip."""
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0.0, 1.0)


def _luma_noise(x: Tensor, sigma: float, seed: int) -> Tensor:
    """Grain: one N(0, sigma^2) value per pixel added to R, G and B alike (no colour), then clip."""
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn((1, *x.shape[1:]), generator=g, dtype=x.dtype)).clamp(0.0, 1.0)


def _realistic_noise(x: Tensor, a: float, chroma: float, seed: int) -> Tensor:
    """Sensor-like noise: Poisson-Gaussian in linear light plus low-frequency colour blotches.

    Linear-light variance is ``a * y + a / 50`` (shot noise plus a read-noise floor), so the
    encoded shadows come out noisiest. The colour noise is white noise blurred (sigma 2 px),
    with its channel mean removed, at standard deviation ``chroma`` per channel.
    """
    g = torch.Generator().manual_seed(seed)
    lin = srgb_to_linear(x)
    lin = lin + torch.sqrt(a * lin + a / 50) * torch.randn(x.shape, generator=g, dtype=x.dtype)
    blotch = _gaussian_blur(torch.randn(x.shape, generator=g, dtype=x.dtype), 2.0)
    blotch = blotch - blotch.mean(0, keepdim=True)
    # Blurred unit white noise has std 1/(2*sqrt(pi)*sigma); removing the mean of 3 channels
    # leaves sqrt(2/3) of it.
    blotch = blotch * (2 * math.sqrt(math.pi) * 2.0 * math.sqrt(1.5) * chroma)
    return (linear_to_srgb(lin) + blotch).clamp(0.0, 1.0)


def _jpeg(x: Tensor, quality: int) -> Tensor:
    """Round-trip through PIL JPEG at ``quality`` (4:2:0 chroma subsampling)."""
    u8 = (x.clamp(0.0, 1.0) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert("RGB"))
    return torch.from_numpy(out.copy()).permute(2, 0, 1).to(x.dtype) / 255


def _unsharp(x: Tensor, amount: float, sigma: float) -> Tensor:
    """Unsharp mask x + amount * (x - blur(x)); strong amounts leave halos, clipped."""
    return (x + amount * (x - _gaussian_blur(x, sigma))).clamp(0.0, 1.0)


def _guided_smooth(x: Tensor, r: int, eps: float) -> Tensor:
    """Guided filter (He et al.) of each channel with the image's luma as guide.

    Flattens texture whose local luma variance is below ~``eps`` while keeping luma edges:
    the waxy, plastic look of an over-strong denoiser. ``r`` is the window radius in px.
    """
    guide = _luma(x)
    mean_g = _box(guide, r)
    mean_x = _box(x, r)
    var_g = (_box(guide * guide, r) - mean_g * mean_g).clamp_min(0.0)
    cov = _box(guide * x, r) - mean_g * mean_x
    a = cov / (var_g + eps)
    b = mean_x - a * mean_g
    return (_box(a, r) * guide + _box(b, r)).clamp(0.0, 1.0)


# --- per-level parameters -----------------------------------------------------------------


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
    "exposure_under": lambda x, k, s: _exposure(x, _lin(-0.5, -2.5, k)),
    "exposure_over": lambda x, k, s: _exposure(x, _lin(0.4, 2.0, k)),
    "contrast_low": lambda x, k, s: _contrast(x, 1 - _lin(0.15, 0.7, k)),
    "contrast_high": lambda x, k, s: _contrast(x, _geo(1.3, 3.0, k)),
    "saturation_low": lambda x, k, s: _saturation(x, _lin(0.8, 0.1, k)),
    "saturation_high": lambda x, k, s: _saturation(x, _lin(1.3, 2.5, k)),
    "gamma_dark": lambda x, k, s: _gamma(x, _geo(1.25, 2.5, k)),
    "gamma_bright": lambda x, k, s: _gamma(x, 1 / _geo(1.25, 2.5, k)),
    "cast_warm": lambda x, k, s: _cast(x, (1.0, 0.0, -1.0), _lin(0.05, 0.4, k)),
    "cast_cool": lambda x, k, s: _cast(x, (-1.0, 0.0, 1.0), _lin(0.05, 0.4, k)),
    "cast_green": lambda x, k, s: _cast(x, (-0.5, 1.0, -0.5), _lin(0.05, 0.4, k)),
    "cast_magenta": lambda x, k, s: _cast(x, (0.5, -1.0, 0.5), _lin(0.05, 0.4, k)),
    "haze": lambda x, k, s: _haze(x, _lin(0.1, 0.6, k)),
    "noise_gaussian": lambda x, k, s: _gaussian_noise(x, _geo(3.0, 25.0, k) / 255, s),
    "noise_realistic": lambda x, k, s: _realistic_noise(
        x, _geo(5e-4, 2e-2, k), _geo(1.5, 10.0, k) / 255, s
    ),
    "blur": lambda x, k, s: _gaussian_blur(x, _geo(0.6, 3.0, k)).clamp(0.0, 1.0),
    "jpeg": lambda x, k, s: _jpeg(x, round(_geo(40.0, 5.0, k))),
    "oversharpen": lambda x, k, s: _unsharp(x, _lin(1.0, 6.0, k), _lin(1.5, 2.0, k)),
    "oversmooth": lambda x, k, s: _guided_smooth(
        x, round(_geo(2.0, 8.0, k)), _geo(0.03, 0.12, k) ** 2
    ),
    "noise_luma": lambda x, k, s: _luma_noise(x, _geo(4.0, 25.0, k) / 255, s),
    "tone_mix": lambda x, k, s: _tone_mix(x, float(tone_mix_strength(k)), s),
    "shadows_crushed": lambda x, k, s: _crush_shadows(x, _lin(0.4, 2.0, k)),
}
FAMILIES: tuple[str, ...] = tuple(_OPS)  # ordered family names; index = family id
# Compound groups start from a noisy photo (one of these families at levels 1..COMPOUND_LEVELS) and
# rank it above further distortions of it, except those that smooth noise away and may improve it.
COMPOUND_BASES: tuple[str, ...] = ("noise_gaussian", "noise_realistic", "noise_luma")
COMPOUND_LEVELS = 3
_SMOOTHING = ("blur", "oversmooth")


def distort(image: Tensor, family: str, level: int, seed: int = 0) -> Tensor:
    """Apply one family at one level (1 = mildest but visible, ``LEVELS`` = strongest).

    image: (3,H,W) float sRGB-encoded in [0,1]. Returns (3,H,W) float32 in [0,1].
    Deterministic in (image, family, level, seed); ``seed`` only matters for noise.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3,H,W) image, got {tuple(image.shape)}")
    if family not in _OPS:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    if not 1 <= level <= LEVELS:
        raise ValueError(f"level must be in 1..{LEVELS}, got {level}")
    return _OPS[family](image.float().clamp(0.0, 1.0), level, seed)


# --- loading and views --------------------------------------------------------------------


def _resize(x: Tensor, h: int, w: int) -> Tensor:
    """Antialiased bilinear resize of (C,H,W) or (N,C,H,W) to (h, w)."""
    batch = x if x.ndim == 4 else x[None]
    out = F.interpolate(batch, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return (out if x.ndim == 4 else out[0]).clamp(0.0, 1.0)


def load_pristine(path: str | Path, long_side: int = 512) -> Tensor:
    """Read an image (EXIF orientation applied) as (3,h,w) float32 in [0,1].

    Resized (antialiased, up or down) so that its long side is ``long_side`` px.
    """
    with Image.open(path) as im:
        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255
    h, w = x.shape[1:]
    s = long_side / max(h, w)
    return _resize(x, max(1, round(h * s)), max(1, round(w * s)))


class PhotoCache:
    """``cache(path)``: the photo of :func:`load_pristine` at ``long_side``, (3,h,w) float32 in
    [0,1], decoded once and then kept as 8 bits (a quarter of the memory) for every later call."""

    def __init__(self, long_side: int = 512) -> None:
        self.long_side = long_side
        self._photos: dict[str, Tensor] = {}  # path -> (3,h,w) uint8

    def __call__(self, path: str) -> Tensor:
        if path not in self._photos:
            self._photos[path] = (load_pristine(path, self.long_side) * 255).round().to(torch.uint8)
        return self._photos[path].float() / 255


def shared_view(batch: Tensor, rng: np.random.Generator, size: int) -> Tensor:
    """One random view, the same for every image of (N,3,h,w) -> (N,3,size,size).

    With probability 1/2 the whole image resized to ``round(size * 8 / 7)`` square then a random
    ``size`` crop; else a ``size`` crop of the image scaled by a random factor in [0.5, 1] (raised
    where needed so the crop fits). Then one random horizontal flip for all.
    """
    if rng.random() < 0.5:
        side = round(size * 8 / 7)
        batch = _resize(batch, side, side)
    else:
        h, w = batch.shape[2:]
        f = max(rng.uniform(0.5, 1.0), size / min(h, w))
        hs, ws = max(size, round(h * f)), max(size, round(w * f))
        if (hs, ws) != (h, w):
            batch = _resize(batch, hs, ws)
    top = int(rng.integers(0, batch.shape[2] - size + 1))
    left = int(rng.integers(0, batch.shape[3] - size + 1))
    batch = batch[:, :, top : top + size, left : left + size]
    return batch.flip(-1) if rng.random() < 0.5 else batch


class SyntheticRanking(torch.utils.data.Dataset):
    """Groups of one pristine photo and ``per_group`` distortions of it, all seen through one view.

    Item ``i`` of epoch ``e`` uses source ``paths[(e * len(self) + i) % len(paths)]``, so that
    epochs shorter than the source list still visit every source in turn. Each group holds
    distinct random families at random levels, plus one extra member repeating a family at a
    different level so that "milder above stronger" pairs exist. The view (shared by the group) is, with probability
    1/2, the whole image resized to 256x256 (for size 224; ``round(size * 8 / 7)`` in general)
    then a random ``size`` crop; else a ``size`` crop of the distorted long-side image scaled
    by a random factor in [0.5, 1] (raised where needed so the crop fits). One random
    horizontal flip for all. Deterministic for (seed, epoch, i).

    With probability ``compound``, a group is compound: its first image is not the pristine photo
    but a noisy version of it (a family of ``COMPOUND_BASES`` at level 1..``COMPOUND_LEVELS``), and
    the distortions are applied on top of that, drawn from every family but the smoothing ones. They
    teach that tone, colour and detail changes do not make a noisy photo better (a scorer that has
    only seen clean anchors can prefer a noisy photo with crushed shadows and boosted contrast).

    ``families`` restricts the draws to those names of ``FAMILIES`` (None: all of them); the draws
    from the first N families are the same as those of a set that had only N.

    Items: images (1+per_group, 3, size, size) float32 in [0,1], the anchor (pristine, or the noisy
    base of a compound group) first; level (1+per_group,) long, 0 for the anchor; family
    (1+per_group,) long, index into ``FAMILIES``, -1 for the anchor.
    """

    def __init__(
        self,
        paths: Sequence[str],
        per_group: int = 6,
        size: int = 224,
        long_side: int = 512,
        seed: int = 0,
        groups_per_epoch: int | None = None,
        compound: float = 0.0,
        families: Sequence[str] | None = None,
    ) -> None:
        if not paths:
            raise ValueError("no source images")
        unknown = sorted(set(families or ()) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}; expected names from {FAMILIES}")
        chosen = FAMILIES if families is None else [f for f in FAMILIES if f in families]
        if not 2 <= per_group <= len(chosen) + 1:
            raise ValueError(f"per_group must be in 2..{len(chosen) + 1} for {len(chosen)} families, got {per_group}")
        if not 0 <= compound <= 1:
            raise ValueError(f"compound must be in [0,1], got {compound}")
        self.allowed = np.array([FAMILIES.index(f) for f in chosen])
        self.on_noisy = np.array([FAMILIES.index(f) for f in chosen if f not in _SMOOTHING])
        if compound and per_group > len(self.on_noisy) + 1:
            raise ValueError(f"per_group must be at most {len(self.on_noisy) + 1} with compound groups, got {per_group}")
        self.compound = compound
        self.paths = list(paths)
        self.per_group = per_group
        self.size = size
        self.seed = seed
        self.groups_per_epoch = groups_per_epoch
        self.epoch = 0
        self._pristine = PhotoCache(long_side)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; items differ between epochs."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.groups_per_epoch if self.groups_per_epoch is not None else len(self.paths) * 4

    def _members(self, rng: np.random.Generator, allowed: np.ndarray) -> list[tuple[int, int]]:
        """(family index, level) for each distortion: a same-family pair plus distinct others,
        from ``allowed`` family indices."""
        fams = rng.choice(allowed, size=self.per_group - 1, replace=False)
        pair_levels = rng.choice(LEVELS, size=2, replace=False) + 1
        members = [(int(fams[0]), int(pair_levels[0])), (int(fams[0]), int(pair_levels[1]))]
        members += [(int(f), int(rng.integers(1, LEVELS + 1))) for f in fams[1:]]
        return [members[j] for j in rng.permutation(len(members))]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        anchor = self._pristine(self.paths[(self.epoch * len(self) + i) % len(self.paths)])
        if self.compound and rng.random() < self.compound:
            base, base_level = COMPOUND_BASES[int(rng.integers(len(COMPOUND_BASES)))], int(rng.integers(1, COMPOUND_LEVELS + 1))
            anchor = distort(anchor, base, base_level, int(rng.integers(0, 2**31)))
            members = self._members(rng, self.on_noisy)
        else:
            members = self._members(rng, self.allowed)
        seeds = rng.integers(0, 2**31, size=len(members))
        images = [anchor] + [
            distort(anchor, FAMILIES[f], k, int(s)) for (f, k), s in zip(members, seeds)
        ]
        view = shared_view(torch.stack(images), rng, self.size).contiguous()
        level = torch.tensor([0] + [k for _, k in members], dtype=torch.long)
        family = torch.tensor([-1] + [f for f, _ in members], dtype=torch.long)
        return view, level, family


def eval_pairs(
    paths: Sequence[str], seed: int = 0, size: int = 224, long_side: int = 512
) -> Iterator[tuple[str, str, int, Tensor]]:
    """Yield (source stem, family, level, image) for every family and level of every source.

    Each source starts with (stem, "pristine", 0, image). Distortions are made at the
    ``long_side`` version, then the whole image is resized (antialiased) to (3, size, size).
    Deterministic in (paths, seed).
    """
    for path in paths:
        name = Path(path).stem
        pristine = load_pristine(path, long_side)
        yield name, "pristine", 0, _resize(pristine, size, size)
        for family in FAMILIES:
            for level in range(1, LEVELS + 1):
                image = distort(pristine, family, level, seed)
                yield name, family, level, _resize(image, size, size)
