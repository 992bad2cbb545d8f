"""What tuning reports: predicted opinions, the result of one tune, and the sidecar record.

Two figures, never mixed up: the *score* is the scorer's opinion of the whole photo (what
``enhance score`` says of the file), the headline everywhere; the *objective* is what the tuner
climbs, the mean over its proxy and detail views (:mod:`enhance.views`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from enhance.params import recorded_values
from enhance.recipe import Recipe
from enhance.render import Params
from nima import Scorer, mean_score, std_score


@dataclass
class Opinion:
    """A predicted opinion: mean and std on 1..10 and the 10-bucket distribution."""

    mean: float
    std: float
    dist: list[float]

    @classmethod
    def of(cls, dist: torch.Tensor) -> "Opinion":
        d = dist.float().mean(0)  # averaged over views
        return cls(float(mean_score(d[None])), float(std_score(d[None])), [round(float(v), 6) for v in d])


@dataclass
class TuneResult:
    """What tuning did: operators and parameters (human units), scores, steps and timings.

    ``score``: the headline, the whole-photo opinion (as ``enhance score``) of the input as
    displayed ("before") and of the image returned ("after"). ``objective``: what the tuner
    climbed, "before" and "after", each on the tuning views ("proxy") and on the full render's
    views ("full"; for a photo started from a prediction, the views of its render at detail scale,
    as :func:`enhance.tune.finish_predicted` decides there, and the headline likewise). ``predicted``: the parameters a predictor gave, where the climb started
    (None: it started from the recipe's start values); ``ops`` holds the ones returned."""

    ops: list[dict[str, Any]]
    score: dict[str, Opinion]
    objective: dict[str, dict[str, Opinion]]
    steps: int
    evaluations: int
    optimizer: str
    seed: int
    kept_input: bool
    note: str
    history: list[float]
    seconds: dict[str, float] = field(default_factory=dict)
    hdr_scale: float | None = None      # HDR input: the gain applied to the radiance first (hdr_scale())
    predicted: list[dict[str, Any]] | None = None  # a predictor's parameters the climb started from (as ``ops``)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def values(self) -> list[dict[str, float]]:
        return [dict(o["params"]) for o in self.ops]


def ops_record(recipe: Recipe, params: Params) -> list[dict[str, Any]]:
    """[{"name": operator, "params": {name: value}}] per stage, human units rounded as recorded
    (:func:`enhance.params.recorded_values`)."""
    return [{"name": st.op.name, "params": v} for st, v in zip(recipe.stages, recorded_values(params))]


def package_version() -> str:
    try:
        return version("enhance")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def sidecar_record(src: str | Path, src_sha256: str, out: str | Path, recipe: Recipe, result: TuneResult,
                   scorer: Scorer, seconds: dict[str, float]) -> dict[str, Any]:
    """The JSON sidecar written beside an output: input and output, recipe, the result, the weights
    and the package version; ``seconds`` (read, tune, render, write; ``tune`` files also wait: for the
    full decode of a JPEG tuned on its draft) replaces the result's."""
    return {"input": str(src), "input_sha256": src_sha256, "output": str(out), "recipe": recipe.name,
            **result.as_dict(), "weights": scorer.weights, "weights_sha256": scorer.weights_sha256,
            "version": package_version(), "seconds": seconds}
