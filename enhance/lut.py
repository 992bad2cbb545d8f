"""Full-resolution rendering of pointwise operators through lookup tables.

A pointwise operator maps each pixel's (R,G,B) to a new (R,G,B) without looking at its neighbours,
so a run of them is one function of three values, which a table evaluated through the torch
operators themselves (one definition of each operator) reproduces at full resolution:

- ``curves``: a run in which every channel's output depends on that channel alone (exposure,
  levels, white balance, and contrast at saturation 1) is three 1D curves. On 8- and 16-bit input
  the curve has one entry per code value, so the lookup is exact; elsewhere it is sampled at
  `CURVE_POINTS` values and interpolated linearly.
- ``colour``: a run that mixes channels (tone curve on luminance, saturation). On an 8-bit photo it
  is evaluated exactly on the distinct colours the photo holds (a 24-bit table filled only where
  the photo has pixels); on 16-bit and float input it runs through torch, tile by tile.
- ``spatial``: operators with a kernel (denoise, sharpen, local tone mapping) run through torch,
  tile by tile.

A 3D LUT interpolated on a grid (Pillow's ``ImageFilter.Color3DLUT``) is not used: steep curves
near black and steep S-curves put its trilinear interpolation several 8-bit levels from the torch
render, more than the one level allowed (benchmarks/RESULTS.md, "Fast path"). The colour table is exact and, on a 12-megapixel photo, still faster than
torch (benchmarks/speed.py --only lut).

Which operators are pointwise and which are per-channel is the explicit sets `POINTWISE` and
`PER_CHANNEL` below, not a flag of the registry: an operator not named there takes the torch path,
always correct if slower (a test checks that every registered operator is classified). Stages at
their identity are left out, since every operator returns its input exactly there.

HDR (linear radiance) input stays on the torch path: its values are unbounded, so no finite table
covers them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from enhance.recipe import Recipe, Stage
from enhance.render import Params, apply_pipeline
from enhance.render import render as torch_render

POINTWISE = frozenset({"exposure", "levels", "tonemap", "contrast", "white_balance"})
PER_CHANNEL = frozenset({"exposure", "levels", "white_balance"})  # and contrast at saturation 1
CURVE_POINTS = 65536  # samples of a 1D curve on float input
CHUNK = 1 << 21      # pixels looked up at once on the torch path (bounds the temporary memory)


def is_pointwise(stage: Stage) -> bool:
    """Whether the stage's operator reads each pixel alone (in `POINTWISE`)."""
    return stage.op.name in POINTWISE


def is_per_channel(stage: Stage, params: dict[str, torch.Tensor]) -> bool:
    """Whether each output channel of the stage depends on the same input channel alone."""
    name = stage.op.name
    return name in PER_CHANNEL or (name == "contrast" and bool((params["saturation"] == 1).all()))


def is_identity(stage: Stage, params: dict[str, torch.Tensor]) -> bool:
    """Whether every parameter of the stage sits at its operator's identity."""
    return all(bool((params[k] == v).all()) for k, v in stage.op.identity.items())


@dataclass(frozen=True)
class Segment:
    """Consecutive stages rendered one way: ``kind`` is "curves", "colour" or "spatial"."""

    kind: str
    recipe: Recipe   # the segment's stages, as a recipe of their own
    params: Params

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """The stages through torch on (B,3,H,W) sRGB ``image`` (pointwise: no reference size)."""
        return apply_pipeline(image, self.recipe, self.params)


def plan(recipe: Recipe, params: Params) -> list[Segment]:
    """The non-identity stages of ``recipe`` as segments in order: each maximal run of pointwise
    stages is one segment ("curves" when every stage in it is per-channel, else "colour"), each
    spatial stage one of its own."""
    runs: list[tuple[bool, list[Stage], Params]] = []  # (pointwise, stages, params)
    for stage, p in zip(recipe.stages, params):
        if is_identity(stage, p):
            continue
        if runs and runs[-1][0] and is_pointwise(stage):
            runs[-1][1].append(stage)
            runs[-1][2].append(p)
        else:
            runs.append((is_pointwise(stage), [stage], [p]))
    segments = []
    for pointwise, stages, ps in runs:
        kind = ("curves" if all(is_per_channel(s, p) for s, p in zip(stages, ps)) else "colour") if pointwise else "spatial"
        segments.append(Segment(kind, replace(recipe, stages=tuple(stages), select="all"), ps))
    return segments


def all_pointwise(recipe: Recipe, params: Params) -> bool:
    """Whether every stage away from its identity is pointwise (`render_8bit` takes the pipeline)."""
    return all(s.kind != "spatial" for s in plan(recipe, params))


@torch.no_grad()
def curve_table(segment: Segment, points: int) -> torch.Tensor:
    """(3,points) float32: the segment's output for inputs k / (points - 1), channel by channel."""
    ramp = torch.linspace(0, 1, points).view(1, 1, 1, points).expand(1, 3, 1, points)
    return segment(ramp.contiguous())[0, :, 0]


