"""The parameter predictor against the tuner, on photos neither the predictor nor the scorer trained on.

Cases: the benchmarks' held-out Kodak photos (kodim19-24) each with one random degradation of
`enhance.predict.DEGRADATIONS` (seeded), the first ``--clean`` of them as they are too, and the
first ``--clive`` photos of the scorer's validation split as they are. For each: the mean score on the tuner's views (proxy and two crops,
seed 0) of the photo, of the predicted parameters, and of a 50-step climb from identity
(`enhance.climb.climb`), with the time of each (prediction: from the proxy the tuner makes), and
the PSNR of the predicted rendering against the photo it was given (on the clean photos: how near
the identity the prediction stays). ``--refine N`` adds what ``enhance tune`` returns from the
prediction refined for N steps (its parameters scored on the same views; the input where it kept it).

    python benchmarks/predict.py --op tonemap [--predictor FILE] [--clean 6] [--predict-only]
    python benchmarks/predict.py --recipe tonemap [--predictor FILE] [--clean 2] [--clive 0] [--json out.json]
    python benchmarks/predict.py --recipe tonemap --tune-only --json tuned.json   # the climbs alone
    python benchmarks/predict.py --recipe tonemap --tuned tuned.json              # reuse those climbs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from common import KODAK, SHARED, need, predictor_for, save_json


def cases(meta: dict, clean: int, clive: int) -> list[tuple[str, torch.Tensor]]:
    """(name, (1,3,H,W) photo) for every case."""
    from enhance.io import read
    from enhance.predict import DEGRADATIONS, HELD_OUT_KODAK, degrade

    gen = np.random.default_rng(2024)
    out = []
    for i, name in enumerate(HELD_OUT_KODAK):
        image = read(KODAK / name).image
        kind = str(gen.choice(DEGRADATIONS[1:]))
        out.append((f"{name[:-4]} {kind}", degrade(image, kind, gen)))
        if i < clean:
            out.append((f"{name[:-4]} clean", image))
    for rel in sorted(meta["val_split"])[:clive]:
        out.append((f"clive {Path(rel).name}", read(SHARED / "clive" / rel).image))
    return out


def view_score(image: torch.Tensor, recipe, values, scorer) -> float:  # type: ignore[no-untyped-def]
    """Mean score over the tuner's views of ``image`` rendered with ``values``."""
    from enhance.params import params_from_values
    from enhance.render import apply_pipeline
    from enhance.views import Views

    views = Views.of(image, recipe, 2, scorer.input_size, 0)
    params = params_from_values(recipe, values)
    with torch.no_grad():
        return float(scorer.mean(views.render(scorer.input_size, lambda im, ref: apply_pipeline(im, recipe, params, ref))).mean())


def tuned(image: torch.Tensor, recipe, scorer) -> dict:  # type: ignore[no-untyped-def]
    from enhance.climb import climb
    from enhance.render import Source

    t0 = time.perf_counter()
    c = climb([Source.of(image)], recipe, scorer, steps=50, strength=None, seed=0, optimizer="adam", lr=0.15,
              crops=2, patience=12, on_step=None)[0]
    values = [{k: float(v) for k, v in p.items()} for p in c.params]
    return {"before": c.before.mean, "tuned": c.after.mean, "tune_seconds": time.perf_counter() - t0,
            "tune_steps": c.steps, "tuned_values": values}


def predicted(image: torch.Tensor, recipe, predictor, scorer) -> dict:  # type: ignore[no-untyped-def]
    from enhance.params import params_from_values
    from enhance.predict import predict_params
    from enhance.render import render, resize_long

    proxy = resize_long(image, recipe.proxy)
    predict_params(proxy, recipe, predictor)  # warm-up
    t0 = time.perf_counter()
    values = predict_params(proxy, recipe, predictor)
    seconds = time.perf_counter() - t0
    start = [dict(st.start) for st in recipe.stages]
    with torch.no_grad():
        out = render(image, recipe, params_from_values(recipe, values)).clamp(0, 1)
    mse = float(((out - image) ** 2).mean())
    return {"input": view_score(image, recipe, start, scorer), "predicted": view_score(image, recipe, values, scorer),
            "psnr_to_input": 10 * np.log10(1 / mse) if mse > 0 else float("inf"),
            "predict_seconds": seconds, "predicted_values": values}


