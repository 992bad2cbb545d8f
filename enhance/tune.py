"""The tuner: find operator parameters that raise the scorer's predicted mean score.

Parameters are tuned on small views of the photo, then the full-resolution image is rendered
once. The views are the whole photo at proxy size (long side ``recipe.proxy``) and ``crops``
crops at detail scale (long side up to ``DETAIL``), so that noise, blur and halos are visible to
the scorer; every view is rendered with ``ref_size`` set to its own image's short side, so the
spatial parameters (fractions of the short side) mean the same as in the full render.

Guards against gaming the scorer: bounded parameters, a pull toward identity, several views
scored together, the best parameters kept (not the last), and a final check on the full render:
if the result does not score above the input there, the input is returned unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from enhance.fidelity import hdr_objective
from enhance.recipe import Recipe
from nima import Scorer, mean_score, resize, std_score

DETAIL = 1024   # long side of the detail-scale image the crops come from, pixels
TILE = 1024     # tile side for the full-resolution render, pixels


class TuneError(RuntimeError):
    """Tuning could not produce a valid result (e.g. NaN or Inf appeared)."""


Params = list[dict[str, torch.Tensor]]   # one dict per stage: name -> (B,) tensor in human units


# --- rendering ----------------------------------------------------------------------------


def apply_pipeline(
    image: torch.Tensor, recipe: Recipe, params: Params, ref_size: int | None = None, linear: bool = False
) -> torch.Tensor:
    """Run every stage of ``recipe`` on (B,3,H,W) ``image`` with ``params``.

    ``image`` is sRGB in [0,1], or linear scene radiance when ``linear``: then the first stage
    must be an HDR operator (``op.hdr``), which encodes it for display.
    """
    for i, (stage, p) in enumerate(zip(recipe.stages, params)):
        if linear and i == 0:
            image = stage.op.fn(image, p, ref_size=ref_size, linear=True)
        else:
            image = stage.op.fn(image, p, ref_size=ref_size)
    return image


def check_hdr(recipe: Recipe) -> None:
    """Scene-referred input needs a tone-mapping operator first, and all operators tuned together
    (a single stage tuned alone would be rendered after the others at identity); TuneError otherwise."""
    if recipe.select == "best" and len(recipe.stages) > 1:
        raise TuneError('HDR input needs its operators tuned together: select = "best" takes display-referred '
                        "photos (use --op tonemap or --op tonemap_local)")
    if not recipe.stages[0].op.hdr:
        from enhance import ops

        able = ", ".join(n for n in ops.names() if ops.get(n).hdr) or "none registered"
        raise TuneError(f"HDR input needs a tone-mapping operator first ({able}), "
                        f"not {recipe.stages[0].op.name!r}")


def hdr_scale(radiance: torch.Tensor) -> float:
    """The gain that brings the log-average (geometric mean) luminance of linear ``radiance``
    (B,3,H,W) to middle grey 0.18, Reinhard's key; pixels of zero luminance are left out (1.0 if
    all are). The tuner multiplies HDR input by it once, on the full image, and records it, so that
    tone-mapping operators stay pointwise or local and tiles render alike."""
    from enhance.ops.color import luminance

    y = luminance(radiance.clamp_min(0)).flatten().double()
    y = y[y > 0]
    return float(0.18 / torch.exp2(torch.log2(y).mean())) if y.numel() else 1.0


def display(radiance: torch.Tensor) -> torch.Tensor:
    """The plain display encoding of linear radiance: clip to [0,1], then sRGB."""
    from enhance.ops.color import linear_to_srgb

    return linear_to_srgb(radiance.clamp(0, 1))


def pipeline_halo(recipe: Recipe, params: Params, ref_size: int) -> int:
    """Pixels of context the whole pipeline needs around a tile."""
    return sum(stage.op.halo(p, ref_size) for stage, p in zip(recipe.stages, params))


@torch.no_grad()
def render(image: torch.Tensor, recipe: Recipe, params: Params, tile: int = TILE, linear: bool = False) -> torch.Tensor:
    """Apply the pipeline to a full-resolution (1,3,H,W) image, tile by tile with enough overlap
    that the result equals an untiled render; memory stays bounded by the tile size."""
    _, _, h, w = image.shape
    ref = min(h, w)
    halo = pipeline_halo(recipe, params, ref)
    if h * w <= tile * tile:
        return apply_pipeline(image, recipe, params, ref, linear)
    out = torch.empty_like(image)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            y0, x0 = max(y - halo, 0), max(x - halo, 0)
            y1, x1 = min(y + tile + halo, h), min(x + tile + halo, w)
            piece = apply_pipeline(image[..., y0:y1, x0:x1], recipe, params, ref, linear)
            out[..., y: y + tile, x: x + tile] = piece[..., y - y0: y - y0 + min(tile, h - y), x - x0: x - x0 + min(tile, w - x)]
    return out


def resize_long(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """(B,3,H,W) resized (antialiased) so that max(H,W) <= long_side; never enlarged."""
    h, w = image.shape[-2:]
    scale = long_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(round(h * scale), 1), max(round(w * scale), 1))
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)


# --- views --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Views:
    """What the scorer sees of one photo: the whole proxy and crops at detail scale.

    ``crops`` holds (B,3,c+2m,c+2m) padded crops; after rendering, ``margin`` pixels are trimmed.
    """

    proxy: torch.Tensor
    crops: list[torch.Tensor]
    margin: int
    detail_short: int

    @classmethod
    def of(cls, image: torch.Tensor, recipe: Recipe, crops: int, size: int, seed: int) -> "Views":
        proxy = resize_long(image, recipe.proxy)
        detail = resize_long(image, DETAIL)
        dh, dw = detail.shape[-2:]
        widest = [{s.name: torch.tensor([s.hi]) for s in stage.specs} for stage in recipe.stages]
        margin = pipeline_halo(recipe, widest, min(dh, dw))
        c = min(size, dh, dw)
        margin = min(margin, dh - 1, dw - 1)  # reflection padding needs margin < side
        padded = F.pad(detail, (margin,) * 4, mode="reflect") if margin else detail
        gen = np.random.default_rng(seed)
        boxes = []
        for _ in range(crops):
            y, x = int(gen.integers(0, dh - c + 1)), int(gen.integers(0, dw - c + 1))
            boxes.append(padded[..., y: y + c + 2 * margin, x: x + c + 2 * margin])
        return cls(proxy, boxes, margin, min(dh, dw))

    def render(self, size: int, pipeline: Callable[[torch.Tensor, int | None], torch.Tensor] | None = None) -> torch.Tensor:
        """(V*B,3,size,size): every view passed through ``pipeline(image, ref_size)`` (none: as
        they are) and brought to the scorer's input size."""
        run = pipeline or (lambda im, ref: im)
        out = [run(self.proxy, None)]
        for crop in self.crops:
            r = run(crop, self.detail_short)
            m = self.margin
            out.append(r[..., m: r.shape[-2] - m, m: r.shape[-1] - m])
        return torch.cat([v if v.shape[-2:] == (size, size) else resize(v, (size, size)) for v in out])


