"""The tuner: determinism, best-seen parameters, bounds, fallback, tiling, NaN guard."""

from __future__ import annotations

import importlib
import math
from dataclasses import replace

import pytest
import torch

from enhance.climb import Adam
from enhance.io import Photo
from enhance.params import bounded, identity_pull, params_from_values
from enhance.recipe import Recipe
from enhance.render import TuneError, apply_pipeline, render, resize_long
from enhance.tune import fit_shared, tune
from enhance.views import Views
from nima import Scorer


def _photo(h: int = 96, w: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(0.05, 0.6, w).view(1, 1, 1, w).expand(1, 3, h, w)
    return (0.5 * base + 0.1 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1).contiguous()


def test_tune_is_deterministic_for_a_seed(tiny_scorer: Scorer) -> None:
    image = _photo()
    recipe = Recipe.from_ops(["tonemap", "contrast"])
    out1, r1 = tune(image, recipe, tiny_scorer, steps=4, seed=3)
    out2, r2 = tune(image, recipe, tiny_scorer, steps=4, seed=3)
    assert torch.equal(out1, out2) and r1.ops == r2.ops and r1.history == r2.history


def test_tune_leaves_the_global_random_state_alone(tiny_scorer: Scorer) -> None:
    image = _photo()
    for optimizer in ("adam", "nelder-mead"):
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        tune(image, Recipe.from_ops(["exposure"]), tiny_scorer, steps=2, seed=7, optimizer=optimizer)
        assert torch.equal(torch.rand(3), expected), optimizer


def test_tune_keeps_the_best_parameters_seen_and_reports_both_scores(tiny_scorer: Scorer) -> None:
    image = _photo()
    out, result = tune(image, Recipe.from_ops(["tonemap"]), tiny_scorer, steps=6, strength=0.0)
    assert result.steps >= 1 and len(result.history) == result.steps + 1
    # The after-proxy score is the best seen, not the last.
    assert result.objective["after"]["proxy"].mean == pytest.approx(max(result.history), abs=1e-4)
    assert set(result.objective["before"]) == {"proxy", "full"} == set(result.objective["after"])
    assert set(result.score) == {"before", "after"}
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1


def test_parameters_stay_within_bounds_in_human_units(tiny_scorer: Scorer) -> None:
    recipe = Recipe.from_ops(["exposure", "levels", "sharpen"])
    _, result = tune(_photo(), recipe, tiny_scorer, steps=5, lr=2.0, strength=0.0)
    for stage, rec in zip(recipe.stages, result.ops):
        for spec in stage.specs:
            assert spec.lo <= rec["params"][spec.name] <= spec.hi


def test_identity_pull_is_zero_at_identity_and_positive_away() -> None:
    recipe = Recipe.from_ops(["exposure", "contrast"])
    ident = [{s.name: torch.tensor([s.identity]) for s in st.specs} for st in recipe.stages]
    assert float(identity_pull(recipe, ident)) == 0
    ident[0]["ev"] = torch.tensor([1.5])
    assert float(identity_pull(recipe, ident)) == pytest.approx((1.5 / 6) ** 2)


def test_when_nothing_improves_the_input_is_returned_unchanged(tiny_scorer: Scorer) -> None:
    image = _photo()
    # A huge identity pull makes every move a loss: the tuner must hand back the input.
    out, result = tune(image, Recipe.from_ops(["exposure"]), tiny_scorer, steps=3, strength=1e6)
    assert result.kept_input and torch.equal(out, image)
    assert "unchanged" in result.note


def test_nan_in_tuning_stops_with_an_error(tiny_scorer: Scorer) -> None:
    image = _photo()
    image[..., 0, 0] = float("nan")
    with pytest.raises(TuneError, match="non-finite"):
        tune(image, Recipe.from_ops(["exposure"]), tiny_scorer, steps=2)


def test_gradients_finite_at_black_and_white_pixels_and_at_bounds(tiny_scorer: Scorer) -> None:
    image = torch.zeros(1, 3, 64, 64)
    image[..., 32:] = 1.0
    recipe = Recipe.from_ops(["exposure", "levels", "tonemap", "contrast", "denoise", "sharpen"])
    for start in (-30.0, 0.0, 30.0):  # at, and far beyond, both bounds
        u = [{s.name: torch.full((1,), start, requires_grad=True) for s in st.specs} for st in recipe.stages]
        out = apply_pipeline(image, recipe, bounded(recipe, u))
        (tiny_scorer.mean(out).sum() - identity_pull(recipe, bounded(recipe, u)).sum()).backward()
        assert all(torch.isfinite(t.grad).all() for d in u for t in d.values())  # type: ignore[arg-type]


def test_tiled_render_equals_untiled() -> None:
    image = _photo(150, 210, seed=1)
    recipe = Recipe.from_ops(["tonemap_local", "denoise", "sharpen"])
    values = [{"compression": 0.5, "detail": 1.4, "radius": 0.05}, {"luma": 0.6, "chroma": 0.4, "radius": 0.01},
              {"amount": 1.0, "radius": 0.006}]
    params = params_from_values(recipe, values)
    whole = render(image, recipe, params, tile=1024)
    tiled = render(image, recipe, params, tile=64)
    assert (whole - tiled).abs().max() < 1e-4


def test_proxy_and_detail_views_have_the_scorer_size() -> None:
    image = _photo(300, 500)
    recipe = Recipe.from_ops(["denoise"])
    views = Views.of(image, recipe, crops=2, size=224, seed=0)
    assert max(views.proxy.shape[-2:]) == recipe.proxy or max(image.shape[-2:]) <= recipe.proxy
    assert views.render(224).shape == (3, 3, 224, 224)
    # Views of an image seen as is equal plain resizes: the identity pipeline changes nothing.
    ident = params_from_values(recipe, [{s.name: s.identity for s in recipe.stages[0].specs}])
    same = views.render(224, lambda im, ref: apply_pipeline(im, recipe, ident, ref))
    assert torch.allclose(same, views.render(224), atol=1e-6)


def test_resize_long_never_enlarges() -> None:
    small = torch.rand(1, 3, 20, 30)
    assert resize_long(small, 512) is small
    assert resize_long(torch.rand(1, 3, 600, 1200), 512).shape[-2:] == (256, 512)


def test_nelder_mead_runs_on_the_same_objective(tiny_scorer: Scorer) -> None:
    _, result = tune(_photo(), Recipe.from_ops(["exposure"]), tiny_scorer, steps=6, optimizer="nelder-mead")
    assert result.optimizer == "nelder-mead" and result.evaluations >= 3
    assert result.objective["after"]["proxy"].mean >= result.objective["before"]["proxy"].mean - 1e-6
    with pytest.raises(ValueError, match="unknown optimizer"):
        tune(_photo(), Recipe.from_ops(["exposure"]), tiny_scorer, steps=1, optimizer="sgd")


def test_written_out_adam_follows_torch_optim_adam() -> None:
    """The tuner's Adam takes the steps torch.optim.Adam takes, and a tensor without a gradient
    neither moves nor counts a step (as in torch)."""
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(3, generator=gen), torch.randn(2, 2, generator=gen)]
    ours = [t.clone().requires_grad_(True) for t in start]
    theirs = [t.clone().requires_grad_(True) for t in start]
    mine, ref = Adam(ours, lr=0.15), torch.optim.Adam(theirs, lr=0.15)
    for i in range(12):
        for leaves in (ours, theirs):
            for t in leaves:
                t.grad = None
            loss = (leaves[0] ** 3).sum() + (leaves[1].sin().sum() if i % 4 != 1 else 0)  # leaves[1] skips 3 steps
            loss.backward()
        mine.step()
        ref.step()
        for a, b in zip(ours, theirs):
            assert torch.allclose(a, b, rtol=0, atol=1e-6), (i, a, b)
    assert mine.counts == [12, 9]


