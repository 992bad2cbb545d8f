"""Tone: exposure, a global tone curve on luminance, and local tone mapping.

All three work in linear light and scale R, G and B by the same gain, so hue is kept.

``tonemap`` and ``tonemap_local`` are also HDR operators: with ``linear=True`` they take linear scene
radiance (>= 0, may exceed 1) and map its log2 luminance to display log2 luminance with a slope below 1
about middle grey (scene 0.18 -> display 0.18; the tuner pre-scales the radiance so that its log-average
luminance is 0.18), roll the highlights off smoothly into white and encode to sRGB. At their identity
parameters the linear paths apply the default curve, 1 display EV per `1 / _HDR_SLOPE` scene EV.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .color import linear_to_srgb, luminance, relight, srgb_to_linear
from .filters import box_support, guided_filter, pixels
from .registry import ParamSpec, register_operator


@register_operator(
    params=(ParamSpec("ev", -3.0, 3.0, 0.0, "EV", "exposure change; +1 doubles linear light"),),
    doc="Exposure: a gain of 2**ev in linear light.",
)
def exposure(image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None) -> Tensor:
    """Gain of 2**ev in linear light. image (B,3,H,W) sRGB in [0,1]; ``ev`` (B,) in EV -> (B,3,H,W)."""
    gain = torch.exp2(params["ev"].reshape(-1, 1, 1, 1))
    return relight(image, srgb_to_linear(image), gain)


_SHADOW_KNEE = 0.05  # linear luminance where the shadows weight is 1/2 (sRGB ~0.25)
_SHADOW_EV = 2.0  # shadows = +-1 lifts / crushes the deepest shadows by this many EV
_GREY = math.log2(0.18)  # middle grey, log2 linear luminance
_HDR_FLOOR = 2.0**-20  # added to scene luminance before log2 (~17.5 EV below grey): finite at 0
_HDR_SLOPE = 0.5  # default display EV per scene EV: a ~20 EV scene fits the ~10 EV of a display
_KNEE = 0.7  # display luminance where the highlight shoulder starts (sRGB ~0.85)


def _scene_log_luminance(radiance: Tensor) -> tuple[Tensor, Tensor]:
    """radiance (B,3,H,W) linear -> (luminance Y, log2(Y + floor)), each (B,1,H,W); negatives clamp to 0."""
    y = luminance(radiance.clamp_min(0))
    return y, torch.log2(y + _HDR_FLOOR)


def _shoulder(y: Tensor) -> Tensor:
    """Display luminance >= 0 -> [0,1): identity up to `_KNEE`, then a tanh roll-off into white (C1)."""
    top = 1 - _KNEE
    return torch.where(y > _KNEE, _KNEE + top * torch.tanh((y - _KNEE) / top), y)


def _encode_hdr(radiance: Tensor, y: Tensor, log_display: Tensor) -> Tensor:
    """Show ``radiance`` (B,3,H,W) of luminance ``y`` at display log2 luminance ``log_display``.

    The display luminance is ``y * 2**log_display / (y + floor)`` (so black stays black, with a linear
    toe below the floor), rolled off by `_shoulder`; the same gain goes to R, G and B (hue kept), then
    channels are clipped to [0,1] and sRGB-encoded. Returns (B,3,H,W) in [0,1].
    """
    gain = torch.exp2(log_display) / (y + _HDR_FLOOR)
    shown = y * gain
    roll = torch.where(shown > _KNEE, _shoulder(shown) / shown.clamp_min(_KNEE), torch.ones_like(shown))
    return linear_to_srgb((radiance.clamp_min(0) * gain * roll).clamp(0, 1))


def _tonemap_hdr(radiance: Tensor, params: dict[str, Tensor]) -> Tensor:
    ev = params["exposure"].reshape(-1, 1, 1, 1)
    below = _HDR_SLOPE * torch.exp2(-params["shadows"].reshape(-1, 1, 1, 1))
    above = _HDR_SLOPE * torch.exp2(params["highlights"].reshape(-1, 1, 1, 1))
    y, log_y = _scene_log_luminance(radiance)
    t = log_y - _GREY
    # slope `below` under grey, `above` over it, joined smoothly across ~+-2 EV by t * sigmoid(t ln 2),
    # whose slope lies in [-0.1, 1.1]: monotone while the slopes differ by less than 10x (here <= 4x)
    return _encode_hdr(radiance, y, _GREY + ev + below * t + (above - below) * t * torch.sigmoid(t * math.log(2)))


@register_operator(
    params=(
        ParamSpec("exposure", -2.0, 2.0, 0.0, "EV", "gain on luminance before the curve"),
        ParamSpec("shadows", -1.0, 1.0, 0.0, "", "lift (+) or crush (-) shadows, up to 2 EV at black"),
        ParamSpec("highlights", -1.0, 1.0, 0.0, "", "recover (-) or brighten (+) highlights"),
    ),
    doc="Tone curve: exposure, shadows and highlights on luminance, hue kept; HDR: log-luminance tone mapping.",
    hdr=True,
)
def tonemap(
    image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None, linear: bool = False
) -> Tensor:
    """Global, monotone tone curve on linear luminance Y, applied as a common gain to R, G, B.

    In order: ``exposure`` (B,) in EV, Y1 = Y * 2**exposure; ``shadows`` (B,) in [-1,1], a gain of
    2**(2 * shadows * w) with w = 1 / (1 + Y1 / 0.05), near 1 in the deep shadows and fading out
    above them (lift if > 0, crush if < 0); ``highlights`` (B,) in [-1,1], extended Reinhard
    Y3 = Y2 (1 + Y2 / W**2) / (1 + Y2) with white point W = 2**-highlights: < 0 compresses and
    recovers highlights (values reaching W map to 1), > 0 brightens them. Black stays black, the
    curve is monotone for every setting, and 0, 0, 0 is the identity.
    image (B,3,H,W) sRGB in [0,1] -> (B,3,H,W) in [0,1].

    ``linear=True``: ``image`` is scene radiance (B,3,H,W) >= 0 (may exceed 1). With t the scene EV
    from middle grey (log2 Y - log2 0.18), the display log2 luminance is log2 0.18 + exposure + g(t),
    g of slope 0.5 * 2**-shadows below grey and 0.5 * 2**highlights above it (smoothly joined), then
    the highlight shoulder and sRGB encoding (``exposure`` is display EV at grey; shadows > 0 lift,
    highlights < 0 compress). Monotone in radiance; returns (B,3,H,W) sRGB in [0,1].
    """
    if linear:
        return _tonemap_hdr(image, params)
    ev = params["exposure"].reshape(-1, 1, 1, 1)
    shadows = params["shadows"].reshape(-1, 1, 1, 1)
    highlights = params["highlights"].reshape(-1, 1, 1, 1)
    lin = srgb_to_linear(image)
    y1 = luminance(lin) * torch.exp2(ev)
    lift = torch.exp2(_SHADOW_EV * shadows / (1 + y1 / _SHADOW_KNEE))
    y2 = y1 * lift
    compress = (1 + y2 * torch.exp2(2 * highlights)) / (1 + y2)
    return relight(image, lin, torch.exp2(ev) * lift * compress)


_LOG_EPS = 1e-4  # added to linear luminance before log2
_BASE_EPS = 1.0  # guided-filter regulariser on log2 luminance: edges above ~1 EV stay in the base
_MAX_COMPRESSION = 0.75  # compression = 1 shrinks the base's log range 4x


def _radius_px(params: dict[str, Tensor], ref_size: int) -> Tensor:
    return pixels(params["radius"], ref_size)


@register_operator(
    params=(
        ParamSpec("compression", -0.5, 1.0, 0.0, "", "compress (+) or expand (-) large-scale luminance about middle grey"),
        ParamSpec("detail", 0.5, 2.0, 1.0, "x", "gain on local (fine-scale) log-luminance contrast"),
        ParamSpec("radius", 0.005, 0.1, 0.03, "short side", "size of the base layer's filter"),
    ),
    doc="Local tone mapping: compress the base, scale the detail of log luminance (guided filter).",
    halo=lambda params, ref_size: 2 * box_support(_radius_px(params, ref_size)),
    hdr=True,
)
def tonemap_local(
    image: Tensor, params: dict[str, Tensor], *, ref_size: int | None = None, linear: bool = False
) -> Tensor:
    """Local tone mapping: base/detail split of log2 luminance with a self-guided filter.

    ``compression`` (B,) in [-0.5,1] scales the base's distance from middle grey (log2 0.18) by
    1 - 0.75 * compression (0 = identity; negative expands); ``detail`` (B,) in [0.5,2] scales the detail layer
    (1 = identity); ``radius`` (B,) is the filter radius as a fraction of ``ref_size`` (the full
    image's short side; None: this image's). The change of log luminance is applied as a common gain
    to linear R, G, B. image (B,3,H,W) sRGB in [0,1] -> (B,3,H,W) in [0,1].

    ``linear=True``: ``image`` is scene radiance (B,3,H,W) >= 0. The base of log2(Y) about middle grey
    is scaled by 0.5 * 4**-compression (compression 1: 1/8, -0.5: 1) and the detail by 0.5 * detail, so
    (0, 1) is the default global curve and compression > 0 keeps local contrast while it compresses
    large-scale contrast; then the highlight shoulder and sRGB encoding -> (B,3,H,W) in [0,1].
    """
    compression = params["compression"].reshape(-1, 1, 1, 1)
    detail = params["detail"].reshape(-1, 1, 1, 1)
    r = _radius_px(params, ref_size or min(image.shape[-2:]))
    if linear:
        y, log_y = _scene_log_luminance(image)
        base = guided_filter(log_y, r, _BASE_EPS)
        base_slope = _HDR_SLOPE * torch.exp2(-2 * compression)
        return _encode_hdr(image, y, _GREY + base_slope * (base - _GREY) + _HDR_SLOPE * detail * (log_y - base))
    lin = srgb_to_linear(image)
    log_y = torch.log2(luminance(lin) + _LOG_EPS)
    base = guided_filter(log_y, r, _BASE_EPS)
    change = -_MAX_COMPRESSION * compression * (base - _GREY) + (detail - 1) * (log_y - base)
    return relight(image, lin, torch.exp2(change))
