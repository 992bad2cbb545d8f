"""Parameters: human units (as in recipes and records) <-> the unconstrained values the optimiser
moves (each :class:`enhance.ops.ParamSpec` maps them through a sigmoid into its bounds), and the
pull toward the identity that keeps a climb from wandering."""

from __future__ import annotations

from typing import Sequence

import torch

from enhance.recipe import Recipe
from enhance.render import Params

Unconstrained = list[dict[str, torch.Tensor]]   # one dict per stage: name -> (B,) unconstrained values
DECIMALS = 6  # places a record (sidecar, fitted.toml) keeps of each parameter value


def unconstrained(recipe: Recipe, batch: int, device: torch.device | str) -> Unconstrained:
    """The recipe's start values as (batch,) unconstrained tensors, detached."""
    return [
        {s.name: s.unbounded(torch.full((batch,), float(stage.start[s.name]), device=device)).detach()
         for s in stage.specs}
        for stage in recipe.stages
    ]


def bounded(recipe: Recipe, u: Unconstrained) -> Params:
    """Human-unit parameters from unconstrained ones."""
    return [{s.name: s.bounded(ui[s.name]) for s in stage.specs} for stage, ui in zip(recipe.stages, u)]


def identity_pull(recipe: Recipe, params: Params, *, from_start: bool = False) -> torch.Tensor:
    """(B,) squared distance from the identity (``from_start``: from the recipe's start values),
    each parameter scaled by its operator's default range."""
    total = torch.zeros_like(next(iter(params[0].values())))
    for stage, p in zip(recipe.stages, params):
        default = {s.name: s for s in stage.op.params}
        for s in stage.specs:
            d = default[s.name]
            centre = stage.start[s.name] if from_start else d.identity
            total = total + ((p[s.name] - centre) / (d.hi - d.lo)) ** 2
    return total


def params_from_values(recipe: Recipe, values: Sequence[dict[str, float]], device: torch.device | str = "cpu") -> Params:
    """Human-unit values (as recorded in a sidecar) as the (1,) tensors ``render`` takes."""
    return [{s.name: torch.tensor([float(v[s.name])], device=device) for s in st.specs}
            for st, v in zip(recipe.stages, values)]


def recorded_values(params: Params) -> list[dict[str, float]]:
    """(1,) human-unit ``params`` as a record holds them: plain floats rounded to ``DECIMALS`` places."""
    return [{k: round(float(v), DECIMALS) for k, v in p.items()} for p in params]


def values_of(recipe: Recipe, u: Unconstrained) -> list[dict[str, float]]:
    """Human-unit values of (1,) unconstrained parameters, as plain floats rounded as recorded."""
    with torch.no_grad():
        return recorded_values(bounded(recipe, u))


def recorded(recipe: Recipe, params: Params) -> Params:
    """(1,) ``params`` rounded to ``DECIMALS`` places, as a record holds them: a result rendered
    with these is the one `enhance apply` renders again from the record, bit for bit."""
    device = next(iter(params[0].values())).device if params and params[0] else "cpu"
    return params_from_values(recipe, recorded_values(params), device)


def identity_values(recipe: Recipe) -> list[dict[str, float]]:
    """Each stage's identity in human units, clamped to the recipe's bounds."""
    return [{s.name: min(max(s.identity, s.lo), s.hi) for s in stage.specs} for stage in recipe.stages]