def test_repeatable_switches_deterministic_kernels_on_for_cuda_only_and_restores() -> None:
    from enhance.climb import repeatable

    assert not torch.are_deterministic_algorithms_enabled()
    with repeatable(torch.device("cpu")):
        assert not torch.are_deterministic_algorithms_enabled()
    with repeatable(torch.device("cuda")):  # sets flags only; needs no GPU
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    torch.use_deterministic_algorithms(True)  # a caller's own, stricter setting is left alone
    try:
        with repeatable(torch.device("cuda")):
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_repeatable_holds_the_flags_until_the_last_overlapping_loop_ends() -> None:
    """Threads of `enhance batch --jobs N` enter and leave in any order."""
    from enhance.climb import repeatable

    first, second = repeatable(torch.device("cuda")), repeatable(torch.device("cuda"))
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first loop ends while the second still runs
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    second.__exit__(None, None, None)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_select_best_keeps_the_stage_whose_proxy_score_rose_most(tiny_scorer: Scorer) -> None:
    image = _photo()
    recipe = replace(Recipe.from_ops(["exposure", "contrast", "denoise"]), select="best")
    out, result = tune(image, recipe, tiny_scorer, steps=3, strength=0.0)
    alone = [tune(image, recipe.alone(i), tiny_scorer, steps=3, strength=0.0) for i in range(3)]
    gains = [-math.inf if r.kept_input else r.objective["after"]["proxy"].mean - r.objective["before"]["proxy"].mean for _, r in alone]
    best = max(range(3), key=lambda i: gains[i])
    assert gains[best] > 0  # this photo and scorer do gain somewhere, so the choice is exercised
    assert torch.equal(out, alone[best][0]) and result.ops[best] == alone[best][1].ops[0]
    for i, stage in enumerate(recipe.stages):  # the others are reported at their identity
        if i != best:
            assert result.ops[i]["params"] == {p.name: p.identity for p in stage.op.params}
    assert result.steps == sum(r.steps for _, r in alone)
    # the reported values render the same image through the whole recipe
    again = render(image, recipe, params_from_values(recipe, result.values)).clamp(0, 1)
    assert (again - out).abs().max() < 1e-4


