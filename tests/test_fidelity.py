"""Structural fidelity to the scene (the tuner's HDR term) and TMQI (enhance.fidelity)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from enhance import ops
from enhance.fidelity import (
    LOG_LEVELS_PER_EV, scene_reference, statistical_naturalness, structural_fidelity, tmqi,
)

N = 192  # >= 176, the five scales' minimum


def textured_log_luminance(seed: int = 0) -> torch.Tensor:
    """(1,1,N,N) log2 luminance with structure at every scale: random fields of 4..48 px detail, ~+-5 EV."""
    g = torch.Generator().manual_seed(seed)
    field = torch.zeros(1, 1, N, N)
    for cells in (4, 8, 16, 32, 48):
        field += F.interpolate(torch.randn(1, 1, cells, cells, generator=g), size=(N, N), mode="bicubic",
                               align_corners=False)
    return 5 * field / field.abs().max()


def scene_of(log_y: torch.Tensor) -> torch.Tensor:
    """Grey radiance (1,3,N,N) of log2 luminance ``log_y``."""
    return torch.exp2(log_y).expand(1, 3, N, N).clone()


def grey(levels: torch.Tensor) -> torch.Tensor:
    """A grey display image (1,3,N,N) whose luma is ``levels`` (0..255, clipped)."""
    return (levels.clamp(0, 255) / 255).expand(1, 3, N, N).clone()


def test_shapes_and_small_input() -> None:
    radiance = scene_of(textured_log_luminance()).repeat(3, 1, 1, 1)
    rendered = torch.rand(3, 3, N, N)
    assert structural_fidelity(rendered, radiance).shape == (3,)
    assert tmqi(rendered, radiance).q.shape == (3,)
    with pytest.raises(ValueError, match="at least 176"):
        structural_fidelity(rendered[..., :100, :], radiance[..., :100, :])
    with pytest.raises(ValueError, match="unknown scene domain"):
        structural_fidelity(rendered, radiance, "gamma")


def test_kept_structure_costs_nothing() -> None:
    """A rendering whose luma is the scene's log luminance (the "log" reference) under one gain and
    offset keeps the scene's structure: S ~ 1. (A gain below 1 would sink some faint detail under
    the visibility threshold, and a ramp is not affine over the coarsest scale's windows, which
    span most of the image: both cost a little, by design.)"""
    log_y = textured_log_luminance()
    ref = scene_reference(scene_of(log_y))
    for gain in (1.0, 1.3):
        rendered = grey(gain * (ref - ref.min()) + 20)
        assert float(rendered.min()) > 0 and float(rendered.max()) < 1  # nothing clipped
        assert float(structural_fidelity(rendered, scene_of(log_y))) > 0.999
    # a different structure (the scene upside down) is far from it
    assert float(structural_fidelity(rendered.flip(-2), scene_of(log_y))) < 0.5


@pytest.mark.parametrize("end", ["shadows", "highlights"])
def test_crushing_costs_more_the_more_is_crushed(end: str) -> None:
    log_y = textured_log_luminance(1)
    radiance = scene_of(log_y)
    ref = scene_reference(radiance)
    levels = 1.2 * (ref - ref.mean()) + 128  # about 38 to 223: nothing clipped yet
    s = []
    for shift in (0, 50, 75, 100, 125):
        s.append(float(structural_fidelity(grey(levels - shift if end == "shadows" else levels + shift), radiance)))
    assert s[0] > 0.99
    assert all(a > b for a, b in zip(s, s[1:])), s
    assert s[-1] < s[0] - 0.05, s


def tonemapped(radiance: torch.Tensor, **params: float) -> torch.Tensor:
    values = {"exposure": 0.0, "shadows": 0.0, "highlights": 0.0, **params}
    return ops.get("tonemap").fn(radiance, {k: torch.tensor([v]) for k, v in values.items()}, linear=True)


def test_tone_mapper_clipping_highlights_loses_fidelity() -> None:
    """The HDR tone curve with its white point at 1 (highlights = 1: linear up to white, then a clip)
    pushed up in exposure clips more and more of the highlights: S falls."""
    radiance = scene_of(textured_log_luminance(2) * 1.6 + math.log2(0.18))  # ~16 EV about middle grey
    s = [float(structural_fidelity(tonemapped(radiance, exposure=ev, highlights=1.0), radiance)) for ev in (0, 1, 2)]
    assert s[0] > s[1] > s[2], s
    assert s[2] < s[0] - 0.02, s


def test_gradients_finite_at_black_and_white() -> None:
    radiance = scene_of(textured_log_luminance(3))
    radiance[..., :40, :40] = 0.0  # exact black in the scene too
    rendered = torch.rand(1, 3, N, N)
    rendered[..., :60, :] = 0.0   # flat black windows
    rendered[..., -60:, :] = 1.0  # flat white windows
    rendered.requires_grad_(True)
    for domain in ("log", "linear"):
        rendered.grad = None
        structural_fidelity(rendered, radiance, domain).sum().backward()
        assert rendered.grad is not None and torch.isfinite(rendered.grad).all()
    # through the operator at its bounds, where it renders black and white
    for ev in (-2.0, 2.0):
        p = {k: torch.tensor([v], requires_grad=True) for k, v in {"exposure": ev, "shadows": -1.0, "highlights": 1.0}.items()}
        out = ops.get("tonemap").fn(radiance * 100, p, linear=True)
        structural_fidelity(out, radiance).sum().backward()
        assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in p.values())


def test_scene_exposure_does_not_matter() -> None:
    """Both scene references are invariant to the radiance's scale (log: up to the black floor)."""
    radiance = scene_of(textured_log_luminance(4))
    rendered = tonemapped(radiance)
    for domain in ("log", "linear"):
        a = structural_fidelity(rendered, radiance, domain)
        b = structural_fidelity(rendered, radiance * 8, domain)
        assert torch.allclose(a, b, atol=1e-4), domain
    assert torch.allclose(scene_reference(radiance * 2) - scene_reference(radiance),
                          torch.full((1, 1, N, N), LOG_LEVELS_PER_EV), atol=1e-2)


