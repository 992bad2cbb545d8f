"""Lookup-table rendering (enhance.lut) against the torch render it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from enhance import lut, ops
from enhance.recipe import Recipe
from enhance.params import params_from_values
from enhance.render import render

POINTWISE_PIPELINES = [[name] for name in sorted(lut.POINTWISE)] + [
    ["exposure", "tonemap", "contrast"], ["levels", "white_balance"], ["tonemap", "levels"],
    ["white_balance", "contrast", "exposure", "levels"],
]


def photo(seed: int, h: int = 48, w: int = 64, levels: int = 256) -> torch.Tensor:
    """A random 'photo' (1,3,h,w) of exact codes k / (levels - 1): smooth colour fields, edges,
    deep shadows and clipped highlights, plus grain."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.rand(1, 3, 4, 5, generator=g), size=(h, w), mode="bilinear", align_corners=False)
    x = smooth ** (0.3 + 3 * torch.rand(1, generator=g)) * 1.3 + 0.05 * torch.randn(1, 3, h, w, generator=g)
    return (x.clamp(0, 1) * (levels - 1)).round() / (levels - 1)


def random_values(recipe: Recipe, gen: np.random.Generator) -> list[dict[str, float]]:
    return [{s.name: float(gen.uniform(s.lo, s.hi)) for s in st.specs} for st in recipe.stages]


def codes8(x: torch.Tensor) -> np.ndarray:
    return lut.to_codes(x[0].permute(1, 2, 0))


def test_every_operator_is_classified() -> None:
    """An operator in POINTWISE reads no neighbours at its widest settings and any other one does,
    so a new operator cannot silently take the wrong path."""
    for name in ops.names():
        op = ops.get(name)
        widest = {s.name: torch.tensor([s.hi]) for s in op.params}
        assert (op.halo(widest, 1000) == 0) == (name in lut.POINTWISE), name
    assert lut.PER_CHANNEL <= lut.POINTWISE


@pytest.mark.parametrize("name", sorted(lut.PER_CHANNEL) + ["contrast"])
def test_per_channel_operators_keep_channels_apart(name: str) -> None:
    """Changing one input channel changes no other output channel (contrast: at saturation 1)."""
    recipe = Recipe.from_ops([name])
    values = random_values(recipe, np.random.default_rng(1))
    if name == "contrast":
        values[0]["saturation"] = 1.0
    params = params_from_values(recipe, values)
    assert lut.is_per_channel(recipe.stages[0], params[0])
    x = photo(2)
    y = x.clone()
    y[:, 0] = photo(3)[:, 0]
    a, b = (render(t, recipe, params) for t in (x, y))
    assert torch.equal(a[:, 1:], b[:, 1:])


@pytest.mark.parametrize("names", POINTWISE_PIPELINES, ids="+".join)
def test_8bit_tables_match_torch(names: list[str]) -> None:
    """Random photos and random parameters: within one 8-bit level of the rounded torch render."""
    recipe = Recipe.from_ops(names)
    gen = np.random.default_rng(len(names))
    for seed in range(4):
        x = photo(seed)
        params = params_from_values(recipe, random_values(recipe, gen))
        assert lut.all_pointwise(recipe, params)
        expected = codes8(render(x, recipe, params)).astype(int)
        fast = lut.render_8bit(codes8(x), recipe, params).astype(int)
        assert np.abs(fast - expected).max() <= 1
        given = lut.render_8bit(codes8(x), recipe, params, lut.Palette.of(codes8(x)))  # made while tuning
        assert np.array_equal(given, fast)
        assert np.abs(codes8(lut.render(x, recipe, params, levels=256)).astype(int) - expected).max() <= 1


@pytest.mark.parametrize("names", POINTWISE_PIPELINES, ids="+".join)
def test_16bit_tables_match_torch(names: list[str]) -> None:
    """16-bit codes: within one 16-bit level of the torch render (curves are looked up exactly)."""
    recipe = Recipe.from_ops(names)
    gen = np.random.default_rng(10 + len(names))
    for seed in range(3):
        x = photo(seed, levels=65536)
        params = params_from_values(recipe, random_values(recipe, gen))
        got = lut.render(x, recipe, params, levels=65536)
        assert float((got - render(x, recipe, params)).abs().max()) <= 1 / 65535


def test_spatial_operators_between_tables() -> None:
    """A spatial operator inside the pipeline runs through torch; the curves after it are
    interpolated: within one 8-bit level, on float input too."""
    recipe = Recipe.from_ops(["exposure", "tonemap", "tonemap_local", "levels"])
    gen = np.random.default_rng(5)
    for seed in range(3):
        x = photo(seed)
        params = params_from_values(recipe, random_values(recipe, gen))
        assert [s.kind for s in lut.plan(recipe, params)] == ["colour", "spatial", "curves"]
        expected = render(x, recipe, params)
        for levels in (None, 256):
            assert float((lut.render(x, recipe, params, levels=levels) - expected).abs().max()) <= 1 / 255
        with pytest.raises(ValueError, match="pointwise pipelines only"):
            lut.render_8bit(codes8(x), recipe, params)


def test_identity_stages_are_left_out() -> None:
    recipe = Recipe.from_ops(["exposure", "denoise", "contrast"])
    identity = [st.op.identity for st in recipe.stages]
    assert lut.plan(recipe, params_from_values(recipe, identity)) == []
    identity[2] = {"amount": 0.5, "midpoint": 0.5, "saturation": 1.0}
    segments = lut.plan(recipe, params_from_values(recipe, identity))
    assert [(s.kind, [st.op.name for st in s.recipe.stages]) for s in segments] == [("curves", ["contrast"])]
    pixels = codes8(photo(0))
    out = lut.render_8bit(pixels, Recipe.from_ops(["exposure"]), params_from_values(Recipe.from_ops(["exposure"]), [{"ev": 0.0}]))
    assert np.array_equal(out, pixels)


def test_bad_input_is_refused() -> None:
    recipe = Recipe.from_ops(["exposure"])
    params = params_from_values(recipe, [{"ev": 1.0}])
    with pytest.raises(ValueError, match="uint8"):
        lut.render_8bit(np.zeros((4, 4, 3), np.uint16), recipe, params)
    with pytest.raises(ValueError, match=r"\(1,3,H,W\)"):
        lut.render(torch.zeros(3, 4, 4), recipe, params)
