"""The engine behind ``enhance tune`` and ``enhance batch``: find operator parameters that raise
the scorer's predicted score, then render the full-resolution result once.

:func:`tune` takes one photo, :func:`tune_batch` several at once (each its own parameters, one
scorer call per step for all), :func:`fit_shared` fits ONE parameter set to a whole set of photos
(the way a camera pipeline or a denoiser's strength is set once for a shoot) and
:func:`apply_values` renders a photo with fixed values. The climbing is :mod:`enhance.climb`'s, on
the views of :mod:`enhance.views`; the render is :mod:`enhance.render`'s.

Every result is checked on the full render: if it does not score above the input there, the input
is returned unchanged. Scores come in two kinds (:mod:`enhance.result`): the headline *score* of
the whole photo, and the *objective* the tuner climbed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from enhance.climb import Climb, OnStep, climb
from enhance.io import Photo, read
from enhance.params import identity_values, params_from_values
from enhance.recipe import Recipe, as_recipe
from enhance.render import Params, Source, TuneError, check_finite, check_hdr, render
from enhance.result import Opinion, TuneResult, ops_record
from enhance.shared import SharedFit, SharedSet
from enhance.views import Views, whole
from nima import Scorer

__all__ = ["SharedFit", "TuneError", "TuneResult", "apply_values", "fit_shared", "tune", "tune_batch"]


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
    on_step: OnStep | None = None,
) -> tuple[torch.Tensor, TuneResult]:
    """Tune ``recipe`` on a (1,3,H,W) sRGB image in [0,1] and render the full-resolution result.

    With ``linear``, the image is scene-referred radiance (>= 0, may exceed 1), the first stage
    must be an HDR tone-mapping operator, the radiance is first multiplied by
    :func:`enhance.render.hdr_scale` (recorded as ``hdr_scale``), and "the input" in scores and in
    the fallback is its rendering before tuning (:func:`enhance.render.as_displayed`: global Reinhard).

    With the recipe's ``select = "best"``, each stage is tuned alone (with everything else as
    given) and the one whose proxy objective rose most is kept (:func:`finish_best`).

    ``recipe`` is a Recipe, a shipped recipe's name or TOML path, or a list of operator names;
    ``scorer`` defaults to the shipped weights on the image's device. Returns the output
    (1,3,H,W) in [0,1] on the image's device and a :class:`TuneResult` (parameters in human
    units, scores before and after, steps, timings). ``optimizer`` is ``"adam"`` (gradients) or
    ``"nelder-mead"`` (scipy, derivative-free). Deterministic for a given ``seed`` on one
    device (on CUDA through deterministic kernels); a CPU and a GPU reach slightly different results.

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
    return tune_sources([Source.of(image, linear)], recipe, scorer, steps=steps, strength=strength, seed=seed,
                        optimizer=optimizer, lr=lr, crops=crops, patience=patience, on_step=on_step)[0]


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
    flags = [False] * len(images) if linear is None else list(linear)
    for im in images:
        if im.dim() != 4 or im.shape[:2] != (1, 3):
            raise ValueError(f"expected (1,3,H,W) images, got {tuple(im.shape)}")
    if any(flags):
        check_hdr(recipe)
    return tune_sources([Source.of(im, lin) for im, lin in zip(images, flags)], recipe, scorer, steps=steps,
                        strength=strength, seed=seed, lr=lr, crops=crops, patience=patience)


def tune_sources(sources: Sequence[Source], recipe: Recipe, scorer: Scorer, *, crops: int, seed: int,
                 **climbing: Any) -> list[tuple[torch.Tensor, TuneResult]]:
    """:func:`tune_batch` on prepared photos; ``climbing``: :func:`enhance.climb.climb`'s settings.
    With ``select = "best"``, each stage climbs alone over all photos, then each photo keeps its best."""
    if recipe.select == "best":
        alone = [climb(sources, recipe.alone(i), scorer, crops=crops, seed=seed, **climbing)
                 for i in range(len(recipe.stages))]
        return [finish_best(recipe, [climbs[k] for climbs in alone], scorer, crops=crops, seed=seed)
                for k in range(len(sources))]
    return [finish(c, scorer, crops=crops, seed=seed)
            for c in climb(sources, recipe, scorer, crops=crops, seed=seed, **climbing)]


@torch.no_grad()
def photo_score(scorer: Scorer, image: torch.Tensor) -> Opinion:
    """The headline opinion of (1,3,H,W) sRGB ``image``: the whole photo, as ``enhance score`` takes it."""
    return Opinion.of(scorer(whole(image, scorer.input_size)))


@torch.no_grad()
def scored_render(source: Source, recipe: Recipe, scorer: Scorer, params: Params, *, crops: int,
                  seed: int) -> tuple[torch.Tensor, Opinion, Opinion, float]:
    """Render ``source`` at full resolution and take the objective's views of the input as
    displayed and of the render: (output, objective before, objective after, seconds)."""
    t0 = time.perf_counter()
    size = scorer.input_size
    output = render(source.image, recipe, params, linear=source.linear).clamp_(0, 1)
    check_finite(output, "the rendered image")
    before = Opinion.of(scorer(Views.of(source.plain, recipe, crops, size, seed).render(size)))
    after = Opinion.of(scorer(Views.of(output, recipe, crops, size, seed).render(size)))
    return output, before, after, time.perf_counter() - t0