def _count_renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operator of each single-stage recipe rendered at full resolution from now on."""
    module = importlib.import_module("enhance.tune")  # the package's ``tune`` attribute is the function
    names: list[str] = []
    real = module.render

    def counted(image: torch.Tensor, recipe: Recipe, params: list, **kw: bool) -> torch.Tensor:
        names.append(recipe.stages[0].op.name)
        return real(image, recipe, params, **kw)

    monkeypatch.setattr(module, "render", counted)
    return names


def test_select_best_renders_only_the_climb_it_keeps(tiny_scorer: Scorer, monkeypatch: pytest.MonkeyPatch) -> None:
    # the climbs are rendered in order of their proxy gain until one holds on the full render
    rendered = _count_renders(monkeypatch)
    recipe = replace(Recipe.from_ops(["exposure", "contrast", "denoise"]), select="best")
    _, result = tune(_photo(), recipe, tiny_scorer, steps=3, strength=0.0)
    kept = [op["name"] for op, stage in zip(result.ops, recipe.stages) if op["params"] != stage.op.identity]
    assert not result.kept_input and rendered == kept and len(kept) == 1


def test_select_best_returns_the_input_when_no_stage_helps(tiny_scorer: Scorer, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = _count_renders(monkeypatch)
    image = _photo()
    recipe = replace(Recipe.from_ops(["exposure", "contrast"]), select="best")
    out, result = tune(image, recipe, tiny_scorer, steps=2, strength=1e6)
    assert result.kept_input and torch.equal(out, image)
    assert sorted(rendered) == ["contrast", "exposure"]  # each tried on the full render before giving up


def test_select_best_of_one_hdr_operator_tunes_radiance_like_select_all(tiny_scorer: Scorer) -> None:
    radiance = _photo() * 4
    recipe = Recipe.from_ops(["tonemap"])
    out, result = tune(radiance, replace(recipe, select="best"), tiny_scorer, steps=3, linear=True)
    same, expected = tune(radiance, recipe, tiny_scorer, steps=3, linear=True)
    assert result.hdr_scale is not None and result.hdr_scale == expected.hdr_scale
    assert torch.equal(out, same) and result.ops == expected.ops


def test_select_best_refuses_hdr_input(tiny_scorer: Scorer) -> None:
    # one stage tuned alone on radiance would be rendered after the others at identity: refused
    recipe = replace(Recipe.from_ops(["tonemap", "tonemap_local"]), select="best")
    with pytest.raises(TuneError, match='select = "best" takes display-referred photos'):
        tune(_photo() * 4, recipe, tiny_scorer, steps=1, linear=True)
    hdr = Photo(_photo() * 4, None, 32, "HDR", None, None, linear=True, path="scene.hdr")
    with pytest.raises(TuneError, match='select = "best" takes display-referred photos'):
        fit_shared([hdr], recipe, tiny_scorer, steps=1)