def test_naturalness_matches_the_papers_densities() -> None:
    """N against scipy's beta and normal densities on the same statistics, each over its peak."""
    stats = pytest.importorskip("scipy.stats")
    image = torch.rand(2, 3, 66, 77) * torch.tensor([0.6, 0.9]).view(2, 1, 1, 1)
    n = statistical_naturalness(image)
    for i in range(2):
        luma = 255 * (13933 * image[i, 0].double() + 46871 * image[i, 1].double() + 4732 * image[i, 2].double()) / 65536
        blocks = [luma[y: y + 11, x: x + 11].std() for y in range(0, 66, 11) for x in range(0, 77, 11)]
        contrast = float(torch.stack(blocks).mean()) / 64.29
        mode = 3.4 / 12.5
        expected = (stats.beta.pdf(contrast, 4.4, 10.1) / stats.beta.pdf(mode, 4.4, 10.1)
                    * stats.norm.pdf(float(luma.mean()), 115.94, 27.99) / stats.norm.pdf(115.94, 115.94, 27.99))
        assert float(n[i]) == pytest.approx(expected, rel=1e-6)
    assert float(statistical_naturalness(torch.full((1, 3, 44, 44), 0.5))) < 1e-30  # no contrast at all


def test_tmqi_prefers_a_tone_mapping_to_a_clip() -> None:
    radiance = scene_of(textured_log_luminance(5) * 1.6 + math.log2(0.18))
    mapped, clipped = tonemapped(radiance), radiance.clamp(0, 1) ** (1 / 2.2)
    good, bad = tmqi(mapped, radiance), tmqi(clipped, radiance)
    assert float(good.s) > float(bad.s) and float(good.q) > float(bad.q)
    for figure in (*good, *bad):
        assert 0 <= float(figure) <= 1


