"""How many refining steps after a prediction: measured on the restoration benchmark's TRAINING
photos (Kodak sources outside the scorer's held-out ones and outside kodim19-24), never on its
held-out ones, so that the choice of the default does not peek at the figures it is judged by.

Each source gets each restoration degradation (benchmarks/restore.py); it is tuned with the
recipe's predictor (``enhance.tune`` with ``predictor=``) for every step count of ``--steps``, and
the result is compared with the pristine original (PSNR gain over the degraded input), with the
headline score (the whole photo) and the tuning time.

    python benchmarks/refine.py --recipe tonemap --steps 0,2,5,10,20 --sources 6 --json out.json
    python benchmarks/refine.py --op tonemap --steps 0,3,5,10 --json out.json   # what `tune --op tonemap` climbs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import KODAK, load_rgb, need, predictor_for, quantise, save_json, to_array, to_tensor
from restore import DEGRADATIONS


def training_sources(meta: dict) -> list[Path]:
    """The Kodak photos the restoration benchmark does not hold out, and the predictor may see."""
    from enhance.predict import HELD_OUT_KODAK

    held = set(HELD_OUT_KODAK) | set(meta.get("pristine_holdout", []))
    return [p for p in sorted(KODAK.glob("*.png")) if p.name not in held]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="tonemap")
    parser.add_argument("--op", action="append", help="an operator, as `tune --op` takes it (repeat for a pipeline), instead of --recipe")
    parser.add_argument("--predictor", help="predictor file (default: the shipped one for the recipe)")
    parser.add_argument("--steps", default="0,2,5,10,20", help="refining step counts to compare")
    parser.add_argument("--sources", type=int, default=6, help="how many training sources (evenly spread)")
    parser.add_argument("--names", help="these training sources instead (comma-separated, e.g. kodim08.png)")
    parser.add_argument("--only", help="only the degradations whose name contains this")
    parser.add_argument("--json", help="write every case's figures here")
    args = parser.parse_args()
    need(KODAK)
    import torch
    from skimage.metrics import peak_signal_noise_ratio as psnr

    import enhance
    from enhance.recipe import as_recipe
    from nima import load_scorer

    torch.set_num_threads(1)
    scorer = load_scorer()
    recipe = as_recipe(args.op or args.recipe)
    predictor = predictor_for(recipe, args.predictor)
    sources = training_sources(scorer.meta)
    if args.names:
        sources = [p for p in sources if p.name in args.names.split(",")]
    else:
        sources = [sources[round(i * (len(sources) - 1) / max(args.sources - 1, 1))] for i in range(args.sources)]
    counts = [int(s) for s in args.steps.split(",")]
    rows = []
    for path in sources:
        pristine = load_rgb(path)
        for name, degrade in DEGRADATIONS.items():
            if args.only and args.only not in name:
                continue
            degraded = quantise(degrade(pristine))
            base = psnr(pristine, degraded, data_range=1.0)
            row = {"source": path.name, "degradation": name, "runs": {}}
            for steps in counts:
                t0 = time.perf_counter()
                out, result = enhance.tune(to_tensor(degraded), recipe, scorer, steps=steps, predictor=predictor)
                row["runs"][steps] = {"gain": psnr(pristine, quantise(to_array(out)), data_range=1.0) - base,
                                      "score": result.score["after"].mean, "before": result.score["before"].mean,
                                      "seconds": time.perf_counter() - t0, "kept_input": result.kept_input,
                                      "ops": result.ops}
            rows.append(row)
            print(path.name, name, {s: round(r["gain"], 2) for s, r in row["runs"].items()}, flush=True)
    print(f"\n{len(sources)} training sources x {len(rows) // max(len(sources), 1)} degradations, recipe {recipe.name}\n")
    print("| refining steps | mean PSNR gain (dB) | share better | worst (dB) | mean headline score | mean seconds |")
    print("|---|---|---|---|---|---|")
    for steps in counts:
        runs = [r["runs"][steps] for r in rows]
        gains = [r["gain"] for r in runs]
        print(f"| {steps} | {np.mean(gains):+.2f} | {np.mean([g > 0 for g in gains]):.0%} | {min(gains):+.2f} | "
              f"{np.mean([r['score'] for r in runs]):.3f} | {np.mean([r['seconds'] for r in runs]):.1f} |")
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
