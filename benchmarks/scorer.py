"""The scorer's model-card figures, measured on data the weights never trained on.

- Agreement with human opinion on the validation split of CLIVE recorded in the weights.
- The spread of predicted means on that split.
- Pristine-first accuracy on synthetic distortions of the held-out Kodak sources, per family.
- The peak of the score along each operator axis applied to the held-out pristine photos,
  scored through the tuner's own views (it is what the tuner climbs).

    python benchmarks/scorer.py --json benchmarks/results/scorer.json [--weights FILE]

Given ``--weights`` more than once, the figures are those of the models' output-space mixture
(their predicted distributions averaged, in shares ``--mix``; equal by default), measured on the
first file's split and held-out sources.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from common import SHARED, heldout_sources, need, save_json

# (operator, parameter, values swept); the other parameters stay at their identity.
AXES: list[tuple[str, str, list[float]]] = [
    ("exposure", "ev", list(np.linspace(-2, 2, 17))),
    ("contrast", "amount", list(np.linspace(-1, 1, 17))),
    ("contrast", "saturation", list(np.linspace(0, 2, 17))),
    ("levels", "gamma", list(np.exp(np.linspace(np.log(0.4), np.log(2.5), 17)))),
    ("levels", "black", list(np.linspace(-0.2, 0.5, 15))),
    ("denoise", "luma", list(np.linspace(-0.5, 1, 16))),
    ("sharpen", "amount", list(np.linspace(-1, 2, 16))),
    ("tonemap", "shadows", list(np.linspace(-1, 1, 17))),
    ("tonemap", "highlights", list(np.linspace(-1, 1, 17))),
]


def axis_peaks(scorer: torch.nn.Module, sources: list[Path]) -> dict[str, dict]:
    """Mean score along each axis over the sources (views at the scorer's input size); where it
    peaks, and the identity. ``scorer`` is a :class:`nima.Scorer`."""
    from enhance.recipe import Recipe
    from enhance.params import params_from_values
    from enhance.render import apply_pipeline
    from enhance.views import Views
    from nima.data.synthetic import load_pristine

    out = {}
    images = [load_pristine(p, long_side=768)[None] for p in sources]
    size = scorer.input_size
    for op, name, values in AXES:
        recipe = Recipe.from_ops([op])
        spec = {s.name: s for s in recipe.stages[0].specs}
        curve = np.zeros(len(values))
        for image in images:
            views = Views.of(image, recipe, crops=2, size=size, seed=0)
            for i, v in enumerate(values):
                vals = {s: spec[s].identity for s in spec} | {name: float(v)}
                params = params_from_values(recipe, [vals])
                with torch.no_grad():
                    x = views.render(size, lambda im, ref: apply_pipeline(im, recipe, params, ref))
                    curve[i] += float(scorer.mean(x).mean()) / len(images)
        peak = int(curve.argmax())
        out[f"{op}.{name}"] = {
            "identity": spec[name].identity, "peak": round(float(values[peak]), 3),
            "values": [round(float(v), 3) for v in values], "mean_score": [round(float(c), 4) for c in curve],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", action="append",
                        help="weights file (default: the shipped ones); repeat for a mixture of several")
    parser.add_argument("--mix", help="comma-separated shares of the --weights files in their mixture (default: equal)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    need(SHARED)
    from nima import Scorer, load_checkpoint, load_scorer
    from nima.data import ImageRatings, open_dataset, to_unit
    from nima.evaluate import evaluate_samples, pristine_first, predict, select_split
    from nima.model import Mixture

    torch.manual_seed(0)
    files = args.weights or [None]
    if len(files) == 1:
        scorer = load_scorer(files[0])
        figures: dict = {"weights": scorer.weights, "sha256": scorer.weights_sha256}
    else:
        models, metas = zip(*(load_checkpoint(f) for f in files))
        shares = [float(x) for x in args.mix.split(",")] if args.mix else None
        scorer = Scorer(Mixture(list(models), shares), metas[0])
        figures = {"weights": files, "mix": scorer.model.weights.tolist()}
    meta = scorer.meta
    device = torch.device("cpu")

    ratings = open_dataset(f"clive:{SHARED / 'clive'}")
    val = select_split(ratings.samples, ratings.root, meta, "val")
    figures["clive_val"] = evaluate_samples(scorer.model, val, device)
    loader = torch.utils.data.DataLoader(ImageRatings(val, train=False, size=scorer.input_size), batch_size=32)
    means = predict(scorer.model, (x for x, _ in loader), device) @ np.arange(1, 11)
    human = np.array([to_unit(s.mean, ratings.scale) for s in val])
    figures["spread"] = {
        "predicted": {"min": float(means.min()), "p5": float(np.percentile(means, 5)),
                      "p95": float(np.percentile(means, 95)), "max": float(means.max()), "std": float(means.std())},
        "human_on_1_10": {"min": float(human.min()), "p5": float(np.percentile(human, 5)),
                          "p95": float(np.percentile(human, 95)), "max": float(human.max()), "std": float(human.std())},
    }
    # A scorer trained without the ranking term is measured on the shipped weights' held-out sources.
    sources = heldout_sources(meta if meta.get("pristine_holdout") else load_scorer().meta)
    figures["pristine_first"] = pristine_first(scorer.model, [str(s) for s in sources], device)
    figures["axes"] = axis_peaks(scorer, sources)

    v = figures["clive_val"]
    print(f"CLIVE validation split ({v['n']} images never trained on): SRCC {v['srcc']:.3f}, PLCC {v['plcc']:.3f}, "
          f"EMD r=1 {v['emd1']:.4f}, r=2 {v['emd2']:.4f}, accuracy {v['accuracy']:.3f}")
    p, h = figures["spread"]["predicted"], figures["spread"]["human_on_1_10"]
    print(f"Spread of predicted means: {p['min']:.2f}..{p['max']:.2f} (5-95%: {p['p5']:.2f}..{p['p95']:.2f}, "
          f"std {p['std']:.2f}); human means on 1-10: {h['min']:.2f}..{h['max']:.2f} (std {h['std']:.2f})")
    pf = figures["pristine_first"]
    print(f"Pristine-first accuracy on {len(sources)} held-out sources: {100 * pf['accuracy']:.1f}% of {pf['pairs']} pairs")
    print("| family | pristine first |\n|---|---|")
    for fam, acc in pf["per_family"].items():
        print(f"| {fam} | {100 * acc:.0f}% |")
    print("\n| axis | identity | score peaks at |\n|---|---|---|")
    for axis, a in figures["axes"].items():
        print(f"| {axis} | {a['identity']:g} | {a['peak']:g} |")
    save_json(args.json, figures)


if __name__ == "__main__":
    main()
