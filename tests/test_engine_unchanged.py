"""The engine's behaviour is fixed: the cases of ``tests/engine_cases.py`` (Adam, Nelder-Mead,
select = "best", HDR, early stop, a tiled render, tune_batch plain / HDR / best, fit_shared,
on_step callbacks) give the outputs, parameters, scores, step counts and histories recorded in
``tests/data/engine_golden.json``. Counts, names and notes must match exactly, numbers within 1e-4
(float rounding across machines and thread counts, far below any change of behaviour)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from engine_cases import GOLDEN, cases, run, small_scorer

TOLERANCE = 1e-4


def differences(got: Any, want: Any, where: str = "") -> list[str]:
    """Where ``got`` differs from ``want``: every key of ``want`` must be in ``got`` (``got`` may hold
    more, e.g. fields added later), floats within TOLERANCE, everything else equal."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: {got!r} is not a mapping"]
        return [d for k in want for d in (differences(got[k], want[k], f"{where}.{k}") if k in got
                                          else [f"{where}.{k}: missing"])]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: {got!r} != {want!r}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f"{where}[{i}]")]
    if isinstance(want, float) and not isinstance(got, bool) and isinstance(got, (int, float)):
        return [] if math.isclose(got, want, rel_tol=0, abs_tol=TOLERANCE) else [f"{where}: {got} != {want}"]
    return [] if got == want and type(got) is type(want) else [f"{where}: {got!r} != {want!r}"]


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def scorer() -> Any:
    return small_scorer()


@pytest.mark.parametrize("name", sorted(cases()))
def test_engine_case_is_unchanged(name: str, golden: dict[str, Any], scorer: Any) -> None:
    found = differences(run(name, scorer), golden[name], name)
    assert not found, "\n".join(found[:20])


def test_the_comparison_catches_a_change() -> None:
    want = {"steps": 4, "ops": [{"params": {"ev": 0.5}}], "note": "improved"}
    assert not differences({**want, "extra": 1}, want)
    assert differences({**want, "steps": 5}, want)
    assert differences({**want, "ops": [{"params": {"ev": 0.5002}}]}, want)
    assert differences({"steps": 4, "note": "improved"}, want)
