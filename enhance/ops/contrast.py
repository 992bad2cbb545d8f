"""Contrast and saturation: a sigmoidal curve with black and white fixed, then a saturation gain."""

from __future__ import annotations

import torch
from torch import Tensor

from .color import luminance
from .registry import ParamSpec, register_operator

_STEEPNESS = 5.0  # slope of the full-strength S-curve; keeps amount = -1 monotone for any midpoint


@register_operator(
    params=(
        ParamSpec("amount", -1.0, 1.0, 0.0, "", "S-curve strength; negative flattens"),
        ParamSpec("midpoint", 0.2, 0.8, 0.5, "sRGB", "value the S-curve pivots about"),
        ParamSpec("saturation", 0.0, 2.0, 1.0, "x", "gain on distance from luma; 0 = greyscale"),
    ),
    doc="Contrast: S-curve with black and white fixed, plus saturation.",
)
def contrast(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Per-channel S-curve on sRGB-encoded values, then saturation about luma.

    The curve is a logistic of steepness 5 centred on ``midpoint`` (B,) in [0.2,0.8], rescaled so
    0 -> 0 and 1 -> 1; ``amount`` (B,) in [-1,1] blends towards it (> 0, more contrast) or away from
    it (< 0, flatter), and stays monotone at every setting. ``saturation`` (B,) in [0,2] scales each
    channel's distance from luma (0 = grey, 1 = identity). Saturation lives here rather than in an
    operator of its own. image (B,3,H,W) in [0,1] -> (B,3,H,W) in [0,1].
    """
    amount = params["amount"].reshape(-1, 1, 1, 1)
    mid = params["midpoint"].reshape(-1, 1, 1, 1)
    saturation = params["saturation"].reshape(-1, 1, 1, 1)
    lo = torch.sigmoid(-_STEEPNESS * mid)
    hi = torch.sigmoid(_STEEPNESS * (1 - mid))
    curve = (torch.sigmoid(_STEEPNESS * (image - mid)) - lo) / (hi - lo)
    out = image + amount * (curve - image)
    out = out + (saturation - 1) * (out - luminance(out))
    return out.clamp(0, 1)



_GAMMA_FLOOR = 1e-6  # pow's gradient at 0 is infinite: the gamma term sees at least this


@register_operator(
    params=(
        ParamSpec("black", -0.2, 0.5, 0.0, "sRGB", "input value mapped to black; > 0 removes haze"),
        ParamSpec("white", 0.5, 1.3, 1.0, "sRGB", "input value mapped to white"),
        ParamSpec("gamma", 0.4, 2.5, 1.0, "", "midtone gamma; > 1 brightens"),
    ),
    doc="Levels: black point, white point and midtone gamma (haze, flat or dull photos).",
)
def levels(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Black point, white point and midtone gamma on sRGB values, the same for every channel.

    t = (x - ``black``) / (``white`` - ``black``), then t ** (1 / ``gamma``): ``black`` (B,) in
    [-0.2, 0.5] (> 0 clips and deepens the shadows, removing haze or a lifted floor; < 0 lifts
    them), ``white`` (B,) in [0.5, 1.3] (< 1 stretches the highlights; > 1 dims them), ``gamma``
    (B,) in [0.4, 2.5] (> 1 brightens the midtones). 0, 1, 1 is the identity.
    image (B,3,H,W) sRGB in [0,1] -> (B,3,H,W) in [0,1].
    """
    black = params["black"].reshape(-1, 1, 1, 1)
    white = params["white"].reshape(-1, 1, 1, 1)
    gamma = params["gamma"].reshape(-1, 1, 1, 1)
    t = ((image - black) / (white - black)).clamp(0, 1)
    safe = t.clamp_min(_GAMMA_FLOOR)
    # Written as t + (curve - t) so that gamma = 1 returns t exactly, black pixels included.
    return (t + (safe ** (1 / gamma) - safe)).clamp(0, 1)
