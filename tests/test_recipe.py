"""Recipes: the shipped ones load, bad ones are refused with the line named, TOML round trip."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enhance.recipe import Recipe, RecipeError, builtin_recipes, load_recipe, parse_recipe

GOOD = """description = "test"
steps = 7
proxy = 256
strength = 0.1

[[op]]
name = "exposure"
params.ev = { lo = -1.0, hi = 2.0, start = 0.5 }

[[op]]
name = "contrast"
"""


def test_every_shipped_recipe_loads() -> None:
    names = set(builtin_recipes())
    assert {"auto", "tonemap", "lowlight", "denoise", "portrait"} <= names
    for name in names:
        recipe = load_recipe(name)
        assert recipe.stages and recipe.description


def test_a_recipe_narrows_bounds_and_sets_the_tuner() -> None:
    r = parse_recipe(GOOD)
    assert (r.steps, r.proxy, r.strength) == (7, 256, 0.1)
    ev = r.stages[0].specs[0]
    assert (ev.lo, ev.hi, r.stages[0].start["ev"]) == (-1.0, 2.0, 0.5)
    assert [s.op.name for s in r.stages] == ["exposure", "contrast"]


def test_to_toml_round_trips() -> None:
    r = parse_recipe(GOOD).with_values([{"ev": 1.25}, {"amount": 0.3, "midpoint": 0.45, "saturation": 1.1}])
    back = parse_recipe(r.to_toml())
    assert [s.start for s in back.stages] == [s.start for s in r.stages]
    assert [(p.lo, p.hi) for s in back.stages for p in s.specs] == [(p.lo, p.hi) for s in r.stages for p in s.specs]


def test_select_is_read_written_and_gives_single_stage_recipes() -> None:
    r = parse_recipe('select = "best"\n' + GOOD)
    assert r.select == "best" and parse_recipe(r.to_toml()).select == "best"
    assert parse_recipe(GOOD).select == "all" and "select" not in parse_recipe(GOOD).to_toml()
    alone = r.alone(1)
    assert [s.op.name for s in alone.stages] == ["contrast"] and alone.select == "all"
    assert (alone.steps, alone.proxy, alone.strength) == (r.steps, r.proxy, r.strength)
    assert load_recipe("auto").select == "best"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[op]]\nname = "vignette"\n', r"line 2\): unknown operator 'vignette'"),
        ('[[op]]\nname = "exposure"\nparams.stops = { lo = 0 }\n', r"line 3\): operator 'exposure' has no parameter 'stops'"),
        ('[[op]]\nname = "exposure"\nparams.ev = { lo = -9.0 }\n', r"line 3\): ev: "),
        ('[[op]]\nname = "exposure"\nparams.ev = { lo = nan }\n', r"line 3\): expected a finite number"),
        ('[[op]]\nname = "exposure"\nparams.ev = { hi = 1e308 }\n', r"line 3\): ev: "),
        ('[[op]]\nname = "exposure"\nparams.ev = { lo = 1.0, hi = 0.5 }\n', r"line 3\)"),
        ('[[op]]\nname = "exposure"\nparams.ev = { start = 5.0 }\n', r"line 3\): ev start 5.0 lies outside"),
        ('steps = -1\n[[op]]\nname = "exposure"\n', r"line 1\): steps must be an integer"),
        ('colour = 1\n[[op]]\nname = "exposure"\n', r"line 1\): unknown setting 'colour'"),
        ('select = "first"\n[[op]]\nname = "exposure"\n', r"line 1\): select must be one of 'all', 'best'"),
        ('select = "best"\n[[op]]\nname = "exposure"\n[[op]]\nname = "levels"\nparams.gamma = { lo = 1.2 }\n',
         r"line 6\): levels.gamma range \[1.2, .*\] leaves out its identity 1.0"),
        ('description = "x"\n', "at least one"),
        ("[[op]\n", "invalid TOML"),
    ],
)
def test_bad_recipes_are_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe(text, "bad.toml")


def test_a_missing_recipe_names_the_shipped_ones(tmp_path) -> None:
    with pytest.raises(RecipeError, match="shipped: auto"):
        load_recipe(tmp_path / "nope.toml")


def test_select_best_needs_every_identity_inside_the_bounds() -> None:
    """The operators select = "best" does not choose stay at their identity; the same recipe
    may tune them together from the nearest bound."""
    text = '[[op]]\nname = "exposure"\nparams.ev = { lo = 0.5 }\n'
    assert parse_recipe(text).stages[0].start == {"ev": 0.5}
    with pytest.raises(ValueError, match=r"exposure.ev range \[0.5, .*\] leaves out its identity 0.0"):
        replace(parse_recipe(text), select="best")


def test_from_ops_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="known"):
        Recipe.from_ops(["warp"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_gives_a_recipe_or_a_recipe_error(text: str) -> None:
    try:
        parse_recipe(text, "fuzz.toml")
    except RecipeError as exc:
        assert str(exc).startswith("fuzz.toml") and "\n" not in str(exc).strip()


@settings(max_examples=150, deadline=None)
@given(
    lo=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30)),
    hi=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30)),
)
def test_any_bounds_give_a_valid_recipe_or_a_clean_error(lo: float, hi: float) -> None:
    def toml_number(x: float) -> str:
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(float(x)), repr(x))

    text = f'[[op]]\nname = "exposure"\nparams.ev = {{ lo = {toml_number(lo)}, hi = {toml_number(hi)} }}\n'
    try:
        r = parse_recipe(text, "b.toml")
    except RecipeError:
        return
    spec = r.stages[0].specs[0]
    assert -3.0 <= spec.lo < spec.hi <= 3.0 and spec.lo <= r.stages[0].start["ev"] <= spec.hi
