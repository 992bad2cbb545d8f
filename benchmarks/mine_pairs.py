"""Ranking pairs mined from a scorer's own climbs, for fine-tuning it (``pairs`` in a run configuration).

A fixed set of synthetic edits covers only the directions someone thought of; the tuner finds the
scorer's weak directions by itself. Each training source (never a held-out one: pass the run's
training sources) is degraded in a known way and climbed as a user would, with the scorer given:

- ``noise``: Gaussian noise of 20/255 (the restoration benchmark's strongest), then each of the
  ``auto`` recipe's operators climbed alone from the noisy photo at ``auto``'s ranges, as ``auto``
  climbs them before it keeps one;
- ``hdr``: the photo made scene-referred by one of the HDR benchmark's constructions (log,
  Reinhard, Hable, in turn over the sources), then `tonemap` climbed from radiance.

``--climbs`` picks them (both by default; ``--climbs hdr`` for a round aimed at the HDR renderings).

Every climb's output is a worse member: the clean photo is ranked above it when the output's PSNR
against the clean photo is below ``--floor`` dB, and for the noisy climbs the noisy start too
when the output lies at least ``--moved`` dB farther from the clean photo than the start (the
climb moved away from the clean photo: a tone change that only hides the noise). Written to
``OUT``: the images as PNG (each source resized to at most ``--size`` pixels on its long side)
and ``pairs.csv`` (better, worse, kind; paths relative to OUT). The summary counts the climbs
that moved away from the clean photo while the scorer rated the output above the start.

    OMP_NUM_THREADS=2 python benchmarks/mine_pairs.py --weights runs/nima_v2.pt \
        --sources runs/nima_v2.run/split.json --leave-out kodim --limit 96 --out runs/mined
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hdr import CONSTRUCTIONS, scene  # noqa: E402

from enhance.io import atomic_path  # noqa: E402
from enhance.recipe import Recipe, as_recipe  # noqa: E402
from enhance.render import resize_long  # noqa: E402
from enhance.tune import tune_batch  # noqa: E402
from nima import Scorer, load_scorer  # noqa: E402
from nima.data import load_image  # noqa: E402

NOISE = 20 / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean().clamp_min(1e-12)))


def quantised(x: torch.Tensor) -> torch.Tensor:
    """(1,3,H,W) rounded to 8 bits, as the PNG holds it."""
    return (x.clamp(0, 1) * 255).round() / 255


def save(x: torch.Tensor, path: Path) -> None:
    array = (x[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(path)


def score(scorer: Scorer, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(scorer.mean(x))


def sources_of(spec: str) -> list[str]:
    """A run's training sources (its split.json) or a file listing one image path per line."""
    path = Path(spec)
    if path.suffix == ".json":
        return json.loads(path.read_text())["pristine_train"]
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="the scorer to climb (and to fine-tune)")
    ap.add_argument("--sources", required=True, help="a run's split.json (its pristine_train) or a list of image paths")
    ap.add_argument("--leave-out", action="append", default=[],
                    help="leave out sources whose path contains this (repeatable; e.g. kodim, when a benchmark uses them)")
    ap.add_argument("--limit", type=int, default=96, help="this many sources, evenly spaced over the list")
    ap.add_argument("--size", type=int, default=512, help="long side of the sources, in pixels")
    ap.add_argument("--steps", type=int, help="tuner steps (default: the recipe's)")
    ap.add_argument("--batch", type=int, default=8, help="sources climbed together (one scorer call a step)")
    ap.add_argument("--floor", type=float, default=35.0, help="the clean photo ranks above outputs below this PSNR (dB)")
    ap.add_argument("--moved", type=float, default=0.5, help="the noisy start ranks above outputs this much farther (dB)")
    ap.add_argument("--climbs", default="noise,hdr", help="which climbs, comma-separated (noise, hdr)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    kinds = set(args.climbs.split(","))
    if kinds - {"noise", "hdr"}:
        sys.exit(f"--climbs: {args.climbs!r}; choose from noise, hdr")

    every = [p for p in sources_of(args.sources) if not any(part in p for part in args.leave_out)]
    chosen = [every[round(i * (len(every) - 1) / max(args.limit - 1, 1))] for i in range(min(args.limit, len(every)))]
    scorer = load_scorer(args.weights)
    auto = as_recipe("auto")
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    fooled = moved_away = climbs = 0
    t0 = time.perf_counter()
    for first in range(0, len(chosen), args.batch):
        batch = chosen[first : first + args.batch]
        clean = [quantised(resize_long(load_image(p)[None], args.size)) for p in batch]
        names = [f"{first + i:04d}_{Path(p).stem}" for i, p in enumerate(batch)]
        for name, c in zip(names, clean):
            save(c, args.out / "images" / f"{name}_clean.png")
        climbs_of: list[tuple[str, list[torch.Tensor], Recipe, bool]] = []
        if "noise" in kinds:
            gen = torch.Generator().manual_seed(first)
            noisy = [quantised(c + NOISE * torch.randn(c.shape, generator=gen)) for c in clean]
            noisy_psnr = [psnr(n, c) for n, c in zip(noisy, clean)]
            noisy_score = [score(scorer, n) for n in noisy]
            for name, n in zip(names, noisy):
                save(n, args.out / "images" / f"{name}_noisy.png")
            climbs_of += [(f"noisy {st.op.name}", noisy, auto.alone(i), False) for i, st in enumerate(auto.stages)]
        constructions = [CONSTRUCTIONS[(first + i) % len(CONSTRUCTIONS)] for i in range(len(batch))]
        if "hdr" in kinds:
            radiance = [scene(c, k, seed=first + i) for i, (c, k) in enumerate(zip(clean, constructions))]
            climbs_of.append(("hdr tonemap", radiance, Recipe.from_ops(["tonemap"]), True))
        for kind, starts, recipe, linear in climbs_of:
            tuned = tune_batch(starts, recipe, scorer, steps=args.steps, linear=[linear] * len(starts))
            for i, (out, _) in enumerate(tuned):
                out = quantised(out)
                tag = kind.replace(" ", "_") + (f"_{constructions[i]}" if linear else "")
                worse = f"images/{names[i]}_{tag}.png"
                save(out, args.out / worse)
                out_psnr = psnr(out, clean[i])
                if out_psnr < args.floor:
                    rows.append({"better": f"images/{names[i]}_clean.png", "worse": worse, "kind": f"clean > {kind}"})
                if not linear:
                    climbs += 1
                    away = noisy_psnr[i] - out_psnr >= args.moved
                    if away:
                        moved_away += 1
                        rows.append({"better": f"images/{names[i]}_noisy.png", "worse": worse, "kind": f"noisy > {kind}"})
                        fooled += score(scorer, out) > noisy_score[i]
        print(f"{first + len(batch)}/{len(chosen)} sources, {len(rows)} pairs, {time.perf_counter() - t0:.0f} s", flush=True)
        # rewritten whole after every batch (an interrupted run keeps its pairs), never half-written
        with atomic_path(args.out / "pairs.csv") as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["better", "worse", "kind"])
            writer.writeheader()
            writer.writerows(rows)
    print(f"{len(rows)} pairs from {len(chosen)} sources" + (
        f"; of {climbs} noisy climbs, {moved_away} moved at least {args.moved} dB away from the clean photo, "
        f"{fooled} of them rated above their noisy start" if climbs else ""))


if __name__ == "__main__":
    main()
