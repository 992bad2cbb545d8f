"""One parameter set for a whole set of photos: the photos' tuning views, their scores with
given values, the mini-batch gradients of a shared climb (:func:`enhance.climb.shared_adam`), and
the judgement of its result. :func:`enhance.tune.fit_shared` is the public entry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from enhance.climb import OnStep, shared_adam
from enhance.io import Photo, read
from enhance.params import (
    Unconstrained, bounded, identity_pull, identity_values, params_from_values, unconstrained, values_of,
)
from enhance.recipe import Recipe
from enhance.render import Params, Source, check_finite, check_hdr, pipeline
from enhance.views import Views
from nima import Scorer, mean_score


@dataclass
class SharedFit:
    """One parameter set fitted to a set of photos.

    ``values``: one dict per stage, human units. ``before`` / ``after``: the mean objective score
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


class SharedSet:
    """The tuning views of a set of photos (this rank's, when ``distributed``) for a shared fit,
    and the mean score of the photos as they are (``before``) over every rank's ``count`` photos."""

    def __init__(self, images: Iterable[torch.Tensor | Photo | str | Path], recipe: Recipe, scorer: Scorer, *,
                 crops: int, seed: int, distributed: bool) -> None:
        self.recipe, self.scorer, self.distributed = recipe, scorer, distributed
        self.device, self.size = scorer.device, scorer.input_size
        self.items: list[tuple[Views, bool]] = []
        plain_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for item in images:
                if isinstance(item, torch.Tensor):
                    image, lin = item.to(self.device), False
                else:
                    photo = item if isinstance(item, Photo) else read(item)
                    image, lin = photo.image.to(self.device), photo.linear
                if lin:
                    check_hdr(recipe)
                source = Source.of(image, lin)
                self.items.append((Views.of(source.image, recipe, crops, self.size, seed), lin))
                plain_sum += float(scorer.mean(Views.of(source.plain, recipe, crops, self.size, seed)
                                               .render(self.size)).mean())
        totals = self.all_sum(torch.tensor([float(len(self.items)), float(plain_sum)], dtype=torch.float64,
                                           device=self.device))
        self.count = int(totals[0])
        if self.count == 0:
            raise ValueError("no images to fit")
        self.before = float(totals[1]) / self.count

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        return _all_sum(t, self.distributed)

    def scores(self, batch: list[tuple[Views, bool]], params: Params) -> torch.Tensor:
        """(len(batch),) mean score per photo over its views, one scorer call."""
        shots = [v.render(self.size, pipeline(self.recipe, params, lin)) for v, lin in batch]
        per_view = mean_score(self.scorer(torch.cat(shots)))
        return torch.stack([s.mean() for s in per_view.split([s.shape[0] for s in shots])])

    def set_score(self, values: list[dict[str, float]], batch_size: int) -> float:
        """Mean score over every rank's photos with ``values``."""
        params = params_from_values(self.recipe, values, self.device)
        with torch.no_grad():
            got = sum((float(self.scores(self.items[i: i + batch_size], params).sum())
                       for i in range(0, len(self.items), batch_size)), 0.0)
        return float(self.all_sum(torch.tensor(got, dtype=torch.float64, device=self.device))) / self.count

    def gradients(self, u: Unconstrained, leaves: list[torch.Tensor], batch_size: int,
                  seed: int) -> Callable[[int], tuple[float, float]]:
        """``grads_of(step)`` for :func:`enhance.climb.shared_adam`: the next mini-batch (reshuffled
        every pass) scored, minus its score's gradient averaged over every rank's photos."""
        gen = np.random.default_rng([seed, torch.distributed.get_rank() if self.distributed else 0])
        order: list[int] = []

        def grads_of(step: int) -> tuple[float, float]:
            nonlocal order
            if len(order) < min(batch_size, len(self.items)):
                order += gen.permutation(len(self.items)).tolist()
            batch, order = [self.items[i] for i in order[:batch_size]], order[batch_size:]
            params = bounded(self.recipe, u)
            total = self.scores(batch, params).sum() if batch else torch.zeros((), device=self.device)
            check_finite(total, "the score")
            if batch:
                (-total).backward()
            grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves]
            tail = torch.tensor([float(len(batch)), float(total.detach())], device=self.device)
            flat = self.all_sum(torch.cat([g.reshape(-1) for g in grads] + [tail]))
            seen = float(flat[-2])
            for t, g in zip(leaves, flat[:-2].split([t.numel() for t in leaves])):
                t.grad = (g / seen).reshape(t.shape)
            return float(flat[-1]) / seen, seen

        return grads_of

    def fit(self, *, steps: int, batch_size: int, seed: int, strength: float, lr: float,
            on_step: OnStep | None) -> SharedFit:
        """Adam on one parameter set over the mini-batches, then the judgement (see :func:`fit_shared`)."""
        recipe = self.recipe
        u = [{k: v.clone().requires_grad_(True) for k, v in d.items()} for d in unconstrained(recipe, 1, self.device)]
        leaves = [t for d in u for t in d.values()]
        best, history = shared_adam(leaves, self.gradients(u, leaves, batch_size, seed), recipe=recipe, u=u,
                                    strength=strength, steps=steps, lr=lr, device=self.device, on_step=on_step)

        def pull(values: list[dict[str, float]]) -> float:
            return strength * float(identity_pull(recipe, params_from_values(recipe, values)).sum())

        # The last step's values were never scored, and the best step's only on its mini-batch: judge
        # both on the whole set, keep the better, and keep the photos unless it beats them.
        judged = [(score - pull(v), score, v) for v in (best, values_of(recipe, u))
                  for score in [self.set_score(v, batch_size)]]
        _, after, fitted = max(judged, key=lambda j: j[0])
        kept = after <= self.before + 1e-4  # batched and single scorer calls round differently
        if kept:
            fitted = identity_values(recipe)
        return SharedFit(fitted, self.before, self.before if kept else after, kept, self.count, steps, history)
