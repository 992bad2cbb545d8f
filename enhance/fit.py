"""Tuning many photos at once.

``tune_batch`` tunes a few photos together, each with its own parameters, so that the scorer sees
all their views in one batch (what a GPU wants); it runs the Adam loop that
:func:`enhance.tune.tune` runs on one photo (:func:`enhance.tune.climb_batch`), per photo (own
views, best-so-far, early stopping, kept-input check).

``fit_shared`` fits ONE parameter set to a whole set of photos, maximising their mean score, the
way a camera pipeline or a denoiser's strength is set once for a shoot; ``apply_values`` then
renders any photo with those values. Across torch.distributed ranks the gradients are averaged.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from enhance.io import Photo, read
from enhance.recipe import Recipe
from enhance.tune import (
    Params, TuneResult, Views, _check_finite, _pipeline, _unconstrained, bounded, check_hdr, climb_batch, display,
    finish, finish_best, hdr_scale, identity_pull, ops_record, params_from_values, repeatable, scored_render,
)
from nima import Scorer, mean_score

U = list[dict[str, torch.Tensor]]  # unconstrained parameters, one dict per stage


# --- several photos, each its own parameters ------------------------------------------------------


def tune_batch(
    images: Sequence[torch.Tensor],
    recipe: Recipe,
    scorer: Scorer,
    *,
    steps: int | None = None,
    strength: float | None = None,
    seed: int = 0,
    lr: float = 0.15,
    crops: int = 2,
    patience: int = 12,
    linear: Sequence[bool] | None = None,
) -> list[tuple[torch.Tensor, TuneResult]]:
    """Tune each (1,3,H,W) image of ``images`` (sizes may differ) like ``tune(image, ...)`` with
    Adam, but with one scorer call per step on the views of all images still improving.

    Every image has its own parameters, views, best-so-far and early stop; images that stopped
    leave the batch; HDR radiance is first scaled by its ``hdr_scale``, as in ``tune``; the recipe's
    ``select = "best"`` works as in ``tune`` (display-referred photos only). Returns one
    (output (1,3,H,W) in [0,1], TuneResult) per image, in order; ``seconds["tune"]`` is the shared
    tuning time divided by the number of images.
    """
    n = len(images)
    flags = [False] * n if linear is None else list(linear)
    for im in images:
        if im.dim() != 4 or im.shape[:2] != (1, 3):
            raise ValueError(f"expected (1,3,H,W) images, got {tuple(im.shape)}")
    if any(flags):
        check_hdr(recipe)
    up = functools.partial(climb_batch, images, scorer=scorer, steps=steps, strength=strength, seed=seed, lr=lr,
                           crops=crops, patience=patience, linear=flags)
    if recipe.select == "best":  # each stage alone over the whole batch, then the best per image
        alone = [up(recipe.alone(i)) for i in range(len(recipe.stages))]
        return [finish_best(recipe, [climbs[k] for climbs in alone], scorer, crops=crops, seed=seed) for k in range(n)]
    return [finish(c, scorer, crops=crops, seed=seed) for c in up(recipe)]


# --- one parameter set for a whole set of photos -------------------------------------------------


@dataclass
class SharedFit:
    """One parameter set fitted to a set of photos.

    ``values``: one dict per stage, human units. ``before`` / ``after``: mean predicted score
    (1..10) over the set's tuning views, of the photos as they are and with ``values``.
    ``kept_input``: the fit did not beat the photos as they are, so ``values`` are the identity.
    """

    values: list[dict[str, float]]
    before: float
    after: float
    kept_input: bool
    images: int
    steps: int
    history: list[float]

    def recipe(self, recipe: Recipe) -> Recipe:
        """``recipe`` starting from the fitted values (what ``fitted.toml`` holds)."""
        return recipe.with_values(self.values)


def _all_sum(t: torch.Tensor, distributed: bool) -> torch.Tensor:
    if distributed:
        torch.distributed.all_reduce(t)
    return t


def _identity_values(recipe: Recipe) -> list[dict[str, float]]:
    """Each stage's identity in human units, clamped to the recipe's bounds (a fitted.toml start)."""
    return [{s.name: min(max(s.identity, s.lo), s.hi) for s in st.specs} for st in recipe.stages]


def fit_shared(
    images: Iterable[torch.Tensor | Photo | str | Path],
    recipe: Recipe,
    scorer: Scorer,
    *,
    steps: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    strength: float | None = None,
    lr: float = 0.15,
    crops: int = 2,
    distributed: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> SharedFit:
    """Fit one parameter set maximising the mean score over ``images``: (1,3,H,W) sRGB tensors in
    [0,1], decoded photos, or paths (read with ``enhance.io.read``); HDR photos are tuned as radiance.

    Each photo becomes its tuning views at once (about 3 MB each at the default proxy), then Adam
    runs ``steps`` steps on mini-batches of ``batch_size`` photos (reshuffled every pass, seeded):
    minus the mean score plus ``strength`` times the pull toward identity. With ``distributed``,
    every rank passes its own photos and the score gradients are averaged over all ranks' photos
    (``torch.distributed.all_reduce``), so all ranks take the same steps and return the same fit.
    Finally the values of the last step and of the best step (by its mini-batch objective) are
    scored on the whole set and the better kept; if it does not beat the photos as they are, the
    identity (clamped to the recipe's bounds) is returned instead. HDR radiance is scaled
    by its own ``hdr_scale`` first, as in ``tune``. With the recipe's ``select = "best"``, each
    stage is fitted alone and the one that raised the mean score most is kept, the others at identity;
    photos given as paths are then read once per stage, so that only one stage's views are held.
    """
    if recipe.select == "best":  # one fit per stage alone; keep the one that raised the mean score most
        images = list(images)

        def checked() -> Iterable[torch.Tensor | Photo]:  # read once more by the first fit, refusing HDR
            for item in images:
                photo = item if isinstance(item, (torch.Tensor, Photo)) else read(item)
                if isinstance(photo, Photo) and photo.linear:
                    check_hdr(recipe)
                yield photo

        fits = {i: fit_shared(checked() if i == 0 else images, recipe.alone(i), scorer, steps=steps,
                              batch_size=batch_size, seed=seed, strength=strength, lr=lr, crops=crops,
                              distributed=distributed, on_step=on_step)
                for i in range(len(recipe.stages))}
        values = _identity_values(recipe)
        gains = {i: f.after - f.before for i, f in fits.items() if not f.kept_input}
        i = max(gains, key=lambda k: gains[k]) if gains else 0
        values[i] = fits[i].values[0]
        return replace(fits[i], values=values, steps=sum(f.steps for f in fits.values()))
    steps = recipe.steps if steps is None else steps
    strength = recipe.strength if strength is None else strength
    device = next(scorer.parameters()).device
    size = scorer.input_size
    rank = torch.distributed.get_rank() if distributed else 0
    items: list[tuple[Views, bool]] = []
    plain_sum = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for item in images:
            if isinstance(item, torch.Tensor):
                image, lin = item.to(device), False
            else:
                photo = item if isinstance(item, Photo) else read(item)
                image, lin = photo.image.to(device), photo.linear
            if lin:
                check_hdr(recipe)
                image = image * hdr_scale(image)
            items.append((Views.of(image, recipe, crops, size, seed), lin))
            plain = display(image) if lin else image
            plain_sum += float(scorer.mean(Views.of(plain, recipe, crops, size, seed).render(size)).mean())
    totals = _all_sum(torch.tensor([float(len(items)), float(plain_sum)], dtype=torch.float64, device=device),
                      distributed)
    count = int(totals[0])
    if count == 0:
        raise ValueError("no images to fit")
    before = float(totals[1]) / count

    def scores(batch: list[tuple[Views, bool]], params: Params) -> torch.Tensor:
        """(len(batch),) mean score per photo over its views, one scorer call."""
        shots = [v.render(size, _pipeline(recipe, params, lin)) for v, lin in batch]
        per_view = mean_score(scorer(torch.cat(shots)))
        return torch.stack([s.mean() for s in per_view.split([s.shape[0] for s in shots])])

    @torch.no_grad()
    def values_of(u: U) -> list[dict[str, float]]:
        return [{k: float(v) for k, v in p.items()} for p in bounded(recipe, u)]

    def set_score(values: list[dict[str, float]]) -> float:
        """Mean score over every rank's photos with ``values``."""
        params = params_from_values(recipe, values, device)
        with torch.no_grad():
            got = sum((float(scores(items[i: i + batch_size], params).sum()) for i in range(0, len(items), batch_size)),
                      0.0)
        return float(_all_sum(torch.tensor(got, dtype=torch.float64, device=device), distributed)) / count

    def pull(values: list[dict[str, float]]) -> float:
        return strength * float(identity_pull(recipe, params_from_values(recipe, values)).sum())

    u = [{k: v.clone().requires_grad_(True) for k, v in d.items()} for d in _unconstrained(recipe, 1, device)]
    leaves = [t for d in u for t in d.values()]
    opt = torch.optim.Adam(leaves, lr=lr)
    gen = np.random.default_rng([seed, rank])
    order: list[int] = []
    history: list[float] = []
    best, best_obj = values_of(u), -math.inf
    with repeatable(device):  # forward and backward passes alike
        for step in range(1, steps + 1):
            if len(order) < min(batch_size, len(items)):
                order += gen.permutation(len(items)).tolist()
            batch, order = [items[i] for i in order[:batch_size]], order[batch_size:]
            opt.zero_grad(set_to_none=True)
            params = bounded(recipe, u)
            total = scores(batch, params).sum() if batch else torch.zeros((), device=device)
            _check_finite(total, "the score")
            if batch:
                (-total).backward()
            grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves]
            tail = torch.tensor([float(len(batch)), float(total.detach())], device=device)
            flat = _all_sum(torch.cat([g.reshape(-1) for g in grads] + [tail]), distributed)
            seen = float(flat[-2])
            for t, g in zip(leaves, flat[:-2].split([t.numel() for t in leaves])):
                t.grad = (g / seen).reshape(t.shape)
            penalty = strength * identity_pull(recipe, bounded(recipe, u)).sum()
            penalty.backward()
            for t in leaves:
                _check_finite(t.grad, "the gradients")  # type: ignore[arg-type]
            history.append(round(float(flat[-1]) / seen, 5))
            obj = history[-1] - float(penalty.detach())
            if obj > best_obj:
                best, best_obj = values_of(u), obj
            if on_step:
                on_step(step, history[-1])
            opt.step()

    # The last step's values were never scored, and the best step's only on its mini-batch: judge
    # both on the whole set, keep the better, and keep the photos unless it beats them.
    judged = [(score - pull(v), score, v) for v in (best, values_of(u)) for score in [set_score(v)]]
    _, after, fitted = max(judged, key=lambda j: j[0])
    kept = after <= before + 1e-4  # batched and single scorer calls round differently
    if kept:
        fitted = _identity_values(recipe)
    return SharedFit(fitted, before, before if kept else after, kept, count, steps, history)


def apply_values(
    image: torch.Tensor, recipe: Recipe, values: Sequence[dict[str, float]], scorer: Scorer, *,
    linear: bool = False, seed: int = 0, crops: int = 2, note: str = "shared parameters",
) -> tuple[torch.Tensor, TuneResult]:
    """Render (1,3,H,W) ``image`` at full resolution with fixed ``values`` and score it before and
    after on the same views as ``tune``. Unlike ``tune`` the result is always the rendered image
    (a shared fit is applied to every photo alike); ``kept_input`` is False. HDR radiance is scaled
    by its ``hdr_scale`` first, as in ``tune``."""
    scale = None
    if linear:
        check_hdr(recipe)
        scale = hdr_scale(image)
        image = image * scale
    params = params_from_values(recipe, values, image.device)
    output, _, before, after, seconds = scored_render(image, recipe, scorer, params, linear=linear, crops=crops, seed=seed)
    return output, TuneResult(
        ops=ops_record(recipe, params), before={"full": before}, after={"full": after}, steps=0, evaluations=2,
        optimizer="shared", seed=seed, kept_input=False, note=note, history=[],
        seconds={"tune": 0.0, "render": round(seconds, 3)}, hdr_scale=scale,
    )
