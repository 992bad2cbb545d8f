"""Preference pairs from the tuner's own climbs, for `enhance train --pairs`.

Each training source of the scorer (the pristine photos its ranking term trained on; the held-out
ones recorded in the weights are never used) is degraded in some of the restoration benchmark's ways
(``none`` keeps the pristine photo) and tuned with a recipe (default ``auto``) against the scorer.
The climbed result is a photo the scorer rates highly but a person need not: the pairs written rank

- the pristine photo above the climbed result, unless the two are within ``--same-db`` of each
  other (PSNR), where no ranking is asked;
- the degraded input above the climbed result, when the result lies further from the pristine
  photo than the input did (the climb made it worse).

Writes OUT/*.png (degraded inputs and climbed results, 8 bits), OUT/pairs.csv (columns
better, worse; the pristine photos by absolute path, the rest relative to OUT) and OUT/cases.json
(each case's PSNR and predicted scores). ``--held-out`` climbs the held-out sources instead, to
measure a scorer (how far its climbs take clean and noisy photos from the pristine ones), and
writes no pairs.

    python benchmarks/climbed_pairs.py --out runs/pairs --degradations none "noise 10/255" "noise 20/255" "flat contrast"
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from common import KODAK, load_rgb, need, quantise, save_json, to_array, to_tensor
from restore import DEGRADATIONS


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def climb(args: tuple[str, str, str, str | None, Path]) -> dict:
    """Degrade one source one way, tune it, save both; return the case's figures."""
    path, degradation, recipe, weights, out = args
    import torch
    from skimage.metrics import peak_signal_noise_ratio as psnr

    import enhance
    from nima import load_scorer

    torch.set_num_threads(1)
    pristine = load_rgb(Path(path))
    degraded = pristine if degradation == "none" else quantise(DEGRADATIONS[degradation](pristine))
    scorer = load_scorer(weights)
    t0 = time.perf_counter()
    tuned_t, result = enhance.tune(to_tensor(degraded), recipe, scorer)
    tuned = quantise(to_array(tuned_t))
    stem = f"{Path(path).stem}.{_slug(degradation)}"
    if degradation != "none":
        Image.fromarray((degraded * 255).round().astype(np.uint8)).save(out / f"{stem}.png")
    Image.fromarray((tuned * 255).round().astype(np.uint8)).save(out / f"{stem}.{recipe}.png")
    with torch.no_grad():
        scores = {k: float(scorer.mean(to_tensor(v))) for k, v in
                  (("pristine", pristine), ("degraded", degraded), ("tuned", tuned))}
    return {
        "source": path, "degradation": degradation, "input": None if degradation == "none" else f"{stem}.png",
        "tuned": f"{stem}.{recipe}.png", "kept_input": result.kept_input, "seconds": time.perf_counter() - t0,
        "psnr_input": float("inf") if degradation == "none" else psnr(pristine, degraded, data_range=1.0),
        "psnr_tuned": psnr(pristine, tuned, data_range=1.0), "scores": scores,
    }


def pairs_of(case: dict, same_db: float) -> list[tuple[str, str]]:
    """(better, worse) pairs of one case (see the module docstring)."""
    if case["kept_input"]:
        return []
    pairs = []
    if case["psnr_tuned"] < same_db:
        pairs.append((case["source"], case["tuned"]))
    if case["input"] is not None and case["psnr_tuned"] < case["psnr_input"]:
        pairs.append((case["input"], case["tuned"]))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the images, pairs.csv and cases.json")
    parser.add_argument("--weights", help="scorer the tuner climbs (default: the shipped weights)")
    parser.add_argument("--recipe", default="auto")
    parser.add_argument("--degradations", nargs="+", default=["none", "noise 10/255", "noise 20/255"],
                        choices=["none", *DEGRADATIONS])
    parser.add_argument("--same-db", type=float, default=35.0,
                        help="no pristine-above pair when the climbed result is this close (PSNR, dB)")
    parser.add_argument("--held-out", action="store_true",
                        help="climb the held-out sources instead: figures to measure a scorer by, never pairs to train on")
    parser.add_argument("--limit", type=int, help="only the first N sources (a quick look)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    need(KODAK)
    from nima import load_scorer
    from nima.presets import PRESETS
    from nima.training import pristine_paths

    held = set(load_scorer(args.weights).meta.get("pristine_holdout") or [])
    # the shipped preset's ranking sources: its scikit-image photos, then Kodak from ../shared
    entries = [e for e in PRESETS["default"]["pristine"] if e.startswith("skimage:")] + [str(KODAK)]
    sources = [p for p in pristine_paths(entries) if (Path(p).name in held) == args.held_out]
    sources = sources[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [(str(Path(s).resolve()), d, args.recipe, args.weights, args.out) for s in sources for d in args.degradations]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(climb, cases))
    pairs = [] if args.held_out else [p for row in rows for p in pairs_of(row, args.same_db)]
    if pairs:
        with open(args.out / "pairs.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["better", "worse"])
            writer.writerows(pairs)
    save_json(str(args.out / "cases.json"), rows)
    above = [r for r in rows if r["scores"]["tuned"] > r["scores"]["pristine"]]
    worse = [r for r in rows if r["input"] is not None and r["psnr_tuned"] < r["psnr_input"]]
    wrote = "no pairs (held-out sources)" if args.held_out else f"{len(pairs)} pairs -> {args.out / 'pairs.csv'}"
    print(f"{len(sources)} sources x {len(args.degradations)} degradations = {len(rows)} climbs, "
          f"{time.perf_counter() - t0:.0f} s with {args.workers} workers; {wrote}")
    print(f"climbed result scored above the pristine photo: {len(above)} of {len(rows)}; "
          f"further from the pristine than its degraded input: {len(worse)} of {sum(r['input'] is not None for r in rows)}")
    for d in args.degradations:
        mine = [r for r in rows if r["degradation"] == d]
        print(f"  {d}: PSNR against the pristine, input {np.mean([r['psnr_input'] for r in mine]):.2f} dB, "
              f"climbed {np.mean([r['psnr_tuned'] for r in mine]):.2f} dB; mean score pristine "
              f"{np.mean([r['scores']['pristine'] for r in mine]):.3f}, input {np.mean([r['scores']['degraded'] for r in mine]):.3f}, "
              f"climbed {np.mean([r['scores']['tuned'] for r in mine]):.3f}")


if __name__ == "__main__":
    main()
