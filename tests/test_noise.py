"""The noise estimate (enhance.noise) and the ``when_noisy`` guard of ``select = "best"`` recipes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from enhance.io import read
from enhance.noise import NOISY, noise_level
from enhance.predict import combine
from enhance.recipe import Recipe, RecipeError, load_recipe, parse_recipe
from enhance.tune import tune, tune_batch
from nima import Scorer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "coffee-flat.jpg"


def _smooth(h: int = 192, w: int = 256, seed: int = 0) -> torch.Tensor:
    """A photo-like image without noise: a few broad shapes, mid-tones."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 3, 4, generator=g)
    return 0.2 + 0.6 * F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _noised(image: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (image + sigma * torch.randn(image.shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("sigma", [5 / 255, 10 / 255, 20 / 255, 30 / 255])
def test_the_estimate_follows_white_noise_at_about_three_quarters_of_its_level(sigma: float) -> None:
    level = float(noise_level(_noised(_smooth(), sigma)))
    assert 0.6 * sigma < level < 0.85 * sigma


def test_a_smooth_photo_reads_near_zero_and_the_estimate_is_per_image() -> None:
    clean, noisy = _smooth(), _noised(_smooth(), 20 / 255)
    both = noise_level(torch.cat([clean, noisy]))
    assert both.shape == (2,) and float(both[0]) < 1 / 255
    assert float(both[1]) == pytest.approx(float(noise_level(noisy)), abs=1e-6)


def test_the_bundled_photo_is_clean_and_reads_noisy_with_10_of_255_added() -> None:
    photo = read(EXAMPLE).image
    assert float(noise_level(photo)) < NOISY / 2
    assert float(noise_level(_noised(photo, 10 / 255))) >= NOISY


def test_clipped_and_tiny_photos_give_no_estimate() -> None:
    black = _noised(torch.zeros(1, 3, 128, 128), 20 / 255)  # clipping halves the noise: left out
    assert float(noise_level(black)) == 0.0
    assert float(noise_level(_noised(_smooth(40, 40), 20 / 255))) == 0.0  # fewer blocks than MIN_BLOCKS


def test_the_estimate_is_taken_at_detail_scale() -> None:
    # a large photo is shrunk to the tuner's detail scale first, which averages its pixel noise down
    small, large = _noised(_smooth(512, 768), 20 / 255), _noised(_smooth(1536, 2304), 20 / 255)
    assert float(noise_level(large)) < 0.6 * float(noise_level(small))


# --- the recipe key ---------------------------------------------------------------------------

BEST = 'select = "best"\nwhen_noisy = "denoise"\n[[op]]\nname = "exposure"\n[[op]]\nname = "denoise"\n'


def test_when_noisy_is_read_written_and_dropped_by_single_stage_recipes() -> None:
    r = parse_recipe(BEST)
    assert r.when_noisy == "denoise" and parse_recipe(r.to_toml()).when_noisy == "denoise"
    assert r.alone(0).when_noisy is None and "when_noisy" not in parse_recipe(BEST.replace('when_noisy = "denoise"\n', "")).to_toml()
    assert r.candidates(noisy=True) == [1] and r.candidates(noisy=False) == [0, 1]
    assert load_recipe("auto").when_noisy == "denoise"


@pytest.mark.parametrize(("text", "message"), [
    (BEST.replace('"denoise"\n[[op]]', '"denoize"\n[[op]]'),
     r"line 2\): when_noisy must name one operator of the recipe \(exposure, denoise\), got 'denoize'"),
    (BEST.replace('select = "best"\n', ""), r'line 1\): when_noisy needs select = "best"'),
    (BEST + '[[op]]\nname = "denoise"\n', r"line 2\): when_noisy must name one operator"),
])
def test_a_bad_when_noisy_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe(text, "bad.toml")


# --- the guard --------------------------------------------------------------------------------

RECIPE = Recipe.from_ops(["exposure", "contrast", "denoise"], select="best", when_noisy="denoise", proxy=128)


def test_a_noisy_photo_gets_only_the_when_noisy_operator(tiny_scorer: Scorer) -> None:
    noisy = _noised(_smooth(), 20 / 255)
    out, result = tune(noisy, RECIPE, tiny_scorer, steps=3, strength=0.0)
    alone, expected = tune(noisy, RECIPE.alone(2), tiny_scorer, steps=3, strength=0.0)
    assert [o["params"] for o in result.ops[:2]] == [s.op.identity for s in RECIPE.stages[:2]]
    assert result.ops[2] == expected.ops[0] and torch.equal(out, alone)
    assert result.steps == expected.steps  # the other operators did not climb
    assert "because the photo is noisy (estimated noise" in result.note, result.note


def test_a_clean_photo_climbs_every_operator_as_without_the_guard(tiny_scorer: Scorer) -> None:
    clean = _smooth()
    out, result = tune(clean, RECIPE, tiny_scorer, steps=3, strength=0.0)
    same, expected = tune(clean, replace(RECIPE, when_noisy=None), tiny_scorer, steps=3, strength=0.0)
    assert torch.equal(out, same) and result.ops == expected.ops and result.note == expected.note
    assert "noisy" not in result.note


def test_a_batch_guards_each_photo_on_its_own(tiny_scorer: Scorer) -> None:
    clean, noisy = _smooth(seed=2), _noised(_smooth(seed=3), 20 / 255)
    batched = tune_batch([clean, noisy], RECIPE, tiny_scorer, steps=3, strength=0.0)
    for image, (out, result) in zip([clean, noisy], batched):
        alone_out, alone = tune(image, RECIPE, tiny_scorer, steps=3, strength=0.0)
        assert [o["name"] for o, s in zip(result.ops, RECIPE.stages) if o["params"] != s.op.identity] == \
            [o["name"] for o, s in zip(alone.ops, RECIPE.stages) if o["params"] != s.op.identity]
        assert float((out - alone_out).abs().max()) <= 1 / 255
    assert "noisy" in batched[1][1].note and "noisy" not in batched[0][1].note


@pytest.mark.parametrize("steps", [0, 3])
def test_a_noisy_photo_started_from_a_predictor_gets_only_the_when_noisy_operator(  # type: ignore[no-untyped-def]
        tiny_scorer: Scorer, stage_predictors, steps: int) -> None:
    noisy = _noised(_smooth(), 20 / 255)
    nets = stage_predictors(RECIPE, 30)
    out, result = tune(noisy, RECIPE, tiny_scorer, steps=steps, predictor=combine(RECIPE, nets), patience=3)
    alone, expected = tune(noisy, RECIPE.alone(2), tiny_scorer, steps=steps, predictor=nets[2], patience=3)
    assert [o["params"] for o in result.ops[:2]] == [s.op.identity for s in RECIPE.stages[:2]]
    assert result.predicted is not None and expected.predicted is not None
    assert result.predicted[2] == expected.predicted[0] and result.ops[2] == expected.ops[0]
    assert torch.equal(out, alone) and result.steps == expected.steps
    assert "denoise was tuned alone because the photo is noisy" in result.note, result.note
