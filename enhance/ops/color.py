"""Colour: the sRGB transfer function, luminance, relighting in linear light, and white balance."""

from __future__ import annotations

import torch
from torch import Tensor

from .registry import ParamSpec, register_operator

# Rec.709 luminance weights rounded to multiples of 2**-16 (error < 1e-5): they sum to exactly 1 in
# float32 in any order, so gains of exactly 1 stay exactly 1 after luminance normalisation (kornia's
# rgb_to_grayscale has BT.601 weights, which do not).
_LUMA = (13933 / 65536, 46871 / 65536, 4732 / 65536)


def srgb_to_linear(x: Tensor) -> Tensor:
    """sRGB-encoded (*,3,H,W) values in [0,1] (clamped) -> linear light in [0,1] (IEC 61966-2-1).

    The same arithmetic as kornia's ``rgb_to_linear_rgb``, written out: importing kornia costs about
    0.1 s (it imports its augmentation package), and the pointwise operators need nothing else of it."""
    x = x.clamp(0, 1)
    return torch.where(x > 0.04045, torch.pow((x + 0.055) / 1.055, 2.4), x / 12.92)


def linear_to_srgb(y: Tensor) -> Tensor:
    """Linear light (*,3,H,W) (clamped to [0,1]) -> sRGB-encoded values in [0,1], as kornia's
    ``linear_rgb_to_rgb`` computes it; finite gradients at 0 (the power's branch sees no value
    below its threshold)."""
    y = y.clamp(0, 1)
    return torch.where(y > 0.0031308, 1.055 * torch.pow(y.clamp(min=0.0031308), 1 / 2.4) - 0.055, 12.92 * y)


def luminance(x: Tensor) -> Tensor:
    """Rec.709-weighted sum of the channels: (B,3,H,W) -> (B,1,H,W). On linear RGB this is Y;
    on encoded RGB, luma."""
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def relight(image: Tensor, linear: Tensor, gain: Tensor) -> Tensor:
    """sRGB image (B,3,H,W), its linear light ``linear`` and a gain broadcastable to it -> the sRGB
    encoding of ``linear * gain``, clamped to [0,1].

    Written as ``image + (encode(linear * gain) - encode(linear))``, which equals
    ``encode(linear * gain)`` up to float rounding and returns ``image`` exactly where gain == 1.
    """
    return (image + (linear_to_srgb(linear * gain) - linear_to_srgb(linear))).clamp(0, 1)


# log2 channel gains at full scale: temperature +1 is warmer (R/B up 1.5 EV), tint +1 is magenta
# (green down 0.75 EV against red and blue).
_TEMPERATURE = (0.75, 0.0, -0.75)
_TINT = (0.375, -0.375, 0.375)


@register_operator(
    params=(
        ParamSpec("temperature", -1.0, 1.0, 0.0, "", "blue (-) to amber (+); +1 raises R/B 1.5 EV"),
        ParamSpec("tint", -1.0, 1.0, 0.0, "", "green (-) to magenta (+); +1 lowers G 0.75 EV against R, B"),
    ),
    doc="White balance: temperature and tint as channel gains in linear light, luminance kept.",
)
def white_balance(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Per-channel gains in linear light, normalised so a neutral grey keeps its luminance.

    image (B,3,H,W) sRGB in [0,1]; params ``temperature`` (B,) in [-1,1] (- blue, + amber) and
    ``tint`` (B,) in [-1,1] (- green, + magenta). Returns (B,3,H,W) in [0,1]; identity at 0, 0.
    """
    t = params["temperature"].reshape(-1, 1, 1, 1)
    m = params["tint"].reshape(-1, 1, 1, 1)
    axes = image.new_tensor((_TEMPERATURE, _TINT)).view(2, 1, 3, 1, 1)
    gain = torch.exp2(t * axes[0] + m * axes[1])
    return relight(image, srgb_to_linear(image), gain / luminance(gain))