def test_recipe_fidelity_setting() -> None:
    from enhance.recipe import Recipe, RecipeError, parse_recipe

    recipe = parse_recipe('fidelity = 7.5\n[[op]]\nname = "tonemap"\n')
    assert recipe.fidelity == 7.5
    assert parse_recipe(recipe.to_toml()).fidelity == 7.5
    assert Recipe.from_ops(["tonemap"]).fidelity == parse_recipe('[[op]]\nname = "tonemap"\n').fidelity
    with pytest.raises(RecipeError, match="fidelity must lie in"):
        parse_recipe('fidelity = -1\n[[op]]\nname = "tonemap"\n')


def test_recipe_hdr_strength_setting() -> None:
    from enhance.recipe import Recipe, RecipeError, parse_recipe

    recipe = parse_recipe('hdr_strength = 0.5\n[[op]]\nname = "tonemap"\n')
    assert recipe.hdr_strength == 0.5 and recipe.pull(linear=True) == 0.5
    assert recipe.pull(linear=False) == recipe.strength
    assert parse_recipe(recipe.to_toml()).hdr_strength == 0.5
    assert Recipe.from_ops(["tonemap"]).hdr_strength == parse_recipe('[[op]]\nname = "tonemap"\n').hdr_strength
    with pytest.raises(RecipeError, match="hdr_strength must lie in"):
        parse_recipe('hdr_strength = -1\n[[op]]\nname = "tonemap"\n')


def test_recipe_hdr_gain_setting() -> None:
    from enhance.recipe import Recipe, RecipeError, parse_recipe

    recipe = parse_recipe('hdr_gain = 0.25\n[[op]]\nname = "tonemap"\n')
    assert recipe.hdr_gain == 0.25 and recipe.least_gain(linear=True) == 0.25
    assert recipe.least_gain(linear=False) == 0.0
    assert parse_recipe(recipe.to_toml()).hdr_gain == 0.25
    assert Recipe.from_ops(["tonemap"]).hdr_gain == parse_recipe('[[op]]\nname = "tonemap"\n').hdr_gain
    for bad in ("-0.1", "9.5"):
        with pytest.raises(RecipeError, match="hdr_gain must lie in"):
            parse_recipe(f'hdr_gain = {bad}\n[[op]]\nname = "tonemap"\n')