def finish(climb: Climb, scorer: Scorer, *, crops: int = 2, seed: int = 0) -> tuple[torch.Tensor, TuneResult]:
    """Render a climb's best parameters at full resolution, and check the render: if its objective
    does not rise above the input's there, the input is returned unchanged (``kept_input``)."""
    source = climb.source
    output, before_full, after_full, t_render = scored_render(source, climb.recipe, scorer, climb.params,
                                                              crops=crops, seed=seed)
    kept = after_full.mean <= before_full.mean
    note = ("the tuned result did not score above the input on the full render; the input is returned unchanged"
            if kept else "improved")
    returned = source.plain.clone() if kept else output
    result = TuneResult(
        ops=ops_record(climb.recipe, climb.params),
        score={"before": photo_score(scorer, source.plain), "after": photo_score(scorer, returned)},
        objective={"before": {"proxy": climb.before, "full": before_full},
                   "after": {"proxy": climb.after, "full": after_full}},
        steps=climb.steps, evaluations=climb.evaluations, optimizer=climb.optimizer, seed=seed, kept_input=kept,
        note=note, history=climb.history,
        seconds={"tune": round(climb.seconds, 3), "render": round(t_render, 3)}, hdr_scale=source.hdr_scale,
    )
    return returned, result


def finish_best(
    recipe: Recipe, climbs: Sequence[Climb], scorer: Scorer, *, crops: int = 2, seed: int = 0,
) -> tuple[torch.Tensor, TuneResult]:
    """Of stages climbed alone (``climbs[i]``: stage ``i`` of ``recipe``), keep the one whose proxy
    objective rose most among those whose full render scores above the input. The climbs are
    rendered in order of their rise until one holds, so usually only one is. The other stages are
    reported at their operator's identity, so the result renders with the whole ``recipe``; if no
    render holds, the input is returned."""
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
    note = (f"{recipe.stages[i].op.name} kept of the operators tuned alone (proxy objective gain: {gains})"
            if held is not None else chosen.note)
    seconds = {"tune": round(sum(c.seconds for c in climbs), 3),
               "render": round(sum(r.seconds["render"] for _, r in done.values()), 3)}
    return output, replace(chosen, ops=ops, note=note, seconds=seconds,
                           steps=sum(c.steps for c in climbs), evaluations=sum(c.evaluations for c in climbs))


# --- one parameter set for a whole set of photos -------------------------------------------------


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
    on_step: OnStep | None = None,
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
    settings = dict(steps=steps, batch_size=batch_size, seed=seed, strength=strength, lr=lr, crops=crops,
                    distributed=distributed, on_step=on_step)
    if recipe.select == "best":
        return _fit_best(list(images), recipe, scorer, settings)
    fit = SharedSet(images, recipe, scorer, crops=crops, seed=seed, distributed=distributed)
    return fit.fit(steps=recipe.steps if steps is None else steps, batch_size=batch_size, seed=seed,
                   strength=recipe.strength if strength is None else strength, lr=lr, on_step=on_step)


def _fit_best(images: list[Any], recipe: Recipe, scorer: Scorer, settings: dict[str, Any]) -> SharedFit:
    """One fit per stage alone; keep the one that raised the mean score most, the others at identity."""

    def checked() -> Iterable[torch.Tensor | Photo]:  # read once more by the first fit, refusing HDR
        for item in images:
            photo = item if isinstance(item, (torch.Tensor, Photo)) else read(item)
            if isinstance(photo, Photo) and photo.linear:
                check_hdr(recipe)
            yield photo

    fits = {i: fit_shared(checked() if i == 0 else images, recipe.alone(i), scorer, **settings)
            for i in range(len(recipe.stages))}
    values = identity_values(recipe)
    gains = {i: f.after - f.before for i, f in fits.items() if not f.kept_input}
    i = max(gains, key=lambda k: gains[k]) if gains else 0
    values[i] = fits[i].values[0]
    return replace(fits[i], values=values, steps=sum(f.steps for f in fits.values()))


def apply_values(
    image: torch.Tensor, recipe: Recipe, values: Sequence[dict[str, float]], scorer: Scorer, *,
    linear: bool = False, seed: int = 0, crops: int = 2, note: str = "shared parameters",
) -> tuple[torch.Tensor, TuneResult]:
    """Render (1,3,H,W) ``image`` at full resolution with fixed ``values`` and score it before and
    after on the same views as ``tune``. Unlike ``tune`` the result is always the rendered image
    (a shared fit is applied to every photo alike); ``kept_input`` is False. HDR radiance is scaled
    by its ``hdr_scale`` first, as in ``tune``."""
    if linear:
        check_hdr(recipe)
    source = Source.of(image, linear)
    params = params_from_values(recipe, values, image.device)
    output, before, after, seconds = scored_render(source, recipe, scorer, params, crops=crops, seed=seed)
    return output, TuneResult(
        ops=ops_record(recipe, params),
        score={"before": photo_score(scorer, source.plain), "after": photo_score(scorer, output)},
        objective={"before": {"full": before}, "after": {"full": after}}, steps=0, evaluations=2,
        optimizer="shared", seed=seed, kept_input=False, note=note, history=[],
        seconds={"tune": 0.0, "render": round(seconds, 3)}, hdr_scale=source.hdr_scale,
    )


