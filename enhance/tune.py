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
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence, cast

import torch

from enhance.climb import Climb, OnStep, climb
from enhance.io import Photo, read
from enhance.noise import NOISY, noise_level
from enhance.params import identity_values, params_from_values, recorded
from enhance.recipe import Recipe, as_recipe
from enhance.render import Params, Source, TuneError, check_finite, check_hdr, render, resize_long
from enhance.result import Opinion, TuneResult, ops_record
from enhance.shared import SharedFit, SharedSet
from enhance.views import DETAIL, Views, whole
from nima import Scorer

if TYPE_CHECKING:
    from enhance.predict import Predictor

FINALISTS = 2  # select = "best" from a predictor: how many stages' predictions are refined (those that rose most)

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
    predictor: Predictor | None = None,
) -> tuple[torch.Tensor, TuneResult]:
    """Tune ``recipe`` on a (1,3,H,W) sRGB image in [0,1] and render the full-resolution result.

    With ``linear``, the image is scene-referred radiance (>= 0, may exceed 1), the first stage
    must be an HDR tone-mapping operator, the radiance is first multiplied by
    :func:`enhance.render.hdr_scale` (recorded as ``hdr_scale``), and "the input" in scores and in
    the fallback is its rendering before tuning (:func:`enhance.render.as_displayed`: global Reinhard
    at the scene's white point, its contrast lowered where the scene spans more than well-rated
    photos, where `tonemap`'s climb starts),
    which a tuned rendering must outscore by the recipe's ``hdr_gain``.

    With the recipe's ``select = "best"``, each stage is tuned alone (with everything else as
    given) and the one whose proxy objective rose most is kept (:func:`finish_best`); on a photo
    measured noisy, only the recipe's ``when_noisy`` operator is tuned (:func:`candidates`).

    ``recipe`` is a Recipe, a shipped recipe's name or TOML path, or a list of operator names;
    ``scorer`` defaults to the shipped weights on the image's device. Returns the output
    (1,3,H,W) in [0,1] on the image's device and a :class:`TuneResult` (parameters in human
    units, scores before and after, steps, timings). ``optimizer`` is ``"adam"`` (gradients) or
    ``"nelder-mead"`` (scipy, derivative-free). Deterministic for a given ``seed`` on one
    device (on CUDA through deterministic kernels); a CPU and a GPU reach slightly different results.
    ``predictor`` (:func:`enhance.predict.find_predictor`): a display-referred photo starts from its
    prediction, refined for ``steps`` (default: the predictor's ``refine_steps``) and the better kept
    (:func:`finish_predicted`).

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
                        optimizer=optimizer, lr=lr, crops=crops, patience=patience, on_step=on_step,
                        predictor=predictor)[0]


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
    predictor: Predictor | None = None,
) -> list[tuple[torch.Tensor, TuneResult]]:
    """Tune each (1,3,H,W) image of ``images`` (sizes may differ) like ``tune(image, ...)`` with
    Adam, but with one scorer call per step on the views of all images still improving.

    Every image has its own parameters, views, best-so-far and early stop; images that stopped
    leave the batch; HDR radiance is first scaled by its ``hdr_scale``, as in ``tune``; the recipe's
    ``select = "best"`` works as in ``tune`` (display-referred photos only). Returns one
    (output (1,3,H,W) in [0,1], TuneResult) per image, in order; ``seconds["tune"]`` is the shared
    tuning time divided by the number of images. ``predictor``: each display-referred photo starts
    from its prediction, as in ``tune``.
    """
    flags = [False] * len(images) if linear is None else list(linear)
    for im in images:
        if im.dim() != 4 or im.shape[:2] != (1, 3):
            raise ValueError(f"expected (1,3,H,W) images, got {tuple(im.shape)}")
    if any(flags):
        check_hdr(recipe)
    return tune_sources([Source.of(im, lin) for im, lin in zip(images, flags)], recipe, scorer, steps=steps,
                        strength=strength, seed=seed, lr=lr, crops=crops, patience=patience, predictor=predictor)


def tune_sources(sources: Sequence[Source], recipe: Recipe, scorer: Scorer, *, crops: int, seed: int,
                 predictor: Predictor | None = None, full: Sequence[Source | Future[Source]] | None = None,
                 **climbing: Any) -> list[tuple[torch.Tensor, TuneResult]]:
    """:func:`tune_batch` on prepared photos; ``climbing``: :func:`enhance.climb.climb`'s settings.
    With ``select = "best"``, the stages climb alone, all in one batched climb (one scorer call per
    step for every photo and stage), then each photo keeps its best. With ``predictor``, display-referred
    photos start from its prediction (:func:`finish_predicted`); HDR radiance climbs from the recipe's
    start values, since no predictor is trained on it. ``full``: the same photos at full resolution
    (or futures of them, still being decoded while the climb runs) when ``sources`` are smaller
    copies to climb on (a JPEG's draft decoding); they are rendered."""
    full = list(sources if full is None else full)
    if predictor is not None and not all(s.linear for s in sources):
        # every photo has a full-resolution source here, so every output is rendered
        return cast(list[tuple[torch.Tensor, TuneResult]],
                    _tune_predicted(sources, full, recipe, scorer, predictor, crops=crops, seed=seed, **climbing))
    if recipe.select == "best":
        chosen = [candidates(recipe, s) for s in sources]
        jobs = [(k, i) for k, (stages, _) in enumerate(chosen) for i in stages]
        climbs = climb([sources[k] for k, _ in jobs], [recipe.alone(i) for _, i in jobs], scorer, crops=crops,
                       seed=seed, **climbing)
        mine: list[dict[int, Climb]] = [{} for _ in sources]
        for (k, i), c in zip(jobs, climbs):
            mine[k][i] = replace(c, source=resolved(full[k]))
        return [finish_best(recipe, m, scorer, crops=crops, seed=seed, why=why)
                for m, (_, why) in zip(mine, chosen)]
    return [finish(replace(c, source=resolved(f)), scorer, crops=crops, seed=seed)
            for c, f in zip(climb(sources, recipe, scorer, crops=crops, seed=seed, **climbing), full)]


def candidates(recipe: Recipe, source: Source) -> tuple[list[int], str]:
    """The stages a ``select = "best"`` recipe tunes alone on ``source`` (:meth:`Recipe.candidates`:
    on a display-referred photo whose :func:`enhance.noise.noise_level` is at least ``NOISY``, only
    its ``when_noisy`` operator), and why they are fewer than all ("" when they are not)."""
    if recipe.when_noisy is None or source.linear:
        return recipe.candidates(False), ""
    level = float(noise_level(source.plain)[0])
    stages = recipe.candidates(level >= NOISY)
    why = (f"the photo is noisy (estimated noise {level * 255:.1f}/255, at least {NOISY * 255:g}/255)"
           if len(stages) < len(recipe.stages) else "")
    return stages, why


def resolved(source: Source | Future[Source]) -> Source:
    """``source``, waiting for it when it is still being decoded."""
    return source.result() if isinstance(source, Future) else source


def predicted_records(sources: Sequence[Source], recipe: Recipe, scorer: Scorer, predictor: Predictor, *, crops: int,
                      seed: int, **climbing: Any) -> list[TuneResult]:
    """What :func:`tune_sources` finds for display-referred photos started from ``predictor``, with
    nothing rendered at full resolution: for a caller that renders the recorded values itself (an
    8-bit JPEG's codes through its colour table, :func:`enhance.files.tune_file`). ValueError for
    HDR radiance."""
    if any(s.linear for s in sources):
        raise ValueError("predicted_records takes display-referred photos only")
    return [r for _, r in _tune_predicted(sources, [None] * len(sources), recipe, scorer, predictor, crops=crops,
                                          seed=seed, **climbing)]


def _tune_predicted(sources: Sequence[Source], full: Sequence[Source | Future[Source] | None], recipe: Recipe,
                    scorer: Scorer, predictor: Predictor, *, crops: int, seed: int,
                    **climbing: Any) -> list[tuple[torch.Tensor | None, TuneResult]]:
    """Each display-referred photo climbs from ``predictor``'s parameters, all in one batched climb.
    For ``select = "best"``, every candidate stage's own prediction (:func:`candidates`) is scored
    alone, the `FINALISTS` that rose most on each photo are refined (one batched climb for all), and
    the photo keeps the stage that rose most and holds on the photo, as :func:`finish_best` without
    a predictor. HDR radiance as without a predictor. A ``full`` of None: that photo is not rendered
    (:func:`finish_predicted`)."""
    from enhance.predict import check_predictor, predict

    check_predictor(predictor, recipe)
    plain = [k for k, s in enumerate(sources) if not s.linear]
    chosen: list[tuple[Sequence[int | None], str]] = [
        candidates(recipe, sources[k]) if recipe.select == "best" else ([None], "") for k in plain]
    predicted, seconds = [], []
    for k in plain:
        t0 = time.perf_counter()
        predicted.append(predict(predictor, sources[k].image))
        seconds.append(time.perf_counter() - t0)
    jobs = [(j, i) for j, (stages, _) in enumerate(chosen) for i in stages]  # (photo of plain, stage or None)
    starts = [recipe.with_values(predicted[j]) if i is None else recipe.alone(i).with_values([predicted[j][i]])
              for j, i in jobs]
    inputs = [sources[plain[j]] for j, _ in jobs]
    refining = {**climbing, "steps": predictor.refine_steps if climbing.get("steps") is None else climbing["steps"]}
    firsts: list[Climb | None] = [None] * len(jobs)
    # a photo with several candidates has every one's prediction scored; the FINALISTS that rose most are refined
    scored = [a for a, (j, _) in enumerate(jobs) if len(chosen[j][0]) > 1]
    for a, c in zip(scored, climb([inputs[a] for a in scored], [starts[a] for a in scored], scorer, crops=crops,
                                  seed=seed, **{**refining, "steps": 0}) if scored else []):
        firsts[a] = c
    climbs = list(firsts)
    mine = [[a for a, (jj, _) in enumerate(jobs) if jj == j] for j in range(len(plain))]  # each photo's jobs
    if refining["steps"]:
        picked = [a for at in mine for a in sorted(at, key=lambda a: -_gain(firsts[a]))[:FINALISTS]]
        for a, c in zip(picked, climb([inputs[a] for a in picked], [starts[a] for a in picked], scorer, crops=crops,
                                      seed=seed, **refining)):
            climbs[a] = c
    out: dict[int, tuple[torch.Tensor | None, TuneResult]] = {}
    for j, (k, values, t) in enumerate(zip(plain, predicted, seconds)):
        finished: list[tuple[int | None, torch.Tensor | None, TuneResult]] = []
        for a in sorted(mine[j], key=lambda a: -_gain(climbs[a])):
            refinement = r if (r := climbs[a]) is not None and r.steps else None
            finished.append((jobs[a][1], *finish_predicted(refinement, sources[k], full[k], recipe, values, jobs[a][1],
                                                           scorer, crops=crops, seed=seed, predict_seconds=t)))
            if not finished[-1][2].kept_input:  # usually the first holds
                break
        i, output, result = finished[-1] if not finished[-1][2].kept_input else finished[0]
        if i is not None:
            result = _best_of(result, recipe, {jobs[a][1]: climbs[a] for a in mine[j]},
                              [first for a in mine[j] if (first := firsts[a]) is not None], i, t, chosen[j][1])
        out[k] = output, result
    hdr = [k for k, s in enumerate(sources) if s.linear]
    if hdr:
        rest = tune_sources([sources[k] for k in hdr], recipe, scorer, crops=crops, seed=seed,
                            full=[f if (f := full[k]) is not None else sources[k] for k in hdr], **climbing)
        out.update(zip(hdr, rest))
    return [out[k] for k in range(len(sources))]


def _gain(climb: Climb | None) -> float:
    return climb.gain if climb is not None else 0.0


def _best_of(result: TuneResult, recipe: Recipe, climbs: dict[int | None, Climb | None], firsts: Sequence[Climb],
             kept: int, predict_seconds: float, why: str) -> TuneResult:
    """A ``select = "best"`` photo's record of stage ``kept`` (finished from ``climbs[kept]``):
    every candidate stage's rise in the note (``climbs``: refined, only scored, or with no steps
    at all None; ``firsts``: the predictions' scoring; ``why``: why the candidates are fewer than
    all, :func:`candidates`), and the steps, evaluations and time of all of them."""
    name = recipe.stages[kept].op.name
    if len(climbs) == 1:
        note = f"{result.note}; {name} was tuned alone because {why}" if why else result.note
        return replace(result, note=note)
    gains = ", ".join(f"{recipe.stages[i].op.name} {c.gain:+.3f}" + ("" if c.steps else " unrefined")
                      for i, c in sorted(climbs.items()) if i is not None and c is not None)
    how = f"of the operators started from their predictions (proxy objective gain: {gains})"
    note = f"{result.note}; {name} rose most {how}" if result.kept_input else f"{name} kept {how}; {result.note}"
    refinements = [c for c in climbs.values() if c is not None and c.steps]
    others = sum(c.evaluations for i, c in climbs.items() if c is not None and c.steps and i != kept)
    return replace(result, note=note, steps=sum(c.steps for c in refinements),
                   evaluations=result.evaluations + len(firsts) + others,
                   seconds={**result.seconds, "tune": round(predict_seconds + sum(c.seconds for c in firsts)
                                                            + sum(c.seconds for c in refinements), 3)})


@torch.no_grad()
def photo_score(scorer: Scorer, image: torch.Tensor) -> Opinion:
    """The headline opinion of (1,3,H,W) sRGB ``image``: the whole photo, as ``enhance score`` takes it."""
    return Opinion.of(scorer(whole(image, scorer.input_size)))


@torch.no_grad()
def full_render(source: Source, recipe: Recipe, params: Params) -> torch.Tensor:
    """``source`` rendered at full resolution with ``params``, clamped to [0,1]: a photo of known
    code values (8 or 16 bits) through :mod:`enhance.lut`'s tables for its pointwise operators,
    anything else through torch, tile by tile."""
    if source.levels is not None and not source.linear:
        from enhance import lut

        output = lut.render(source.image, recipe, params, levels=source.levels).clamp_(0, 1)
    else:
        output = render(source.image, recipe, params, linear=source.linear).clamp_(0, 1)
    check_finite(output, "the rendered image")
    return output


@torch.no_grad()
def view_opinion(image: torch.Tensor, recipe: Recipe, scorer: Scorer, *, crops: int, seed: int) -> Opinion:
    """The objective's views of (1,3,H,W) sRGB ``image``, scored."""
    size = scorer.input_size
    return Opinion.of(scorer(Views.of(image, recipe, crops, size, seed).render(size)))


@torch.no_grad()
def scored_render(source: Source, recipe: Recipe, scorer: Scorer, params: Params, *, crops: int,
                  seed: int) -> tuple[torch.Tensor, Opinion, Opinion, float]:
    """Render ``source`` at full resolution and take the objective's views of the input as
    displayed and of the render: (output, objective before, objective after, seconds)."""
    t0 = time.perf_counter()
    output = full_render(source, recipe, params)
    before = view_opinion(source.plain, recipe, scorer, crops=crops, seed=seed)
    after = view_opinion(output, recipe, scorer, crops=crops, seed=seed)
    return output, before, after, time.perf_counter() - t0


def finish(climb: Climb, scorer: Scorer, *, crops: int = 2, seed: int = 0) -> tuple[torch.Tensor, TuneResult]:
    """Render a climb's best parameters at full resolution, and check the render: if its objective
    does not rise above the input's there (for HDR input, by at least the recipe's ``hdr_gain``:
    :meth:`enhance.recipe.Recipe.least_gain`), the input is returned unchanged (``kept_input``)."""
    source = climb.source
    output, before_full, after_full, t_render = scored_render(source, climb.recipe, scorer, climb.params,
                                                              crops=crops, seed=seed)
    least = climb.recipe.least_gain(source.linear)
    kept = after_full.mean <= before_full.mean + least
    above = f"at least {least:g} above" if least else "above"
    note = (f"the tuned result did not score {above} the input on the full render; the input is returned unchanged"
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
    recipe: Recipe, climbs: dict[int, Climb], scorer: Scorer, *, crops: int = 2, seed: int = 0, why: str = "",
) -> tuple[torch.Tensor, TuneResult]:
    """Of stages climbed alone (``climbs[i]``: stage ``i`` of ``recipe``; every stage, or those
    :func:`candidates` chose because ``why``), keep the one whose proxy objective rose most among those
    whose full render scores above the input. The climbs are rendered in order of their rise until
    one holds, so usually only one is. The other stages are reported at their operator's identity,
    so the result renders with the whole ``recipe``; if no render holds, the input is returned."""
    done: dict[int, tuple[torch.Tensor, TuneResult]] = {}
    held: int | None = None  # the stage kept
    for i in sorted(climbs, key=lambda k: -climbs[k].gain):
        done[i] = finish(climbs[i], scorer, crops=crops, seed=seed)
        if not done[i][1].kept_input:
            held = i
            break
    i = min(climbs) if held is None else held
    output, chosen = done[i]
    ops = [{"name": st.op.name, "params": st.op.identity} for st in recipe.stages]
    ops[i] = chosen.ops[0]
    failed = " (not above the input on the full render)"
    gains = ", ".join(f"{recipe.stages[k].op.name} {c.gain:+.3f}" + (failed if k in done and k != held else "")
                      for k, c in sorted(climbs.items()))
    name = recipe.stages[i].op.name
    how = f"tuned alone because {why}" if why else "of the operators tuned alone"
    note = (f"{name} kept {how} (proxy objective gain: {gains})" if held is not None else
            f"{chosen.note}; {name} was {how}" if why else chosen.note)
    seconds = {"tune": round(sum(c.seconds for c in climbs.values()), 3),
               "render": round(sum(r.seconds["render"] for _, r in done.values()), 3)}
    return output, replace(chosen, ops=ops, note=note, seconds=seconds,
                           steps=sum(c.steps for c in climbs.values()),
                           evaluations=sum(c.evaluations for c in climbs.values()))


def finish_predicted(
    climb: Climb | None, small: Source, full: Source | Future[Source] | None, recipe: Recipe,
    predicted: list[dict[str, float]], chosen: int | None, scorer: Scorer, *, crops: int = 2, seed: int = 0,
    predict_seconds: float = 0.0,
) -> tuple[torch.Tensor | None, TuneResult]:
    """Finish a climb that started from a predictor's values ``predicted`` (one dict per stage of
    ``recipe``; ``chosen``: for ``select = "best"``, the stage that climbed alone) on
    ``small``, a copy of the photo ``full`` (or ``full`` itself, or a future of it still being
    decoded; None: the result is not rendered and the image returned is None, for a caller that
    renders the recorded values itself); ``climb`` None: no refining steps, the prediction alone.

    Every check is made on the photo at detail scale (long side ``DETAIL``, the copy the views'
    crops come from anyway), which the scorer's 224-pixel views cannot tell from the full render of
    pointwise and scale-relative operators: keep whichever of prediction and refinement has the
    better headline score there; return the input unchanged when the kept one's objective does not
    rise above the input's; the headline scores (``score``) and the objective's "full" views are
    those of the detail-scale renders. Only the result returned is rendered at full resolution.
    The record holds both parameter sets: ``predicted`` and ``ops`` (the ones returned)."""
    t0 = time.perf_counter()
    climbed = recipe if chosen is None else recipe.alone(chosen)
    start = recorded(climbed, params_from_values(climbed, [predicted[chosen]] if chosen is not None else predicted,
                                                  small.image.device))
    detail = resize_long(small.image, DETAIL)
    tried = {"prediction": start}
    if climb is not None and not all(torch.allclose(a[k], b[k], atol=1e-6) for a, b in zip(start, climb.params) for k in a):
        tried["refinement"] = climb.params
    renders = {n: render(detail, climbed, p).clamp_(0, 1) for n, p in tried.items()}
    headlines = {n: photo_score(scorer, r) for n, r in renders.items()}
    name = max(headlines, key=lambda n: headlines[n].mean)  # the prediction on a tie: it comes first
    params = tried[name]
    # the climb's own views of the input are these when it climbed on the detail-scale copy itself
    before_views = (climb.before if climb is not None and detail is small.plain else
                    view_opinion(detail, climbed, scorer, crops=crops, seed=seed))
    score_before = photo_score(scorer, detail)
    after_views = view_opinion(renders[name], climbed, scorer, crops=crops, seed=seed)
    kept = after_views.mean <= before_views.mean
    why = (f" (whole-photo score at detail scale: prediction {headlines['prediction'].mean:.3f}, "
           f"refinement {headlines['refinement'].mean:.3f})" if len(tried) > 1 else "")
    note = (f"the {name} did not score above the input at detail scale; the input is returned unchanged"
            if kept else f"{name} kept{why}")
    photo = small if full is None else resolved(full)
    output = None if full is None else photo.plain.clone() if kept else full_render(photo, climbed, params)

    def record(values: Params) -> list[dict[str, Any]]:
        if chosen is None:
            return ops_record(recipe, values)
        ops = [{"name": st.op.name, "params": dict(st.op.identity)} for st in recipe.stages]
        ops[chosen] = ops_record(climbed, values)[0]
        return ops

    objective: dict[str, dict[str, Opinion]] = {"before": {"full": before_views}, "after": {"full": after_views}}
    if climb is not None:
        objective["before"]["proxy"], objective["after"]["proxy"] = climb.before, climb.after
    result = TuneResult(
        ops=record(params), predicted=record(start),
        score={"before": score_before, "after": score_before if kept else headlines[name]}, objective=objective,
        steps=climb.steps if climb else 0, evaluations=(climb.evaluations if climb else 0) + len(tried) + 2,
        optimizer=climb.optimizer if climb else "prediction", seed=seed, kept_input=kept, note=note,
        history=climb.history if climb else [],
        seconds={"tune": round(predict_seconds + (climb.seconds if climb else 0.0), 3),
                 "render": round(time.perf_counter() - t0, 3)},
        hdr_scale=photo.hdr_scale,
    )
    return output, result


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
    The recipe's ``when_noisy`` does not apply here: it is a choice for one photo, made on its noise.
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