def test_hdr_rendering_must_rise_by_the_recipes_hdr_gain(tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """A tuned HDR rendering whose full-render score rises above the start's, but by less than
    ``hdr_gain``, gives way to the start; a display-referred photo is not held to the gain."""
    from enhance.recipe import Recipe
    from enhance.render import Source
    from enhance.tune import tune

    radiance = scene_of(textured_log_luminance(8) * 1.5 + math.log2(0.18))

    def tuned(image: torch.Tensor, gain: float, linear: bool):  # type: ignore[no-untyped-def]
        recipe = Recipe.from_ops(["tonemap" if linear else "contrast"], strength=0.0, hdr_strength=0.0,
                                 fidelity=0.0, hdr_gain=gain)
        return tune(image, recipe, tiny_scorer, steps=4, linear=linear)

    out, free = tuned(radiance, 0.0, True)
    rise = free.objective["after"]["full"].mean - free.objective["before"]["full"].mean
    assert not free.kept_input and rise > 0  # the climb's rendering is returned without a gain to meet
    out, held = tuned(radiance, rise + 0.01, True)
    assert held.kept_input and f"at least {rise + 0.01:g} above" in held.note
    assert held.values == free.values  # the same climb, judged against the gain
    assert torch.equal(out, Source.of(radiance, linear=True).plain.clamp(0, 1))
    out, passed = tuned(radiance, rise - 0.01, True)
    assert not passed.kept_input

    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    _, plain = tuned(photo, 0.0, False)
    _, gained = tuned(photo, 9.0, False)
    assert gained.kept_input == plain.kept_input and gained.values == plain.values


def test_hdr_input_is_pulled_by_the_recipes_hdr_strength(tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """The objective subtracts ``hdr_strength`` times the pull toward the start for HDR input and
    ``strength`` times the pull toward the identity for a display-referred photo; an explicit
    strength replaces both. From a start off the identity (the scene's white point, for HDR input),
    the HDR photo is pulled toward that start and the display photo still toward the identity."""
    from enhance.climb import Objective
    from enhance.params import bounded, identity_pull, unconstrained
    from enhance.recipe import Recipe
    from enhance.render import Source

    recipe = Recipe.from_ops(["tonemap"], strength=0.25, hdr_strength=3.0)
    moved = recipe.with_values([{"exposure": 1.0, "shadows": 0.5, "highlights": -0.25}])
    sources = [Source.of(scene_of(textured_log_luminance(7) + math.log2(0.18)), linear=True),
               Source.of(torch.rand(1, 3, 200, 200, generator=torch.Generator().manual_seed(0)))]
    u = [unconstrained(moved, 1, "cpu")] * 2
    pull = float(identity_pull(recipe, bounded(recipe, u[0])).sum())
    assert pull > 0 and float(identity_pull(moved, bounded(moved, u[0]), from_start=True).sum()) < 1e-12

    def objectives(strength: float | None, start: Recipe = recipe) -> list[float]:
        objective = Objective(sources, [start] * 2, tiny_scorer, strength=strength, crops=1, seed=0)
        with torch.no_grad():
            return [float(o) for o in objective([0, 1], u)[0]]

    free, own, given = objectives(0.0), objectives(None), objectives(1.0)
    assert own[0] == pytest.approx(free[0] - 3.0 * pull, abs=1e-4)
    assert own[1] == pytest.approx(free[1] - 0.25 * pull, abs=1e-4)
    assert given == pytest.approx([f - pull for f in free], abs=1e-4)
    at_start = objectives(None, moved)
    assert at_start == pytest.approx([free[0], free[1] - 0.25 * pull], abs=1e-4)


def test_a_heavy_hdr_pull_keeps_the_start(tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    from enhance.recipe import Recipe
    from enhance.tune import tune

    radiance = scene_of(textured_log_luminance(8) * 1.5 + math.log2(0.18))
    out, result = tune(radiance, Recipe.from_ops(["tonemap"], strength=0.0, hdr_strength=1e6), tiny_scorer,
                       steps=3, linear=True)
    assert result.kept_input, result.ops


def test_tuner_weighs_fidelity_for_hdr_input(tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """From an overexposed start (highlights clipped), a climb with a heavy fidelity weight gives back
    more of the scene's structure than the start has and than a climb on the scorer alone."""
    from enhance.recipe import Recipe
    from enhance.climb import climb
    from enhance.render import Source, render

    radiance = scene_of(textured_log_luminance(6) * 2.0 + math.log2(0.18))  # ~20 EV
    s = {}
    for weight in (0.0, 50.0):
        recipe = Recipe.from_ops(["tonemap"], fidelity=weight).with_values([{"exposure": 2.0, "shadows": 0.0,
                                                                             "highlights": 0.0}])
        done = climb([Source.of(radiance, linear=True)], recipe, tiny_scorer, steps=4, seed=0, lr=0.15, crops=1,
                     patience=12)[0]
        s[weight] = float(structural_fidelity(render(done.source.image, recipe, done.params, linear=True), radiance))
        begin = [{k: torch.tensor([v]) for k, v in recipe.stages[0].start.items()}]
        start = float(structural_fidelity(render(done.source.image, recipe, begin, linear=True), radiance))
    assert s[50.0] > start and s[50.0] > s[0.0], (start, s)