# --- results ------------------------------------------------------------------------------


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
    """What tuning did: operators and parameters (human units), scores, steps and timings."""

    ops: list[dict[str, Any]]
    before: dict[str, Opinion]          # "proxy": on the tuning views; "full": on the full render's views
    after: dict[str, Opinion]
    steps: int
    evaluations: int
    optimizer: str
    seed: int
    kept_input: bool
    note: str
    history: list[float]
    seconds: dict[str, float] = field(default_factory=dict)
    hdr_scale: float | None = None      # HDR input: the gain applied to the radiance first (hdr_scale())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def values(self) -> list[dict[str, float]]:
        return [dict(o["params"]) for o in self.ops]


# --- the tuner ----------------------------------------------------------------------------


def _unconstrained(recipe: Recipe, batch: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    return [
        {s.name: s.unbounded(torch.full((batch,), float(stage.start[s.name]), device=device)).detach()
         for s in stage.specs}
        for stage in recipe.stages
    ]


def bounded(recipe: Recipe, u: list[dict[str, torch.Tensor]]) -> Params:
    """Human-unit parameters from unconstrained ones."""
    return [{s.name: s.bounded(ui[s.name]) for s in stage.specs} for stage, ui in zip(recipe.stages, u)]


def identity_pull(recipe: Recipe, params: Params) -> torch.Tensor:
    """(B,) squared distance from the identity, each parameter scaled by its operator's default range."""
    total = torch.zeros_like(next(iter(params[0].values())))
    for stage, p in zip(recipe.stages, params):
        default = {s.name: s for s in stage.op.params}
        for s in stage.specs:
            d = default[s.name]
            total = total + ((p[s.name] - d.identity) / (d.hi - d.lo)) ** 2
    return total


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not torch.isfinite(t).all():
        raise TuneError(f"non-finite values in {what} during tuning")


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


def as_recipe(recipe: Recipe | str | Sequence[str]) -> Recipe:
    """A Recipe as is; a string names a shipped recipe or a TOML file; a list names operators."""
    from enhance.recipe import load_recipe

    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        return load_recipe(recipe)
    return Recipe.from_ops(list(recipe))


@dataclass
class Climb:
    """Where one climb ended, before the full-resolution render (:func:`finish` renders it)."""

    image: torch.Tensor     # (1,3,H,W) as tuned: HDR radiance already multiplied by ``hdr_scale``
    recipe: Recipe
    params: Params          # the best parameters found, human units
    before: Opinion         # the input, on the tuning views
    after: Opinion          # the best parameters, on the tuning views
    steps: int
    evaluations: int
    optimizer: str
    history: list[float]
    seconds: float          # tuning time
    hdr_scale: float | None = None  # HDR input: the gain applied to the radiance (None: a display-referred photo)

    @property
    def linear(self) -> bool:
        """Whether the climb tuned scene-referred radiance."""
        return self.hdr_scale is not None

    @property
    def gain(self) -> float:
        """How much the proxy score rose: after minus before, on 1..10."""
        return self.after.mean - self.before.mean


def tune(
    image: torch.Tensor,
    recipe: Recipe | str | Sequence[str],
    scorer: Scorer | None = None,
    *,
    steps: int | None = None,
    strength: float | None = None,
    seed: int = 0,
    optimizer: str = "adam",
    lr: float = 0.15,
    crops: int = 2,
    patience: int = 12,
    linear: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[torch.Tensor, TuneResult]:
    """Tune ``recipe`` on a (1,3,H,W) sRGB image in [0,1] and render the full-resolution result.

    With ``linear``, the image is scene-referred radiance (>= 0, may exceed 1), the first stage
    must be an HDR tone-mapping operator, the radiance is first multiplied by :func:`hdr_scale`
    (recorded as ``hdr_scale``), and "the input" in scores and in the fallback is the plain display
    encoding (:func:`display`) of the scaled radiance.

    With the recipe's ``select = "best"``, each stage is tuned alone (with everything else as
    given) and the one whose proxy score rose most is kept (:func:`finish_best`).

    ``recipe`` is a Recipe, a shipped recipe's name or TOML path, or a list of operator names;
    ``scorer`` defaults to the shipped weights on the image's device. Returns the output
    (1,3,H,W) in [0,1] on the image's device and a :class:`TuneResult` (parameters in human
    units, scores before and after, steps, timings). ``optimizer`` is ``"adam"`` (gradients) or
    ``"nelder-mead"`` (scipy, derivative-free). Deterministic for a given ``seed`` on one
    device (on CUDA through deterministic kernels; measured: benchmarks/RESULTS.md); a CPU and a
    GPU reach slightly different results.

    >>> image = torch.rand(1, 3, 64, 96) * 0.5          # a dim photo
    >>> out, result = tune(image, ["exposure"], steps=3)
    >>> out.shape, result.ops[0]["name"]
    (torch.Size([1, 3, 64, 96]), 'exposure')
    """
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected a (1,3,H,W) image, got {tuple(image.shape)}")
    recipe = as_recipe(recipe)
    if scorer is None:
        from nima import load_scorer

        scorer = load_scorer(device=image.device)
    if linear:
        check_hdr(recipe)
    up = functools.partial(climb, image, scorer=scorer, steps=steps, strength=strength, seed=seed,
                           optimizer=optimizer, lr=lr, crops=crops, patience=patience, linear=linear, on_step=on_step)
    if recipe.select == "best":
        return finish_best(recipe, [up(recipe.alone(i)) for i in range(len(recipe.stages))], scorer, crops=crops, seed=seed)
    return finish(up(recipe), scorer, crops=crops, seed=seed)


def _pipeline(recipe: Recipe, params: Params, linear: bool) -> Callable[[torch.Tensor, int | None], torch.Tensor]:
    """``recipe`` with ``params`` as the ``pipeline(image, ref_size)`` that :meth:`Views.render` takes."""
    return lambda image, ref: apply_pipeline(image, recipe, params, ref, linear)


def climb(
    image: torch.Tensor, recipe: Recipe, scorer: Scorer, *, steps: int | None, strength: float | None, seed: int,
    optimizer: str, lr: float, crops: int, patience: int, linear: bool,
    on_step: Callable[[int, float], None] | None,
) -> Climb:
    """The tuning of :func:`tune` on the views of (1,3,H,W) ``image`` (all stages together),
    without the full-resolution render. Adam climbs as a batch of one (:func:`climb_batch`)."""
    if optimizer == "adam":
        return climb_batch([image], recipe, scorer, steps=steps, strength=strength, seed=seed, lr=lr, crops=crops,
                           patience=patience, linear=[linear], on_step=on_step)[0]
    if optimizer != "nelder-mead":
        raise ValueError(f"unknown optimizer {optimizer!r}: use 'adam' or 'nelder-mead'")
    scale = hdr_scale(image) if linear else None
    image = image if scale is None else image * scale
    steps = recipe.steps if steps is None else steps
    strength = recipe.strength if strength is None else strength
    size = scorer.input_size
    t0 = time.perf_counter()
    views = Views.of(image, recipe, crops, size, seed)
    u0 = _unconstrained(recipe, 1, image.device)

    scene = views.render(size) if linear else None  # HDR: the structure reference

    def objective(u: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        params = bounded(recipe, u)
        shot = views.render(size, _pipeline(recipe, params, linear))
        dist = scorer(shot)
        fidelity = hdr_objective(shot, scene, recipe.fidelity) if scene is not None else 0
        return mean_score(dist).mean() - strength * identity_pull(recipe, params).sum() + fidelity, dist

    with torch.no_grad():
        start_obj, dist0 = objective(u0)
        before_proxy = _before(scorer, image, recipe, crops, seed, linear, dist0)
    _check_finite(start_obj, "the score")
    history = [float(mean_score(dist0).mean())]
    with repeatable(image.device):
        best_u, _, best_dist, steps_done, evaluations = _nelder_mead(u0, objective, steps, history, on_step)
    with torch.no_grad():
        best = bounded(recipe, best_u)
    return Climb(image, recipe, best, before_proxy, Opinion.of(best_dist), steps_done, evaluations, optimizer,
                 [round(h, 5) for h in history], time.perf_counter() - t0, scale)


@torch.no_grad()
def _before(scorer: Scorer, image: torch.Tensor, recipe: Recipe, crops: int, seed: int, linear: bool,
            dist0: torch.Tensor) -> Opinion:
    """The input's opinion on the tuning views: ``dist0`` (the pipeline at its start) for a photo;
    for HDR radiance, whose pipeline start is not the input, the plain display encoding's."""
    if not linear:
        return Opinion.of(dist0)
    size = scorer.input_size
    return Opinion.of(scorer(Views.of(display(image), recipe, crops, size, seed).render(size)))


def climb_batch(
    images: Sequence[torch.Tensor], recipe: Recipe, scorer: Scorer, *, steps: int | None, strength: float | None,
    seed: int, lr: float, crops: int, patience: int, linear: Sequence[bool],
    on_step: Callable[[int, float], None] | None = None,
) -> list[Climb]:
    """Adam on each (1,3,H,W) image of ``images`` with its own parameters, views, best-so-far and
    early stop, and one scorer call per step on the views of all images still climbing (those that
    stopped leave the batch). One :class:`Climb` per image; each one's ``seconds`` is the shared
    tuning time divided by the number of images. ``on_step(step, score)``: the mean score of the
    images climbing at that step."""
    n, flags = len(images), list(linear)
    scales = [hdr_scale(im) if lin else None for im, lin in zip(images, flags)]
    images = [im if sc is None else im * sc for im, sc in zip(images, scales)]
    steps = recipe.steps if steps is None else steps
    strength = recipe.strength if strength is None else strength
    size = scorer.input_size
    t0 = time.perf_counter()
    views = [Views.of(im, recipe, crops, size, seed) for im in images]
    scenes = [v.render(size) if lin else None for v, lin in zip(views, flags)]  # HDR: the structure reference

    def objective(
        idx: list[int], u: list[list[dict[str, torch.Tensor]]],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        params = [bounded(recipe, u[i]) for i in idx]
        shots = [views[i].render(size, _pipeline(recipe, p, flags[i])) for i, p in zip(idx, params)]
        dists = list(scorer(torch.cat(shots)).split([s.shape[0] for s in shots]))
        objs = [mean_score(d).mean() - strength * identity_pull(recipe, p).sum()
                + (hdr_objective(shot, scene, recipe.fidelity) if scene is not None else 0)
                for d, p, shot, scene in zip(dists, params, shots, [scenes[i] for i in idx])]
        return objs, dists

    u0 = [_unconstrained(recipe, 1, im.device) for im in images]
    everyone = list(range(n))
    with torch.no_grad():
        objs0, dists0 = objective(everyone, u0)
        before_proxy = [_before(scorer, im, recipe, crops, seed, lin, d) for im, lin, d in zip(images, flags, dists0)]
    for o in objs0:
        _check_finite(o, "the score")
    best_u, best_obj, best_dist = list(u0), [float(o) for o in objs0], list(dists0)
    history = [[float(mean_score(d).mean())] for d in dists0]
    evaluations, steps_done, since_best = [1] * n, [0] * n, [0] * n

    live = [[{k: v.clone().requires_grad_(True) for k, v in d.items()} for d in ui] for ui in u0]
    opt = torch.optim.Adam([t for ui in live for d in ui for t in d.values()], lr=lr)
    active = everyone
    with repeatable(next(scorer.parameters()).device):  # forward and backward passes alike
        for step in range(1, steps + 1):
            if not active:
                break
            opt.zero_grad(set_to_none=True)
            objs, dists = objective(active, live)
            for o in objs:
                _check_finite(o, "the score")
            (-torch.stack(objs).sum()).backward()
            stopped = []
            for i, obj, dist in zip(active, objs, dists):
                for t in (t for d in live[i] for t in d.values()):
                    _check_finite(t.grad, "the gradients")  # type: ignore[arg-type]
                evaluations[i] += 1
                steps_done[i] = step
                history[i].append(float(mean_score(dist.detach()).mean()))
                if float(obj.detach()) > best_obj[i] + 1e-4:
                    best_obj[i], best_dist[i], since_best[i] = float(obj.detach()), dist.detach(), 0
                    best_u[i] = [{k: v.detach().clone() for k, v in d.items()} for d in live[i]]
                else:
                    since_best[i] += 1
                if since_best[i] >= patience:
                    stopped.append(i)
                    for d in live[i]:
                        for t in d.values():
                            t.grad = None  # Adam leaves parameters without a gradient alone
            if on_step:
                on_step(step, sum(history[i][-1] for i in active) / len(active))
            active = [i for i in active if i not in stopped]
            opt.step()
    t_tune = (time.perf_counter() - t0) / max(n, 1)
    with torch.no_grad():
        return [Climb(im, recipe, bounded(recipe, best_u[i]), before_proxy[i], Opinion.of(best_dist[i]), steps_done[i],
                      evaluations[i], "adam", [round(h, 5) for h in history[i]], t_tune, scales[i])
                for i, im in enumerate(images)]


@torch.no_grad()
def scored_render(
    image: torch.Tensor, recipe: Recipe, scorer: Scorer, params: Params, *, linear: bool, crops: int, seed: int,
) -> tuple[torch.Tensor, torch.Tensor, Opinion, Opinion, float]:
    """Render (1,3,H,W) ``image`` at full resolution and score it before and after on the same
    views as the tuner: (output, the input as displayed, opinion before, opinion after, seconds)."""
    t0 = time.perf_counter()
    size = scorer.input_size
    output = render(image, recipe, params, linear=linear).clamp_(0, 1)
    _check_finite(output, "the rendered image")
    plain = display(image) if linear else image
    before = Opinion.of(scorer(Views.of(plain, recipe, crops, size, seed).render(size)))
    after = Opinion.of(scorer(Views.of(output, recipe, crops, size, seed).render(size)))
    return output, plain, before, after, time.perf_counter() - t0


def ops_record(recipe: Recipe, params: Params) -> list[dict[str, Any]]:
    """[{"name": operator, "params": {name: value}}] per stage, human units rounded to 6 places."""
    return [{"name": st.op.name, "params": {k: round(float(v), 6) for k, v in p.items()}}
            for st, p in zip(recipe.stages, params)]


def finish(climb: Climb, scorer: Scorer, *, crops: int = 2, seed: int = 0) -> tuple[torch.Tensor, TuneResult]:
    """Render a climb's best parameters at full resolution, and check the render: if it does not
    score above the input there, the input is returned unchanged (``kept_input``)."""
    output, plain, before_full, after_full, t_render = scored_render(
        climb.image, climb.recipe, scorer, climb.params, linear=climb.linear, crops=crops, seed=seed)
    kept = after_full.mean <= before_full.mean
    note = ("the tuned result did not score above the input on the full render; the input is returned unchanged"
            if kept else "improved")
    result = TuneResult(
        ops=ops_record(climb.recipe, climb.params),
        before={"proxy": climb.before, "full": before_full},
        after={"proxy": climb.after, "full": after_full},
        steps=climb.steps, evaluations=climb.evaluations, optimizer=climb.optimizer, seed=seed, kept_input=kept,
        note=note, history=climb.history,
        seconds={"tune": round(climb.seconds, 3), "render": round(t_render, 3)}, hdr_scale=climb.hdr_scale,
    )
    return (plain.clone() if kept else output), result


def finish_best(
    recipe: Recipe, climbs: Sequence[Climb], scorer: Scorer, *, crops: int = 2, seed: int = 0,
) -> tuple[torch.Tensor, TuneResult]:
    """Of stages climbed alone (``climbs[i]``: stage ``i`` of ``recipe``), keep the one whose proxy
    score rose most among those whose full render scores above the input. The climbs are rendered
    in order of their rise until one holds, so usually only one is. The other stages are reported
    at their operator's identity, so the result renders with the whole ``recipe``; if no render
    holds, the input is returned."""
    done: dict[int, tuple[torch.Tensor, TuneResult]] = {}
    held: int | None = None  # the stage kept
    for i in sorted(range(len(climbs)), key=lambda k: -climbs[k].gain):
        done[i] = finish(climbs[i], scorer, crops=crops, seed=seed)
        if not done[i][1].kept_input:
            held = i
            break
    i = 0 if held is None else held
    output, chosen = done[i]
    ops = [{"name": st.op.name, "params": st.op.identity} for st in recipe.stages]
    ops[i] = chosen.ops[0]
    failed = " (not above the input on the full render)"
    gains = ", ".join(f"{st.op.name} {c.gain:+.3f}" + (failed if k in done and k != held else "")
                      for k, (st, c) in enumerate(zip(recipe.stages, climbs)))
    note = (f"{recipe.stages[i].op.name} kept of the operators tuned alone (proxy score gain: {gains})"
            if held is not None else chosen.note)
    seconds = {"tune": round(sum(c.seconds for c in climbs), 3),
               "render": round(sum(r.seconds["render"] for _, r in done.values()), 3)}
    return output, replace(chosen, ops=ops, note=note, seconds=seconds,
                           steps=sum(c.steps for c in climbs), evaluations=sum(c.evaluations for c in climbs))


def _nelder_mead(
    u0: list[dict[str, torch.Tensor]],
    objective: Callable[[list[dict[str, torch.Tensor]]], tuple[torch.Tensor, torch.Tensor]],
    steps: int, history: list[float], on_step: Callable[[int, float], None] | None,
) -> tuple[list[dict[str, torch.Tensor]], float, torch.Tensor, int, int]:
    """Derivative-free search on the same objective; ``steps`` bounds the iterations."""
    from scipy.optimize import minimize

    keys = [(i, k) for i, d in enumerate(u0) for k in d]
    x0 = np.array([float(u0[i][k]) for i, k in keys])
    device = next(iter(u0[0].values())).device
    best: dict[str, Any] = {"obj": -math.inf}
    count = [0]

    def unpack(x: np.ndarray) -> list[dict[str, torch.Tensor]]:
        u: list[dict[str, torch.Tensor]] = [dict() for _ in u0]
        for (i, k), v in zip(keys, x):
            u[i][k] = torch.tensor([v], dtype=torch.float32, device=device)
        return u

    def f(x: np.ndarray) -> float:
        with torch.no_grad():
            obj, dist = objective(unpack(x))
        _check_finite(obj, "the score")
        count[0] += 1
        history.append(float(mean_score(dist).mean()))
        if float(obj) > best["obj"]:
            best.update(obj=float(obj), dist=dist, x=x.copy())
        if on_step:
            on_step(count[0], history[-1])
        return -float(obj)

    res = minimize(f, x0, method="Nelder-Mead",
                   options={"maxiter": steps, "xatol": 1e-3, "fatol": 1e-4,
                            "initial_simplex": np.vstack([x0] + [x0 + 0.5 * e for e in np.eye(len(x0))])})
    return unpack(best["x"]), best["obj"], best["dist"], int(res.nit), count[0] + 1


def params_from_values(recipe: Recipe, values: Sequence[dict[str, float]], device: torch.device | str = "cpu") -> Params:
    """Human-unit values (as recorded in a sidecar) as the (1,) tensors ``render`` takes."""
    return [{s.name: torch.tensor([float(v[s.name])], device=device) for s in st.specs}
            for st, v in zip(recipe.stages, values)]