def apply_curves(image: torch.Tensor, table: torch.Tensor, exact: bool = False) -> torch.Tensor:
    """(1,3,H,W) values in [0,1] through per-channel curves (3,N) -> (1,3,H,W).

    ``exact``: the values are codes k / (N - 1) (an N-level photo), looked up directly; otherwise
    the curve is interpolated linearly between its samples.
    """
    n = table.shape[1]
    flat = image.reshape(3, -1)
    out = torch.empty_like(flat)
    for start in range(0, flat.shape[1], CHUNK):
        x = flat[:, start: start + CHUNK].clamp(0, 1) * (n - 1)
        if exact:
            out[:, start: start + CHUNK] = table.gather(1, x.round().long())
            continue
        i = x.floor().clamp_(max=n - 2)
        lo = table.gather(1, i.long())
        hi = table.gather(1, i.long() + 1)
        out[:, start: start + CHUNK] = lo + (x - i) * (hi - lo)
    return out.reshape(image.shape)


@dataclass(frozen=True)
class Palette:
    """The distinct colours of an 8-bit photo and each pixel's place among them: what a colour
    table needs of the photo, whatever the parameters (so it may be made while they are found)."""

    colours: np.ndarray  # (K,) int32: the distinct colours, red + 256 green + 65536 blue, ascending
    rows: np.ndarray     # (H,W) int32: each pixel's index into ``colours``

    @classmethod
    def of(cls, pixels: np.ndarray) -> "Palette":
        """The palette of (H,W,3) uint8 ``pixels``."""
        h, w, _ = pixels.shape
        padded = np.zeros((h, w, 4), np.uint8)
        padded[..., :3] = pixels
        codes = padded.view("<u4")[..., 0].astype(np.int32)
        present = np.zeros(1 << 24, bool)
        present[codes] = True
        colours = np.flatnonzero(present).astype(np.int32)
        slots = np.zeros(1 << 24, np.int32)
        slots[colours] = np.arange(len(colours), dtype=np.int32)
        return cls(colours, slots[codes])

    def rgb(self) -> torch.Tensor:
        """(1,3,1,K) float32 in [0,1]: the colours as an image one pixel high."""
        c = self.colours
        return torch.from_numpy(np.stack([c & 255, (c >> 8) & 255, c >> 16]).astype(np.float32) / 255)[None, :, None, :]


@torch.no_grad()
def colour_table(segment: Segment, palette: Palette) -> np.ndarray:
    """(K,3) float32: the segment on each of the palette's K colours, exactly, clamped to [0,1]."""
    return np.ascontiguousarray(segment(palette.rgb())[0, :, 0].clamp(0, 1).numpy().T)


@torch.no_grad()
def render(image: torch.Tensor, recipe: Recipe, params: Params, *, levels: int | None = None) -> torch.Tensor:
    """The pipeline on a full-resolution (1,3,H,W) sRGB image in [0,1]: runs of per-channel
    operators through 1D tables, a leading run that mixes channels on an 8-bit photo through its
    colour table, everything else through torch tile by tile (``enhance.render.render``).

    ``levels``: the image holds exact codes k / (levels - 1) (256 for an 8-bit photo, 65536 for a
    16-bit one), so that a leading run of curves is looked up exactly rather than interpolated.
    Equals ``enhance.render.render`` within the curves' interpolation error (none with ``levels``).
    """
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected a (1,3,H,W) image, got {tuple(image.shape)}")
    out = image
    for i, segment in enumerate(plan(recipe, params)):
        if segment.kind == "curves":
            exact = i == 0 and levels is not None
            points = levels if exact and levels is not None else CURVE_POINTS
            out = apply_curves(out, curve_table(segment, points).to(out), exact=exact)
        elif segment.kind == "colour" and i == 0 and levels == 256:
            palette = Palette.of(to_codes(out[0].permute(1, 2, 0)))
            values = torch.from_numpy(colour_table(segment, palette)).T.contiguous()
            out = values.index_select(1, torch.from_numpy(palette.rows).view(-1)).view(out.shape).to(out)
        else:
            out = torch_render(out, segment.recipe, segment.params)
    return out


def render_8bit(pixels: np.ndarray, recipe: Recipe, params: Params, palette: Palette | None = None) -> np.ndarray:
    """(H,W,3) uint8 sRGB -> (H,W,3) uint8, for a pipeline whose non-identity stages are all
    pointwise (ValueError otherwise): per-channel runs through 256-entry curves, the whole pipeline
    through the photo's colour table as soon as a stage mixes channels (``palette``: the pixels'
    :class:`Palette`, made here when not given). Equal to the torch render rounded to 8 bits, up
    to float rounding (tested: within one level)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H,W,3) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    segments = plan(recipe, params)
    if any(s.kind == "spatial" for s in segments):
        raise ValueError("render_8bit takes pointwise pipelines only; spatial operators need enhance.lut.render")
    if not segments:
        return pixels.copy()
    if len(segments) == 1 and segments[0].kind == "curves":
        table = to_codes(curve_table(segments[0], 256))  # (3,256)
        return np.stack([table[c][pixels[..., c]] for c in range(3)], axis=-1)
    whole = Segment("colour", replace(recipe, stages=tuple(s for g in segments for s in g.recipe.stages)),
                    [p for g in segments for p in g.params])
    palette = palette or Palette.of(pixels)
    packed = np.zeros((len(palette.colours), 4), np.uint8)
    packed[:, :3] = to_codes(torch.from_numpy(colour_table(whole, palette)))
    return packed.view("<u4")[palette.rows, 0].view(np.uint8).reshape(*pixels.shape[:2], 4)[..., :3]


def to_codes(values: torch.Tensor) -> np.ndarray:
    """Values in [0,1] -> uint8 codes (C-contiguous, the shape of ``values``), rounded as
    ``enhance.io.write`` rounds them."""
    return values.clamp(0, 1).mul(255).round_().to(torch.uint8).contiguous().numpy()
