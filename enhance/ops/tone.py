"""Tone: exposure, a global tone curve on luminance, and local tone mapping.

All three work in linear light and scale R, G and B by the same gain, so hue is kept.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .color import luminance, relight, srgb_to_linear
from .filters import box_support, guided_filter, pixels
from .registry import Operator, ParamSpec, register


def exposure(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Gain of 2**ev in linear light. image (B,3,H,W) sRGB in [0,1]; ``ev`` (B,) in EV -> (B,3,H,W)."""
    gain = torch.exp2(params["ev"].reshape(-1, 1, 1, 1))
    return relight(image, srgb_to_linear(image), gain)


_SHADOW_KNEE = 0.05  # linear luminance where the shadows weight is 1/2 (sRGB ~0.25)
_SHADOW_EV = 2.0  # shadows = +-1 lifts / crushes the deepest shadows by this many EV


def tonemap(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Global, monotone tone curve on linear luminance Y, applied as a common gain to R, G, B.

    In order: ``exposure`` (B,) in EV, Y1 = Y * 2**exposure; ``shadows`` (B,) in [-1,1], a gain of
    2**(2 * shadows * w) with w = 1 / (1 + Y1 / 0.05), near 1 in the deep shadows and fading out
    above them (lift if > 0, crush if < 0); ``highlights`` (B,) in [-1,1], extended Reinhard
    Y3 = Y2 (1 + Y2 / W**2) / (1 + Y2) with white point W = 2**-highlights: < 0 compresses and
    recovers highlights (values reaching W map to 1), > 0 brightens them. Black stays black, the
    curve is monotone for every setting, and 0, 0, 0 is the identity.
    image (B,3,H,W) sRGB in [0,1] -> (B,3,H,W) in [0,1].
    """
    ev = params["exposure"].reshape(-1, 1, 1, 1)
    shadows = params["shadows"].reshape(-1, 1, 1, 1)
    highlights = params["highlights"].reshape(-1, 1, 1, 1)
    linear = srgb_to_linear(image)
    y1 = luminance(linear) * torch.exp2(ev)
    lift = torch.exp2(_SHADOW_EV * shadows / (1 + y1 / _SHADOW_KNEE))
    y2 = y1 * lift
    compress = (1 + y2 * torch.exp2(2 * highlights)) / (1 + y2)
    return relight(image, linear, torch.exp2(ev) * lift * compress)


_LOG_EPS = 1e-4  # added to linear luminance before log2
_BASE_EPS = 1.0  # guided-filter regulariser on log2 luminance: edges above ~1 EV stay in the base
_ANCHOR = math.log2(0.18)  # the base is compressed towards middle grey
_MAX_COMPRESSION = 0.75  # compression = 1 shrinks the base's log range 4x


def _radius_px(params: dict[str, Tensor], ref_size: int) -> Tensor:
    return pixels(params["radius"], ref_size)


def tonemap_local(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Local tone mapping: base/detail split of log2 luminance with a self-guided filter.

    ``compression`` (B,) in [-0.5,1] scales the base's distance from middle grey (log2 0.18) by
    1 - 0.75 * compression (0 = identity; negative expands); ``detail`` (B,) in [0.5,2] scales the detail layer
    (1 = identity); ``radius`` (B,) is the filter radius as a fraction of ``ref_size`` (the full
    image's short side; None: this image's). The change of log luminance is applied as a common gain
    to linear R, G, B. image (B,3,H,W) sRGB in [0,1] -> (B,3,H,W) in [0,1].
    """
    compression = params["compression"].reshape(-1, 1, 1, 1)
    detail = params["detail"].reshape(-1, 1, 1, 1)
    r = _radius_px(params, ref_size or min(image.shape[-2:]))
    linear = srgb_to_linear(image)
    log_y = torch.log2(luminance(linear) + _LOG_EPS)
    base = guided_filter(log_y, r, _BASE_EPS)
    change = -_MAX_COMPRESSION * compression * (base - _ANCHOR) + (detail - 1) * (log_y - base)
    return relight(image, linear, torch.exp2(change))


register(
    Operator(
        name="exposure",
        fn=exposure,
        params=(ParamSpec("ev", -3.0, 3.0, 0.0, "EV", "exposure change; +1 doubles linear light"),),
        doc="Exposure: a gain of 2**ev in linear light.",
    )
)
register(
    Operator(
        name="tonemap",
        fn=tonemap,
        params=(
            ParamSpec("exposure", -2.0, 2.0, 0.0, "EV", "gain on luminance before the curve"),
            ParamSpec("shadows", -1.0, 1.0, 0.0, "", "lift (+) or crush (-) shadows, up to 2 EV at black"),
            ParamSpec("highlights", -1.0, 1.0, 0.0, "", "recover (-) or brighten (+) highlights"),
        ),
        doc="Tone curve: exposure, shadows and highlights on luminance, hue kept.",
    )
)
register(
    Operator(
        name="tonemap_local",
        fn=tonemap_local,
        params=(
            ParamSpec("compression", -0.5, 1.0, 0.0, "", "compress (+) or expand (-) large-scale luminance about middle grey"),
            ParamSpec("detail", 0.5, 2.0, 1.0, "x", "gain on local (fine-scale) log-luminance contrast"),
            ParamSpec("radius", 0.005, 0.1, 0.03, "short side", "size of the base layer's filter"),
        ),
        doc="Local tone mapping: compress the base, scale the detail of log luminance (guided filter).",
        halo=lambda params, ref_size: 2 * box_support(_radius_px(params, ref_size)),
    )
)
