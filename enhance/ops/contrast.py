"""Contrast and saturation: a sigmoidal curve with black and white fixed, then a saturation gain."""

from __future__ import annotations

import torch
from torch import Tensor

from .color import luminance
from .registry import Operator, ParamSpec, register

_STEEPNESS = 5.0  # slope of the full-strength S-curve; keeps amount = -1 monotone for any midpoint


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


register(
    Operator(
        name="contrast",
        fn=contrast,
        params=(
            ParamSpec("amount", -1.0, 1.0, 0.0, "", "S-curve strength; negative flattens"),
            ParamSpec("midpoint", 0.2, 0.8, 0.5, "sRGB", "value the S-curve pivots about"),
            ParamSpec("saturation", 0.0, 2.0, 1.0, "x", "gain on distance from luma; 0 = greyscale"),
        ),
        doc="Contrast: S-curve with black and white fixed, plus saturation.",
    )
)
