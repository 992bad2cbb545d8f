"""Tone: exposure, a global tone curve on luminance, and local tone mapping.

All three work in linear light and scale R, G and B by the same gain, so hue is kept.

``tonemap`` and ``tonemap_local`` are also HDR operators: with ``linear=True`` they take linear scene
radiance (>= 0, may exceed 1) whose log-average luminance is middle grey 0.18 (the tuner pre-scales it,
:func:`enhance.render.hdr_scale`: Reinhard's key), shape its log2 luminance about that key and map the
result through Reinhard's extended photographic curve L (1 + L / W**2) / (1 + L) into display luminance,
then encode to sRGB. At their identity parameters the linear paths are global Reinhard (white point
W = 2**3.5 ~ 11.3 in the units where the key is 0.18); the tuner starts `tonemap` at the scene's own
white point instead (:func:`enhance.render.hdr_start`).
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
_GREY = math.log2(0.18)  # middle grey, log2 linear luminance: the key of the photographic operator
_HDR_FLOOR = 2.0**-20  # added to scene luminance before log2 (~17.5 EV below grey): finite at 0
_HDR_WHITE_EV = 3.5  # log2 of the default white point W, in key-relative units (W ~ 11.3: 6 EV over grey)
_HDR_WHITE_RANGE = 3.5  # highlights = +-1 moves log2 W by this much: W in [1, 128]
_HDR_CONTRAST_EV = 2.0  # shadows = +-1 sets the power about the key to 2**-+2 (1/4 to 4)


def _scene_log_luminance(radiance: Tensor) -> tuple[Tensor, Tensor]:
    """radiance (B,3,H,W) linear -> (luminance Y, log2(Y + floor)), each (B,1,H,W); negatives clamp to 0."""
    y = luminance(radiance.clamp_min(0))
    return y, torch.log2(y + _HDR_FLOOR)


def _white_ev(highlights: Tensor) -> Tensor:
    """``highlights`` (B,1,1,1) in [-1,1] -> log2 of the white point W (key-relative units): 3.5 at 0,
    0 at +1 (W = 1: the curve is linear up to white, brightest highlights), 7 at -1 (W = 128: nearly
    the plain L / (1 + L), most compressed highlights)."""
    return _HDR_WHITE_EV - _HDR_WHITE_RANGE * highlights


def hdr_start_values(low: float, high: float, white: float, spread: float) -> dict[str, float]:
    """`tonemap`'s HDR start for a pre-scaled scene whose luminance has quantiles ``low`` < ``high``
    and white point ``white`` (key-relative units): the least contrast lowering ``shadows`` in [0,1]
    (a power about the key of 1 down to 1/4; exposure stays 0) under which ``low`` and ``high``
    render at most ``spread`` EV apart, and the ``highlights`` that put the white point at ``white``
    through the same power -> ``{"exposure": 0.0, "shadows": ..., "highlights": ...}``. A scene that
    spans less at shadows 0 keeps its contrast; one that spans more at shadows 1 gets 1."""
    shadows = torch.linspace(0, 1, 101, dtype=torch.float64)
    power = torch.exp2(-_HDR_CONTRAST_EV * shadows)
    white_ev = (_GREY + power * (math.log2(max(white, 0.0) + _HDR_FLOOR) - _GREY)).clamp(0, 2 * _HDR_WHITE_RANGE)
    highlights = 1 - white_ev / _HDR_WHITE_RANGE
    grey = torch.tensor([low, high], dtype=torch.float64).reshape(1, 1, 1, 2).expand(len(shadows), 3, 1, 2)
    shown = _tonemap_hdr(grey, {"exposure": torch.zeros_like(shadows), "shadows": shadows, "highlights": highlights})
    log_shown = torch.log2(luminance(srgb_to_linear(shown)) + _HDR_FLOOR).reshape(len(shadows), 2)
    within = ((log_shown[:, 1] - log_shown[:, 0]) <= spread).nonzero()
    i = int(within[0]) if len(within) else len(shadows) - 1
    return {"exposure": 0.0, "shadows": round(float(shadows[i]), 2), "highlights": float(highlights[i])}


def _encode_hdr(radiance: Tensor, y: Tensor, log_key: Tensor, white_ev: Tensor) -> Tensor:
    """Show ``radiance`` (B,3,H,W) of luminance ``y`` (B,1,H,W) whose key-scaled log2 luminance is
    ``log_key`` (B,1,H,W; log2 L, with L = 0.18 at the scene's key) through extended Reinhard.

    L is capped at the white point W = 2**white_ev (white_ev (B,1,1,1) >= 0), where the curve reaches
    1 (so nothing overflows); the display luminance D = L (1 + L / W**2) / (1 + L) in [0,1] goes to R, G
    and B as the common gain D / (y + floor) (hue kept, black stays black: a linear toe below the
    floor), then channels are clipped to [0,1] and sRGB-encoded. Returns (B,3,H,W) in [0,1].
    """
    big = torch.exp2(torch.minimum(log_key, white_ev))
    shown = big * (1 + big * torch.exp2(-2 * white_ev)) / (1 + big)
    return linear_to_srgb((radiance.clamp_min(0) * (shown / (y + _HDR_FLOOR))).clamp(0, 1))


def _tonemap_hdr(radiance: Tensor, params: dict[str, Tensor]) -> Tensor:
    ev = params["exposure"].reshape(-1, 1, 1, 1)
    power = torch.exp2(-_HDR_CONTRAST_EV * params["shadows"].reshape(-1, 1, 1, 1))
    y, log_y = _scene_log_luminance(radiance)
    # the key (log-average 0.18 after the pre-scale) goes to 0.18 * 2**ev; a power about it sets contrast
    return _encode_hdr(radiance, y, _GREY + ev + power * (log_y - _GREY), _white_ev(params["highlights"].reshape(-1, 1, 1, 1)))


@register_operator(
    params=(
        ParamSpec("exposure", -2.0, 2.0, 0.0, "EV", "gain on luminance before the curve"),
        ParamSpec("shadows", -1.0, 1.0, 0.0, "", "lift (+) or crush (-) shadows, up to 2 EV at black"),
        ParamSpec("highlights", -1.0, 1.0, 0.0, "", "recover (-) or brighten (+) highlights"),
    ),
    doc="Tone curve: exposure, shadows and highlights on luminance, hue kept; HDR: global Reinhard, tuned.",
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

    ``linear=True``: ``image`` is scene radiance (B,3,H,W) >= 0 (may exceed 1) whose log-average
    luminance is 0.18 (the tuner's pre-scale). Reinhard's photographic operator with three knobs:
    L = 0.18 * 2**exposure * (Y / 0.18)**p, the key moved by ``exposure`` (EV) and a power
    p = 2**(-2 * shadows) about it (shadows > 0 lowers contrast, lifting shadows and compressing
    highlights; < 0 raises it); then extended Reinhard D = L (1 + L / W**2) / (1 + L), the white point
    W = 2**(3.5 * (1 - highlights)) from 128 (-1, compressed, nearly L / (1 + L)) through 11.3 (0) to 1
    (+1, linear up to white), L capped at W where D = 1; D goes to R, G, B as a common gain, channels
    clip at 1, sRGB encoding. Monotone in radiance for every setting (p > 0, W >= 1), black stays black;
    0, 0, 0 is global Reinhard with white 11.3. Returns (B,3,H,W) sRGB in [0,1].
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

    ``linear=True``: ``image`` is scene radiance (B,3,H,W) >= 0 with log-average luminance 0.18 (the
    tuner's pre-scale). The base of log2(Y) about middle grey is scaled by 4**-compression
    (compression 1: 1/4, -0.5: 2) and the detail by ``detail``, so compression > 0 keeps local contrast
    while it compresses large-scale contrast; the result, as key-scaled luminance, goes through
    `tonemap`'s extended Reinhard curve at its default white point (11.3) and sRGB encoding ->
    (B,3,H,W) in [0,1]. (0, 1) is global Reinhard, the same curve as `tonemap` at its identity.
    """
    compression = params["compression"].reshape(-1, 1, 1, 1)
    detail = params["detail"].reshape(-1, 1, 1, 1)
    r = _radius_px(params, ref_size or min(image.shape[-2:]))
    if linear:
        y, log_y = _scene_log_luminance(image)
        base = guided_filter(log_y, r, _BASE_EPS)
        log_key = _GREY + torch.exp2(-2 * compression) * (base - _GREY) + detail * (log_y - base)
        return _encode_hdr(image, y, log_key, torch.full_like(compression, _HDR_WHITE_EV))
    lin = srgb_to_linear(image)
    log_y = torch.log2(luminance(lin) + _LOG_EPS)
    base = guided_filter(log_y, r, _BASE_EPS)
    change = -_MAX_COMPRESSION * compression * (base - _GREY) + (detail - 1) * (log_y - base)
    return relight(image, lin, torch.exp2(change))
