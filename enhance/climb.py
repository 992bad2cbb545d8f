"""The one optimiser loop: Adam on per-photo parameters (each photo of a batch its own, one scorer
call per step for all of them) or on one shared parameter set, and Nelder-Mead (scipy,
derivative-free) as the alternative on the same objective.

The objective of a photo is the mean predicted score over its views (:class:`enhance.views.Views`)
minus ``strength`` times the pull toward the identity (:func:`enhance.params.identity_pull`; the
recipe's ``strength``, or for HDR input its ``hdr_strength`` and toward the start, global Reinhard
at the scene's white point with its contrast lowered where the scene spans more than well-rated
photos, :func:`enhance.render.scene_start`; :meth:`enhance.recipe.Recipe.pull`);
the optimiser moves unconstrained values (:mod:`enhance.params`). Guards against gaming the scorer:
bounded parameters, the identity pull, several views scored together and the best parameters kept,
not the last.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from enhance.fidelity import hdr_objective
from enhance.params import Unconstrained, bounded, identity_pull, identity_values, recorded, unconstrained, values_of
from enhance.recipe import Recipe
from enhance.render import Params, Source, check_finite, hdr_start, pipeline
from enhance.result import Opinion
from enhance.views import Views
from nima import Scorer, mean_score

OnStep = Callable[[int, float], None]


class _DeterministicKernels:
    """Process-wide PyTorch flags held while any tuning loop runs on CUDA: the first to enter sets
    them, the last to leave restores them (``enhance batch --jobs N`` tunes in N threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.saved: tuple[bool, bool, bool, bool] = (False, False, False, False)

    def enter(self) -> None:
        with self.lock:
            if self.users == 0:
                self.saved = (torch.are_deterministic_algorithms_enabled(),
                              torch.is_deterministic_algorithms_warn_only_enabled(),
                              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
                if not self.saved[0]:  # a caller's own setting is left alone
                    torch.use_deterministic_algorithms(True, warn_only=True)
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            self.users += 1

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                algorithms, warn_only, cudnn_deterministic, cudnn_benchmark = self.saved
                torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_deterministic, cudnn_benchmark


_KERNELS = _DeterministicKernels()


@contextlib.contextmanager
def repeatable(device: torch.device) -> Iterator[None]:
    """On CUDA, PyTorch's deterministic kernels (cuDNN's included, no autotuning) inside a tuning
    loop, forward and backward passes alike: some default kernels accumulate gradients in a
    varying order, and a climb that differs in the last bit can end elsewhere. Warns rather than
    fails on a kernel with no deterministic version; a caller's own setting is left alone, and the
    flags are restored when the last concurrent loop ends. Elsewhere, nothing to do."""
    if device.type != "cuda":
        yield
        return
    _KERNELS.enter()
    try:
        yield
    finally:
        _KERNELS.leave()


class Adam:
    """Adam (Kingma & Ba, 2015; PyTorch's defaults: betas 0.9 and 0.999, eps 1e-8, the same update
    as ``torch.optim.Adam``'s single-tensor path) on a few parameter tensors, each with its own step
    count; a tensor whose gradient is None does not move and its moments are kept.

    Written out because constructing any ``torch.optim`` optimiser imports ``torch._dynamo``, which
    takes about a second on a 2-core CPU: as long as a predicted photo's refining steps
    (benchmarks/RESULTS.md, "Fast path")."""

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, leaves: Sequence[torch.Tensor], lr: float) -> None:
        self.leaves, self.lr = list(leaves), lr
        self.moments = [(torch.zeros_like(t), torch.zeros_like(t)) for t in self.leaves]
        self.counts = [0] * len(self.leaves)

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        for k, (t, (m, v)) in enumerate(zip(self.leaves, self.moments)):
            if t.grad is None:
                continue
            self.counts[k] += 1
            n = self.counts[k]
            m.lerp_(t.grad, 1 - b1)
            v.mul_(b2).addcmul_(t.grad, t.grad, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(1 - b2 ** n)).add_(self.eps)
            t.addcdiv_(m, denom, value=-self.lr / (1 - b1 ** n))


def adam(leaves: Sequence[torch.Tensor], step: Callable[[int], Sequence[torch.Tensor] | None], *, steps: int,
         lr: float, device: torch.device) -> None:
    """The Adam loop: for each of ``steps`` steps, ``step(i)`` evaluates the objective and sets the
    gradients of ``leaves`` (to be minimised), returning the leaves that must not move this step,
    or None to stop; every gradient set must be finite (TuneError otherwise). Repeatable on CUDA."""
    opt = Adam(leaves, lr)
    with repeatable(device):  # forward and backward passes alike
        for i in range(1, steps + 1):
            for t in opt.leaves:
                t.grad = None
            frozen = step(i)
            if frozen is None:
                break
            for t in opt.leaves:
                if t.grad is not None:
                    check_finite(t.grad, "the gradients")
            for t in frozen:
                t.grad = None  # a frozen parameter does not move
            opt.step()


class Objective:
    """The tuner's objective on several photos, each with its own parameters and recipe: mean score
    over the photo's views minus a strength times the identity pull (``strength`` for every photo; None:
    each recipe's :meth:`Recipe.pull` for its kind of input; HDR input is pulled toward its recipe's
    start values instead of the identity), plus, for HDR input, the
    weighted structural fidelity of the rendered views to the same views of the scene
    (:func:`enhance.fidelity.hdr_objective`). Views are built once per photo. ``recipes[i]`` is
    photo ``i``'s recipe (the candidates of a ``select = "best"`` recipe are one photo several times,
    each with one operator)."""

    def __init__(self, sources: Sequence[Source], recipes: Sequence[Recipe], scorer: Scorer, *,
                 strength: float | None, crops: int, seed: int) -> None:
        self.sources, self.recipes, self.scorer = list(sources), list(recipes), scorer
        # the pull toward the identity (HDR: the start): ``strength`` for every photo, or each recipe's for its kind of input
        self.strengths = [r.pull(s.linear) if strength is None else strength for s, r in zip(self.sources, self.recipes)]
        self.crops, self.seed, self.size = crops, seed, scorer.input_size
        self.views = [Views.of(s.image, r, crops, self.size, seed) for s, r in zip(self.sources, self.recipes)]
        self.scenes = [v.render(self.size) if s.linear and r.fidelity else None
                       for v, s, r in zip(self.views, self.sources, self.recipes)]
        # the input's own views depend only on the photo and the proxy size: scored once for all the
        # candidates of a photo (a select = "best" recipe climbs one per operator)
        self._input_opinions: dict[tuple[int, int], Opinion] = {}

    def __call__(self, idx: Sequence[int], u: Sequence[Unconstrained]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(objective, per-view score distributions) of photos ``idx``, ``u[k]`` the parameters of
        photo ``idx[k]``; one scorer call."""
        params = [bounded(self.recipes[i], uk) for i, uk in zip(idx, u)]
        shots = [self.views[i].render(self.size, pipeline(self.recipes[i], p, self.sources[i].linear))
                 for i, p in zip(idx, params)]
        dists = list(self.scorer(torch.cat(shots)).split([s.shape[0] for s in shots]))
        objs = [mean_score(d).mean()
                - self.strengths[i] * identity_pull(self.recipes[i], p, from_start=self.sources[i].linear).sum()
                + self._fidelity(i, shot) for i, d, p, shot in zip(idx, dists, params, shots)]
        return objs, dists

    def _fidelity(self, i: int, shot: torch.Tensor) -> torch.Tensor | float:
        scene = self.scenes[i]
        return hdr_objective(shot, scene, self.recipes[i].fidelity) if scene is not None else 0.0

    @torch.no_grad()
    def before(self, i: int, dist0: torch.Tensor) -> Opinion:
        """Photo ``i``'s input on the tuning views: ``dist0`` (the pipeline at its start) for a
        photo climbing from the identity; for HDR radiance, whose pipeline start need not be the input,
        its rendering before tuning, and for a climb from other start values, the views of the input
        as displayed."""
        source, recipe = self.sources[i], self.recipes[i]
        if not source.linear and all(st.start == identity for st, identity in zip(recipe.stages, identity_values(recipe))):
            return Opinion.of(dist0)
        key = (id(source), recipe.proxy)
        if key not in self._input_opinions:
            self._input_opinions[key] = Opinion.of(self.scorer(Views.of(source.plain, recipe, self.crops, self.size,
                                                                        self.seed).render(self.size)))
        return self._input_opinions[key]


@dataclass
class Climb:
    """Where one photo's climb ended, before the full-resolution render."""

    source: Source
    recipe: Recipe
    params: Params          # the best parameters found, human units, rounded as recorded
    before: Opinion         # the objective's views of the input
    after: Opinion          # the objective's views with the best parameters
    steps: int
    evaluations: int
    optimizer: str
    history: list[float]    # mean score over the views at the start and after each evaluation
    seconds: float          # tuning time

    @property
    def gain(self) -> float:
        """How much the proxy score rose: after minus before, on 1..10."""
        return self.after.mean - self.before.mean


@dataclass
class Track:
    """One photo's climb so far: the best unconstrained parameters, their objective and views'
    scores, the mean-score history, evaluations, steps and steps since the best."""

    best_u: Unconstrained
    best_obj: float
    best_dist: torch.Tensor
    history: list[float]
    evaluations: int = 1
    steps: int = 0
    since_best: int = 0

    def record(self, step: int, obj: torch.Tensor, dist: torch.Tensor, u: Unconstrained) -> None:
        self.evaluations += 1
        self.steps = step
        self.history.append(float(mean_score(dist.detach()).mean()))
        if float(obj.detach()) > self.best_obj + 1e-4:
            self.best_obj, self.best_dist, self.since_best = float(obj.detach()), dist.detach(), 0
            self.best_u = [{k: v.detach().clone() for k, v in d.items()} for d in u]
        else:
            self.since_best += 1


def climb(
    sources: Sequence[Source], recipe: Recipe | Sequence[Recipe], scorer: Scorer, *, steps: int | None = None,
    strength: float | None = None, seed: int = 0, optimizer: str = "adam", lr: float = 0.15, crops: int = 2,
    patience: int = 12, on_step: OnStep | None = None,
) -> list[Climb]:
    """Climb each photo's own parameters of ``recipe`` (all stages together) on its views, from the
    recipe's start values (for HDR input, `tonemap` from the scene's own start:
    :func:`enhance.render.scene_start`); ``recipe`` may be one recipe per photo (a photo may come several times,
    e.g. once per candidate operator: each climb is the same as climbing it alone, to within the
    float32 rounding that differs with the batch size).

    ``optimizer`` "adam": one scorer call per step on the views of all photos still climbing, each
    photo with its own best-so-far and early stop after ``patience`` steps without a gain; a photo's
    ``seconds`` is the shared time over the number of photos; ``on_step(step, score)`` gets the mean
    score of the photos climbing at that step. "nelder-mead": one photo after another,
    ``on_step(evaluation, score)``. ``steps`` defaults to the (first) recipe's; ``strength``, the
    pull toward the identity for every photo, to each photo's recipe's (:meth:`Recipe.pull`)."""
    if optimizer not in ("adam", "nelder-mead"):
        raise ValueError(f"unknown optimizer {optimizer!r}: use 'adam' or 'nelder-mead'")
    recipes = [recipe] * len(sources) if isinstance(recipe, Recipe) else list(recipe)
    if len(recipes) != len(sources):
        raise ValueError(f"{len(recipes)} recipes for {len(sources)} photos")
    recipes = [hdr_start(r, s.start) if s.start is not None else r for s, r in zip(sources, recipes)]
    if not recipes:
        return []
    steps = recipes[0].steps if steps is None else steps
    t0 = time.perf_counter()
    objective = Objective(sources, recipes, scorer, strength=strength, crops=crops, seed=seed)
    everyone = list(range(len(sources)))
    u0 = [unconstrained(r, 1, s.image.device) for s, r in zip(sources, recipes)]
    with torch.no_grad():
        objs0, dists0 = objective(everyone, u0)
        before = [objective.before(i, d) for i, d in enumerate(dists0)]
    for o in objs0:
        check_finite(o, "the score")
    tracks = [Track(list(u), float(o), d, [float(mean_score(d).mean())]) for u, o, d in zip(u0, objs0, dists0)]
    if optimizer == "adam" and steps > 0:
        _adam_photos(objective, tracks, u0, steps=steps, lr=lr, patience=patience, device=scorer.device,
                     on_step=on_step)
    elif optimizer == "nelder-mead" and steps > 0:
        for i in everyone:
            with repeatable(scorer.device):
                nelder_mead(lambda u: objective([i], [u]), tracks[i], u0[i], steps, on_step)
    seconds = (time.perf_counter() - t0) / max(len(sources), 1)
    with torch.no_grad():
        return [Climb(s, r, recorded(r, bounded(r, t.best_u)), b, Opinion.of(t.best_dist), t.steps, t.evaluations,
                      optimizer, [round(h, 5) for h in t.history], seconds)
                for s, r, t, b in zip(sources, recipes, tracks, before)]


def _adam_photos(objective: Objective, tracks: list[Track], u0: list[Unconstrained], *, steps: int, lr: float,
                 patience: int, device: torch.device, on_step: OnStep | None) -> None:
    """Adam on every photo's own parameters, from ``u0``; ``tracks`` keep each photo's best."""
    live = [[{k: v.clone().requires_grad_(True) for k, v in d.items()} for d in u] for u in u0]
    active = list(range(len(u0)))

    def step(i: int) -> list[torch.Tensor] | None:
        nonlocal active
        if not active:
            return None
        objs, dists = objective(active, [live[k] for k in active])
        for o in objs:
            check_finite(o, "the score")
        (-torch.stack(objs).sum()).backward()
        stopped = []
        for k, obj, dist in zip(active, objs, dists):
            tracks[k].record(i, obj, dist, live[k])
            if tracks[k].since_best >= patience:
                stopped.append(k)
        if on_step:
            on_step(i, sum(tracks[k].history[-1] for k in active) / len(active))
        active = [k for k in active if k not in stopped]
        return [t for k in stopped for d in live[k] for t in d.values()]

    adam([t for u in live for d in u for t in d.values()], step, steps=steps, lr=lr, device=device)


def nelder_mead(objective: Callable[[Unconstrained], tuple[list[torch.Tensor], list[torch.Tensor]]], track: Track,
                u0: Unconstrained, steps: int, on_step: OnStep | None) -> None:
    """Derivative-free search (scipy's Nelder-Mead) on one photo's ``objective`` from ``u0``;
    ``steps`` bounds the iterations. ``track`` gets the best point, every evaluation's mean score,
    the iterations (as steps) and the evaluations."""
    from scipy.optimize import minimize

    keys = [(i, k) for i, d in enumerate(u0) for k in d]
    x0 = np.array([float(u0[i][k]) for i, k in keys])
    device = next(iter(u0[0].values())).device
    best: dict[str, Any] = {"obj": -math.inf}
    count = [0]

    def unpack(x: np.ndarray) -> Unconstrained:
        u: Unconstrained = [dict() for _ in u0]
        for (i, k), v in zip(keys, x):
            u[i][k] = torch.tensor([v], dtype=torch.float32, device=device)
        return u

    def f(x: np.ndarray) -> float:
        with torch.no_grad():
            (obj,), (dist,) = objective(unpack(x))
        check_finite(obj, "the score")
        count[0] += 1
        track.history.append(float(mean_score(dist).mean()))
        if float(obj) > best["obj"]:
            best.update(obj=float(obj), dist=dist, x=x.copy())
        if on_step:
            on_step(count[0], track.history[-1])
        return -float(obj)

    res = minimize(f, x0, method="Nelder-Mead",
                   options={"maxiter": steps, "xatol": 1e-3, "fatol": 1e-4,
                            "initial_simplex": np.vstack([x0] + [x0 + 0.5 * e for e in np.eye(len(x0))])})
    track.best_u, track.best_obj, track.best_dist = unpack(best["x"]), best["obj"], best["dist"]
    track.steps, track.evaluations = int(res.nit), count[0] + 1


def shared_adam(
    leaves: Sequence[torch.Tensor], grads_of: Callable[[int], tuple[float, float]], *, recipe: Recipe,
    u: Unconstrained, strength: float, steps: int, lr: float, device: torch.device, on_step: OnStep | None = None,
) -> tuple[list[dict[str, float]], list[float]]:
    """Adam on one parameter set ``u`` (whose tensors are ``leaves``) shared by many photos.
    ``grads_of(step)`` sets the leaves' gradients of minus the mean score of that step's photos and
    returns that mean score and the photo count; the identity pull is added here. Returns the
    values of the step with the best objective (human units) and the mean-score history."""
    history: list[float] = []
    best, best_obj = values_of(recipe, u), -math.inf

    def step(i: int) -> list[torch.Tensor]:
        nonlocal best, best_obj
        score, _ = grads_of(i)
        penalty = strength * identity_pull(recipe, bounded(recipe, u)).sum()
        penalty.backward()
        history.append(round(score, 5))
        obj = history[-1] - float(penalty.detach())
        if obj > best_obj:
            best, best_obj = values_of(recipe, u), obj
        if on_step:
            on_step(i, history[-1])
        return []

    adam(leaves, step, steps=steps, lr=lr, device=device)
    return best, history