def refined(image: torch.Tensor, recipe, predictor, scorer, steps: int) -> dict:  # type: ignore[no-untyped-def]
    import enhance

    t0 = time.perf_counter()
    _, result = enhance.tune(image, recipe, scorer, steps=steps, predictor=predictor)
    seconds = time.perf_counter() - t0
    values = [dict(st.start) for st in recipe.stages] if result.kept_input else [o["params"] for o in result.ops]
    return {"refined": view_score(image, recipe, values, scorer), "refine_seconds": seconds, "refined_values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="tonemap")
    parser.add_argument("--op", action="append", help="an operator instead of --recipe (repeat for a pipeline), as tune --op")
    parser.add_argument("--predictor", help="predictor file (default: the shipped one for the recipe)")
    parser.add_argument("--clean", type=int, default=2, help="held-out Kodak photos to add as they are")
    parser.add_argument("--clive", type=int, default=0, help="CLIVE validation photos to add")
    parser.add_argument("--tune-only", action="store_true", help="only the 50-step climbs")
    parser.add_argument("--predict-only", action="store_true", help="no climbs (except those read from --tuned)")
    parser.add_argument("--refine", type=int, help="also the prediction refined for this many steps, as tune does")
    parser.add_argument("--tuned", help="JSON of an earlier --tune-only run to reuse")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    need(KODAK)
    from enhance.recipe import as_recipe
    from nima import load_scorer

    torch.manual_seed(0)
    scorer = load_scorer()
    recipe = as_recipe(args.op or args.recipe)
    rows = {r["case"]: r for r in json.loads(Path(args.tuned).read_text())["rows"]} if args.tuned else {}
    predictor = None if args.tune_only else predictor_for(recipe, args.predictor)
    out = []
    for name, image in cases(scorer.meta, args.clean, args.clive):
        row = rows.get(name) or {"case": name, **({} if args.predict_only else tuned(image, recipe, scorer))}
        if predictor is not None:
            row.update(predicted(image, recipe, predictor, scorer))
            if args.refine is not None:
                row.update(refined(image, recipe, predictor, scorer, args.refine))
        out.append(row)
        save_json(args.json, {"recipe": recipe.name, "rows": out})  # so far: a long run can be cut short
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if "values" not in k}), flush=True)
    climbed = [r for r in out if "tuned" in r]
    summary = {"cases": len(out), "climbed": len(climbed)}
    if climbed:
        summary["mean_tune_gain"] = float(np.mean([r["tuned"] - r["before"] for r in climbed]))
    if predictor is not None:
        gains = [r["predicted"] - r["input"] for r in out]
        summary.update(mean_predicted_gain=float(np.mean(gains)), predicted_above_input=int(sum(g > 0 for g in gains)),
                       median_predict_seconds=float(np.median([r["predict_seconds"] for r in out])))
        if args.refine is not None:
            summary["mean_refined_gain"] = float(np.mean([r["refined"] - r["input"] for r in out]))
            summary["median_refine_seconds"] = float(np.median([r["refine_seconds"] for r in out]))
        clean = [r["psnr_to_input"] for r in out if r["case"].endswith(" clean") or r["case"].startswith("clive ")]
        if clean:
            summary["clean_mean_psnr_to_input"] = float(np.mean(clean))
            summary["clean_min_psnr_to_input"] = float(np.min(clean))
        if climbed:
            summary["mean_predicted_gain_on_climbed"] = float(np.mean([r["predicted"] - r["before"] for r in climbed]))
    print(json.dumps(summary))
    save_json(args.json, {"recipe": recipe.name, "summary": summary, "rows": out})


if __name__ == "__main__":
    main()
