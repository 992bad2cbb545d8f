"""Pipelines at any size: the differentiable torch render, the tiled full-resolution render, and
what HDR input needs before it (the key-value gain, its rendering before tuning).

Images between operators are sRGB-encoded floats in [0,1]; HDR input is linear scene radiance
until its first operator (a tone-mapping one, ``op.hdr``) encodes it for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from enhance.recipe import Recipe

TILE = 1024     # tile side for the full-resolution render, pixels

Params = list[dict[str, torch.Tensor]]   # one dict per stage: name -> (B,) tensor in human units


class TuneError(RuntimeError):
    """Tuning or rendering could not produce a valid result (e.g. NaN or Inf appeared, or HDR input
    met a recipe that cannot display it)."""


def check_finite(t: torch.Tensor, what: str) -> None:
    """TuneError when ``t`` holds NaN or Inf; ``what`` names it in the message."""
    if not torch.isfinite(t).all():
        raise TuneError(f"non-finite values in {what} during tuning")


def apply_pipeline(
    image: torch.Tensor, recipe: Recipe, params: Params, ref_size: int | None = None, linear: bool = False
) -> torch.Tensor:
    """Run every stage of ``recipe`` on (B,3,H,W) ``image`` with ``params``.

    ``image`` is sRGB in [0,1], or linear scene radiance when ``linear``: then the first stage
    must be an HDR operator (``op.hdr``), which encodes it for display.
    """
    for i, (stage, p) in enumerate(zip(recipe.stages, params)):
        if linear and i == 0:
            image = stage.op.fn(image, p, ref_size=ref_size, linear=True)
        else:
            image = stage.op.fn(image, p, ref_size=ref_size)
    return image


def pipeline(recipe: Recipe, params: Params, linear: bool) -> Callable[[torch.Tensor, int | None], torch.Tensor]:
    """``recipe`` with ``params`` as a function ``(image, ref_size) -> image`` (what
    :meth:`enhance.views.Views.render` takes)."""
    return lambda image, ref: apply_pipeline(image, recipe, params, ref, linear)


def check_hdr(recipe: Recipe) -> None:
    """Scene-referred input needs a tone-mapping operator first, and all operators tuned together
    (a single stage tuned alone would be rendered after the others at identity); TuneError otherwise."""
    if recipe.select == "best" and len(recipe.stages) > 1:
        raise TuneError('HDR input needs its operators tuned together: select = "best" takes display-referred '
                        "photos (use --op tonemap or --op tonemap_local)")
    if not recipe.stages[0].op.hdr:
        from enhance import ops

        able = ", ".join(n for n in ops.names() if ops.get(n).hdr) or "none registered"
        raise TuneError(f"HDR input needs a tone-mapping operator first ({able}), "
                        f"not {recipe.stages[0].op.name!r}")


def hdr_scale(radiance: torch.Tensor) -> float:
    """The gain that brings the log-average (geometric mean) luminance of linear ``radiance``
    (B,3,H,W) to middle grey 0.18, Reinhard's key; pixels of zero luminance are left out (1.0 if
    all are). HDR input is multiplied by it once, on the full image, and the gain is recorded, so
    that tone-mapping operators stay pointwise or local and tiles render alike."""
    from enhance.ops.color import luminance

    y = luminance(radiance.clamp_min(0)).flatten().double()
    y = y[y > 0]
    return float(0.18 / torch.exp2(torch.log2(y).mean())) if y.numel() else 1.0


def display(radiance: torch.Tensor) -> torch.Tensor:
    """The plain display encoding of linear radiance: clip to [0,1], then sRGB."""
    from enhance.ops.color import linear_to_srgb

    return linear_to_srgb(radiance.clamp(0, 1))


WHITE_QUANTILE = 0.999  # HDR input's white point: this quantile of the pre-scaled luminance
SPREAD_QUANTILES = (0.05, 0.95)  # a rendering's spread: EV between these quantiles of its luminance
# The widest spread HDR input's start may have, EV: a quarter of the best-rated quarter of the CLIVE
# photos span more (`python benchmarks/hdr.py --spread`). A scene whose global Reinhard rendering spans
# more starts with its contrast lowered until it spans this; a narrower one keeps its contrast.
# Chosen among 5.7, 6.9 and 7.9 on CLIVE scenes (benchmarks/RESULTS.md, HDR).
HDR_SPREAD = 6.9


def scene_start(radiance: torch.Tensor) -> dict[str, float]:
    """The start of `tonemap`'s climb for pre-scaled HDR radiance (1,3,H,W), and its rendering before
    tuning: global Reinhard with the white point at the 99.9th percentile of the luminance (Reinhard
    et al. 2002), its contrast about the key lowered only as far as needed for the rendering to span
    at most ``HDR_SPREAD`` EV between its 5th and 95th percentiles of luminance
    (:func:`enhance.ops.tone.hdr_start_values`). The spread's quantiles leave out pixels of zero
    luminance (a black border says nothing of the scene's contrast), as :func:`hdr_scale` does; about a
    million pixels, evenly strided, are enough for the quantiles. -> `tonemap`'s values by name."""
    from enhance.ops.color import luminance
    from enhance.ops.tone import hdr_start_values

    y = luminance(radiance.clamp_min(0)).flatten()
    y = y[:: max(1, y.numel() // 1_000_000)].double()
    white = float(torch.quantile(y, WHITE_QUANTILE))
    lit = y[y > 0]
    low, high = torch.quantile(lit, torch.tensor(SPREAD_QUANTILES, dtype=y.dtype)).tolist() if lit.numel() else (0.0, 0.0)
    return hdr_start_values(low, high, white, HDR_SPREAD)


def hdr_start(recipe: Recipe, start: dict[str, float]) -> Recipe:
    """``recipe`` for HDR input whose start is ``start`` (:func:`scene_start`): when its first stage
    is `tonemap` starting at the identity, starting instead at ``start`` (each value within the
    stage's range), so that the climb starts from :func:`as_displayed`."""
    first = recipe.stages[0]
    if first.op.name != "tonemap" or any(first.start[k] != v for k, v in first.op.identity.items()):
        return recipe
    bounds = {s.name: (s.lo, s.hi) for s in first.specs}
    values = {k: min(max(start[k], bounds[k][0]), bounds[k][1]) if k in bounds else v for k, v in first.start.items()}
    return recipe.with_values([values, *(st.start for st in recipe.stages[1:])])


def as_displayed(radiance: torch.Tensor, start: dict[str, float]) -> torch.Tensor:
    """Pre-scaled HDR radiance (1,3,H,W) as shown before tuning: `tonemap` at ``start``
    (:func:`scene_start`; :func:`hdr_start` sets the climb's start there), rendered in tiles -> (1,3,H,W)
    sRGB in [0,1]."""
    from enhance.params import params_from_values

    recipe = hdr_start(Recipe.from_ops(["tonemap"]), start)
    return render(radiance, recipe, params_from_values(recipe, [recipe.stages[0].start], radiance.device),
                  linear=True).clamp_(0, 1)


@dataclass(frozen=True)
class Source:
    """One photo as the engine works on it, prepared once: ``image`` (1,3,H,W) is sRGB in [0,1], or
    for HDR input (``linear``) the radiance already multiplied by ``hdr_scale``; ``plain`` is the
    input as displayed (HDR: :func:`as_displayed`, global Reinhard, rather than a clip that no one
    would keep), the baseline every score and the kept-input fallback refer to. ``levels``: the
    image holds exact codes k / (levels - 1) (256 for an 8-bit photo, 65536 for a 16-bit one), so
    that its full-resolution render may look its pointwise operators up in exact tables
    (:mod:`enhance.lut`); None when unknown. ``start``: HDR input's `tonemap` start
    (:func:`scene_start`), found once for the display and the climb."""

    image: torch.Tensor
    plain: torch.Tensor
    hdr_scale: float | None = None
    levels: int | None = None
    start: dict[str, float] | None = None

    @property
    def linear(self) -> bool:
        """Whether ``image`` is scene-referred radiance."""
        return self.hdr_scale is not None

    @classmethod
    def of(cls, image: torch.Tensor, linear: bool = False, scale: float | None = None,
           levels: int | None = None) -> "Source":
        """``image`` as given, or radiance multiplied by ``scale`` (default: its :func:`hdr_scale`)."""
        if not linear:
            return cls(image, image, levels=levels)
        scale = hdr_scale(image) if scale is None else scale
        image = image * scale
        start = scene_start(image)
        return cls(image, as_displayed(image, start), scale, start=start)


def pipeline_halo(recipe: Recipe, params: Params, ref_size: int) -> int:
    """Pixels of context the whole pipeline needs around a tile."""
    return sum(stage.op.halo(p, ref_size) for stage, p in zip(recipe.stages, params))


@torch.no_grad()
def render(image: torch.Tensor, recipe: Recipe, params: Params, tile: int = TILE, linear: bool = False) -> torch.Tensor:
    """Apply the pipeline to a full-resolution (1,3,H,W) image, tile by tile with enough overlap
    that the result equals an untiled render; memory stays bounded by the tile size."""
    _, _, h, w = image.shape
    ref = min(h, w)
    halo = pipeline_halo(recipe, params, ref)
    if h * w <= tile * tile:
        return apply_pipeline(image, recipe, params, ref, linear)
    out = torch.empty_like(image)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            y0, x0 = max(y - halo, 0), max(x - halo, 0)
            y1, x1 = min(y + tile + halo, h), min(x + tile + halo, w)
            piece = apply_pipeline(image[..., y0:y1, x0:x1], recipe, params, ref, linear)
            out[..., y: y + tile, x: x + tile] = piece[..., y - y0: y - y0 + min(tile, h - y), x - x0: x - x0 + min(tile, w - x)]
    return out


def resize_long(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """(B,3,H,W) resized (antialiased) so that max(H,W) <= long_side; never enlarged."""
    h, w = image.shape[-2:]
    scale = long_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(round(h * scale), 1), max(round(w * scale), 1))
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
