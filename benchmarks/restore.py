"""Restoration benchmark: does tuning bring degraded photos closer to their pristine originals?

Pristine Kodak photos are degraded in known ways; each degraded image is enhanced by the tuner
(the ``auto`` recipe; with ``--single`` the single operator that fits the degradation; with
``--climb`` the small global operator of the scorer's climbing test: exposure, levels and
contrast, plus denoise on the noisy photos) and by classic auto-enhancers, and every result is compared with the pristine original (PSNR, SSIM). An
independent check scores the tuned outputs with measures the tuner never climbed: BRISQUE and,
when given, a second scorer (``--check-weights``).

By default only the Kodak sources held out of the scorer's training are used (the weights record
them); ``--all`` uses the 24 photos. ``--biq2021 DATA`` (a folder holding ``biq2021/``) adds a
second collection: the 30 best-rated photos of BIQ2021's Test split, which no training sees
(``benchmarks/sources/biq2021-test-best.csv``, checked by eye for defects), reported beside Kodak.

``--predict`` adds ``auto`` started from its shipped parameter predictor (`enhance.predict`): the
prediction alone (what ``tune --steps 0`` writes) and the prediction refined for the predictor's
own number of steps (what ``tune`` does by default; ``--refine-steps``: another number);
``--no-climb-auto`` leaves out the 50-step climb from the identity (when its figures are known).

For every case where a tuned ``auto`` result loses more than 0.5 dB, the table says whether the
scorer it climbed rates the clean photo above the tuned output (then the climb, the operators'
ranges or the identity pull fell short) or below it (then the scorer is wrong). The operators
cannot reach the clean photo from every degradation (noise), so with ``--single`` a third
verdict tells them apart: the scorer rates the clean photo above the output but the fitting
operator's result, at least 0.5 dB closer to the clean photo, below it (the scorer is wrong
about what the operators reach). ``--stages`` tunes each of ``auto``'s operators alone at ``auto``'s
ranges, as ``auto`` climbs them before it keeps the one whose objective rose most, and tells a
fourth case apart: the scorer rates an operator's closer result above the output on the whole
photo, so ``auto``'s choice by its objective (the whole photo and detail crops) fell short.
``--sources`` keeps the sources whose file name contains one of its strings, to rerun chosen cases.

    python benchmarks/restore.py --workers 2 --biq2021 DATA --single --climb \
        --check-weights runs/nima_rank_from_imagenet.pt --json benchmarks/results/restore.json
    python benchmarks/restore.py --workers 2 --predict --no-climb-auto --json benchmarks/results/restore_predict.json
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from common import (
    KODAK, heldout_sources, linear_to_srgb, load_rgb, need, predictor_for, quantise, save_json, srgb_to_linear, to_array, to_tensor,
)

# --- degradations (H,W,3) float in [0,1] -> same -------------------------------------------

def _exposure(ev: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: linear_to_srgb(srgb_to_linear(x) * 2.0**ev)


def _noise(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    def add(x: np.ndarray) -> np.ndarray:
        return x + np.random.default_rng(0).normal(0, sigma, x.shape)
    return add


DEGRADATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "under -1.5 EV": _exposure(-1.5),
    "under -2.5 EV": _exposure(-2.5),
    "over +1 EV": _exposure(1.0),
    "flat contrast": lambda x: 0.5 + 0.45 * (x - 0.5),
    "haze": lambda x: 0.6 * x + 0.4 * np.array([0.88, 0.90, 0.94]),
    "gamma 1.8": lambda x: x**1.8,
    "noise 10/255": _noise(10 / 255),
    "noise 20/255": _noise(20 / 255),
}

# The single operator that fits each degradation.
SINGLE_OP = {
    "under -1.5 EV": "exposure", "under -2.5 EV": "exposure", "over +1 EV": "exposure",
    "flat contrast": "contrast", "haze": "levels", "gamma 1.8": "levels",
    "noise 10/255": "denoise", "noise 20/255": "denoise",
}

# The climbing test's small global operator; denoise joins it on the noisy photos.
CLIMB_OPS = ["exposure", "levels", "contrast"]

# --- baselines (H,W,3) in [0,1] -> same ------------------------------------------------------

def _pil(f: Callable[[Image.Image], Image.Image]) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        img = Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))
        return np.asarray(f(img), dtype=np.float64) / 255
    return run


def _clahe(x: np.ndarray) -> np.ndarray:
    from skimage.exposure import equalize_adapthist

    return equalize_adapthist(np.clip(x, 0, 1), clip_limit=0.01)


def _grayworld_gamma(x: np.ndarray) -> np.ndarray:
    means = x.reshape(-1, 3).mean(0)
    balanced = np.clip(x * (means.mean() / np.maximum(means, 1e-6)), 0, 1)
    mean = float(np.clip(balanced.mean(), 1e-3, 0.999))
    return balanced ** (np.log(0.5) / np.log(mean))


BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: x,
    "autocontrast": _pil(lambda im: ImageOps.autocontrast(im, cutoff=1)),
    "equalize": _pil(ImageOps.equalize),
    "clahe": _clahe,
    "grayworld+gamma": _grayworld_gamma,
}

# --- one case -----------------------------------------------------------------------------


class _Brisque:
    """BRISQUE from the `brisque` package, with its features flattened to floats (its 0.2.0
    release passes 1-element arrays to float(), which numpy 2 refuses)."""

    def __init__(self) -> None:
        from brisque import BRISQUE

        class Fixed(BRISQUE):  # type: ignore[misc]
            def calculate_brisque_features(self, image, kernel_size=7, sigma=7 / 6):  # type: ignore[no-untyped-def]
                feats = super().calculate_brisque_features(image, kernel_size, sigma)
                return np.array([float(np.asarray(f).reshape(-1)[0]) for f in feats])

        self.model = Fixed(url=False)

    def __call__(self, x: np.ndarray) -> float:
        return float(self.model.score((np.clip(x, 0, 1) * 255).astype(np.uint8)))


PREDICTED, REFINED = "enhance auto (predicted)", "enhance auto (predicted + refined)"
SINGLE = "enhance single op"
STAGE = "auto's "  # with --stages: "auto's exposure", ..., each of auto's operators tuned alone


def run_case(args: tuple[str, str, str, str | None, str | None, int | None, bool, bool, bool, bool, int | None,
                          str | None, bool]) -> dict:
    """Degrade one source one way; restore it every way; measure against the pristine."""
    (collection, path, degradation, weights, check_weights, steps, single, climb, climb_auto, predict, refine,
     predictor_file, stages) = args
    import torch
    from skimage.metrics import peak_signal_noise_ratio as psnr
    from skimage.metrics import structural_similarity as ssim

    import enhance
    from enhance.recipe import Recipe, as_recipe
    from nima import load_scorer

    torch.set_num_threads(1)
    pristine = load_rgb(Path(path))
    degraded = quantise(DEGRADATIONS[degradation](pristine))
    scorer = load_scorer(weights)
    outputs: dict[str, np.ndarray] = {name: quantise(f(degraded)) for name, f in BASELINES.items()}
    seconds, tuned_ops = {}, {}
    auto = as_recipe("auto")
    runs: list[tuple[str, str | list[str] | Recipe, int | None, bool]] = [("enhance auto", auto, steps, False)] if climb_auto else []
    if predict:
        runs += [(PREDICTED, auto, 0, True), (REFINED, auto, refine, True)]
    if single:
        runs.append((SINGLE, [SINGLE_OP[degradation]], steps, False))
    if climb:
        runs.append(("enhance global op", CLIMB_OPS + (["denoise"] if "noise" in degradation else []), steps, False))
    if stages:
        runs += [(STAGE + st.op.name, auto.alone(i), steps, False) for i, st in enumerate(auto.stages)]
    predictor = predictor_for(auto, predictor_file) if predict else None
    for name, recipe, budget, predicted in runs:
        t0 = time.perf_counter()
        tuned, result = enhance.tune(to_tensor(degraded), recipe, scorer, steps=budget,
                                     predictor=predictor if predicted else None)
        seconds[name] = time.perf_counter() - t0
        # the climb's proxy objective; a prediction alone (no steps) has only the detail-scale views'
        views = "proxy" if "proxy" in result.objective["after"] else "full"
        objective = {k: result.objective[k][views].mean for k in ("before", "after")}
        tuned_ops[name] = {"ops": result.ops, "kept_input": result.kept_input,
                           "objective_gain": objective["after"] - objective["before"]}
        outputs[name] = quantise(to_array(tuned))
    row: dict = {"collection": collection, "source": Path(path).name, "degradation": degradation,
                 "seconds": seconds, "methods": {}}
    with torch.no_grad():
        row["scorer_clean"] = float(scorer.mean(to_tensor(pristine)))
    base_psnr = psnr(pristine, degraded, data_range=1.0)
    brisque = _Brisque() if _has_brisque() else None
    check = load_scorer(check_weights) if check_weights else None
    with torch.no_grad():
        degraded_check = float(check.mean(to_tensor(degraded))) if check else None
    degraded_brisque = brisque(degraded) if brisque else None
    for name, out in outputs.items():
        entry = {
            "psnr": psnr(pristine, out, data_range=1.0), "gain": psnr(pristine, out, data_range=1.0) - base_psnr,
            "ssim": ssim(pristine, out, data_range=1.0, channel_axis=2),
        }
        if name.startswith(("enhance", STAGE)):
            entry.update(tuned_ops[name])
            with torch.no_grad():
                entry["score"] = float(scorer.mean(to_tensor(out)))
        if name.startswith("enhance"):  # the second opinions, for enhance's results (not each operator alone)
            if brisque and degraded_brisque is not None:
                entry["brisque_better"] = brisque(out) < degraded_brisque
            if check and degraded_check is not None:
                with torch.no_grad():
                    entry["check_better"] = float(check.mean(to_tensor(out))) > degraded_check
        row["methods"][name] = entry
    return row


def _has_brisque() -> bool:
    try:
        import brisque  # noqa: F401
    except ImportError:
        return False
    return True


# --- the table ----------------------------------------------------------------------------


def moved(entry: dict) -> str:
    """The operators of one tuned result whose parameters left their identity ("input" if it was kept)."""
    from enhance import ops

    if entry["kept_input"]:
        return "input"
    names = []
    for o in entry["ops"]:
        identity = ops.get(o["name"]).identity
        if any(abs(v - identity[k]) > 1e-6 for k, v in o["params"].items()):
            names.append(o["name"])
    return "+".join(names) or "none"


def short_cases(rows: list[dict], method: str, floor: float = -0.5) -> list[str]:
    """One line per case where ``method`` lost more than ``floor`` dB, saying which is at fault.

    The clean photo is out of the operators' reach on some degradations (noise): where the scorer
    rates it above the output, the run's single fitting operator (``--single``) tells a climb that
    fell short from a scorer that prefers the output to a closer restoration the operators reach;
    ``auto``'s operators tuned alone (``--stages``) also tell a choice between them that fell short:
    the closest of their results, rated above the output on the whole photo."""
    lines = []
    for r in rows:
        gain, output = r["methods"][method]["gain"], r["methods"][method]["score"]
        fit = r["methods"].get(SINGLE)
        if gain < floor:
            alone = {m[len(STAGE):]: e for m, e in r["methods"].items() if m.startswith(STAGE)}
            closest = max(alone, key=lambda op: alone[op]["gain"]) if alone else None
            if r["scorer_clean"] <= output:
                fault = "the scorer rates the output above the clean photo: the scorer is wrong"
            elif fit is not None and fit["gain"] > gain + 0.5 and fit["score"] < output:
                fault = (f"the scorer rates the clean photo above the output but the fitting operator's closer result "
                         f"({fit['gain']:+.2f} dB, score {fit['score']:.3f}) below it: the scorer misorders what the "
                         "operators reach")
            elif closest is not None and alone[closest]["gain"] > gain + 0.5:
                best = alone[closest]
                rises = ", ".join(f"{op} {e['objective_gain']:+.3f}" for op, e in alone.items())
                verdict = ("below it: the scorer misorders what the operators reach" if best["score"] < output else
                           f"above it on the whole photo, but auto keeps the operator whose objective rose most "
                           f"({rises}): auto's choice fell short")
                fault = (f"the scorer rates the clean photo above the output and {closest} alone's closer result "
                         f"({best['gain']:+.2f} dB, score {best['score']:.3f}) {verdict}")
            else:
                fault = "the scorer rates the clean photo above the output: the climb, ranges or pull fell short"
            lines.append(f"  {r['source']}, {r['degradation']}: {gain:+.2f} dB "
                         f"(scores clean {r['scorer_clean']:.3f}, output {output:.3f}): {fault}")
    return lines


def summarise(rows: list[dict]) -> str:
    collections = list(dict.fromkeys(r.get("collection", "kodak") for r in rows))
    parts = []
    for c in collections:
        group = [r for r in rows if r.get("collection", "kodak") == c]
        sources = len({r["source"] for r in group})
        parts.append(f"### {c}: {sources} held-out sources, {len(group)} cases\n\n" + summarise_one(group))
    return "\n\n".join(parts)


def summarise_one(rows: list[dict]) -> str:
    methods = list(rows[0]["methods"])
    lines = ["| degradation | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    groups = {d: [r for r in rows if r["degradation"] == d] for d in DEGRADATIONS}
    groups["all"] = rows
    for name, group in groups.items():
        if not group:
            continue
        cells = []
        for m in methods:
            gains = np.array([r["methods"][m]["gain"] for r in group])
            cells.append(f"{gains.mean():+.2f} dB, {100 * (gains > 0).mean():.0f}% better, worst {gains.min():+.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Mean SSIM: " + ", ".join(
        f"{m} {np.mean([r['methods'][m]['ssim'] for r in rows]):.3f}" for m in methods))
    for m in [m for m in methods if m.startswith("enhance")]:
        for key, label in (("brisque_better", "BRISQUE"), ("check_better", "second scorer")):
            vals = [r["methods"][m][key] for r in rows if key in r["methods"][m]]
            if vals:
                lines.append(f"{m}: {label} agrees the output is better than the degraded input in "
                             f"{100 * np.mean(vals):.0f}% of {len(vals)} cases")
    for m in [m for m in methods if m.startswith("enhance auto")]:
        lines.append(f"{m}: the operators that left their identity, per degradation:")
        for d, group in [(d, g) for d, g in groups.items() if g]:
            counts = Counter(moved(r["methods"][m]) for r in group)
            lines.append(f"  {d}: " + ", ".join(f"{op} {n}" for op, n in counts.most_common()))
        short = short_cases(rows, m)
        lines.append(f"{m}: {len(short)} cases lost more than 0.5 dB" + (":" if short else ""))
        lines += short
        secs = [r["seconds"][m] for r in rows]
        lines.append(f"{m}: {np.mean(secs):.1f} s per image on average (one thread per worker)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="scorer the tuner climbs (default: the shipped weights)")
    parser.add_argument("--check-weights", help="a second, independently trained scorer for the check")
    parser.add_argument("--all", action="store_true", help="all 24 Kodak photos, not only the held-out ones")
    parser.add_argument("--steps", type=int, default=None, help="tuner step budget (default: the recipe's)")
    parser.add_argument("--single", action="store_true", help="also tune the one operator that fits each degradation")
    parser.add_argument("--climb", action="store_true",
                        help="also tune the climbing test's global operator (exposure, levels, contrast; + denoise)")
    parser.add_argument("--biq2021", metavar="DATA",
                        help="a folder holding biq2021/: adds the 30 best-rated photos of its Test split")
    parser.add_argument("--predict", action="store_true",
                        help="also run auto from its shipped predictor: the prediction alone and refined")
    parser.add_argument("--predictor", help="with --predict: the auto predictor file (default: the shipped one)")
    parser.add_argument("--refine-steps", type=int, help="refining steps after a prediction (default: the predictor's, as tune)")
    parser.add_argument("--no-climb-auto", action="store_true", help="leave out auto's climb from the identity")
    parser.add_argument("--only", help="only the degradations whose name contains this (e.g. noise)")
    parser.add_argument("--stages", action="store_true",
                        help="also tune each of auto's operators alone, at auto's ranges, to tell its choice apart")
    parser.add_argument("--sources", help="only the sources whose file name contains one of these, comma-separated "
                                          "(e.g. kodim19,kodim24)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="write every case's figures here")
    args = parser.parse_args()
    need(KODAK)
    from nima import load_scorer

    meta = load_scorer(args.weights).meta
    sources = [("kodak", str(s)) for s in (sorted(KODAK.glob("*.png")) if args.all else heldout_sources(meta))]
    if args.biq2021:
        from nima.sources import pristine_paths

        listed = pristine_paths([str(Path(__file__).parent / "sources" / "biq2021-test-best.csv")], args.biq2021)
        sources += [("biq2021", s) for s in listed]
    if args.sources:
        wanted = args.sources.split(",")
        sources = [(c, s) for c, s in sources if any(w in Path(s).name for w in wanted)]
        if not sources:
            raise SystemExit(f"--sources {args.sources!r}: no source's file name contains any of them")
    chosen = [d for d in DEGRADATIONS if args.only is None or args.only in d]
    if args.no_climb_auto and not args.predict:
        raise SystemExit("--no-climb-auto needs --predict: nothing would tune auto")
    if args.predict:
        from enhance.recipe import as_recipe

        predictor_for(as_recipe("auto"), args.predictor)  # before the workers start: a missing one stops the run here
    cases = [(c, s, d, args.weights, args.check_weights, args.steps, args.single, args.climb, not args.no_climb_auto,
              args.predict, args.refine_steps, args.predictor, args.stages) for c, s in sources for d in chosen]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(run_case, cases))
    print(f"{len(sources)} sources x {len(chosen)} degradations = {len(rows)} cases, "
          f"{time.perf_counter() - t0:.0f} s with {args.workers} workers\n")
    print("Mean PSNR gain over the degraded input, share of images improved, worst case:\n")
    print(summarise(rows))
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
