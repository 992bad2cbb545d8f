"""HDR tone mapping against a known target: tuned `tonemap` versus classic operators, on scenes that
no single operator's inverse decides.

Scenes: each pristine photo (the known target; Kodak by default, ``--source clive`` for the
best-rated quarter of CLIVE, photos independent of the benchmark) is made scene-referred in three
ways, each on luminance with colour ratios kept and a seeded exposure offset of up to +-3 EV:

- ``log`` (:func:`expand`): log2 luminance stretched about middle grey by k in [2, 3], plus a smooth
  illumination ramp of +-0.5 EV (which only a local operator can undo);
- ``reinhard`` (:func:`inverse_reinhard`): the inverse of Reinhard's global L / (1 + L);
- ``hable`` (:func:`inverse_hable`): the inverse of Hable's filmic curve, normalised at a white of 11.2.

Methods, all on the same scenes: ``tonemap`` tuned by :func:`enhance.tune.tune` with its defaults
(recipe steps, the tuner's HDR pre-scale and start, structural-fidelity weight, pull toward the
start and least score gain; ``--fidelity W[,W...]``, ``--strength S[,S...]`` and ``--gain
G[,G...]`` tune at other weights, pulls and least gains instead, every combination of them,
``--local`` adds `tonemap_local`); ``tonemap`` untuned, the input as displayed after the same
pre-scale (:func:`enhance.render.as_displayed`, where tuning starts); Reinhard global (key 0.18, white
at the 99.9th percentile of the scaled luminance); OpenCV Drago, Mantiuk and Reinhard (defaults,
gamma 1, then sRGB-encoded; exact zeros raised to the smallest positive radiance, which OpenCV
needs); and a plain clip after auto-exposure (:func:`enhance.render.display` of the pre-scaled
radiance). Reported per construction and overall: PSNR and SSIM (skimage) of the sRGB result
against the pristine photo; TMQI's structural fidelity S, statistical naturalness N and quality Q
(:func:`enhance.fidelity.tmqi`, the rendering against the scene); and the predicted score on the
tuner's views (proxy and two crops) with the installed weights, beside that of the pristine photo:
a method that misses the target but is rated above it points at the objective, not at the climb.

    OMP_NUM_THREADS=2 python benchmarks/hdr.py [--source kodak|clive] [--limit N] [--stride S]
        [--steps S] [--fidelity W,...] [--strength S,...] [--gain G,...] [--local] [--csv per_scene.csv] [--ceiling]
        [--attribute]

The same means are then split by whether the photo was one of the scorer's ranking sources in
training (the weights' ``pristine_train``: kodim01-18 for the shipped weights), whose pristine
version the scorer learnt to rank first, or not (kodim19-24, and every CLIVE photo).

``--attribute`` also renders the tuned ``tonemap`` with each parameter alone at its identity value
and with each alone tuned, and prints the mean PSNR and TMQI Q of each per construction: which
parameter's move costs or gains against the known rendering.

``--limit 1`` (kodim01, 3 scenes) or ``--stride 12`` (kodim01 and kodim13, 6 scenes) is a small
sample; the full run is the 24 Kodak photos (72 scenes). Each tuned scene costs one climb per
weight (4-5 s on this 2-core CPU, benchmarks/RESULTS.md). ``--ceiling`` runs only ``tonemap``
fitted to each target by PSNR: what the operator can express. ``--spread`` only prints the median
log-luminance spread of the Kodak targets and of the best-rated quarter of CLIVE, and that of the
global Reinhard and the untuned `tonemap` rendering of each construction's scenes.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from enhance.fidelity import tmqi  # noqa: E402
from enhance.ops.color import linear_to_srgb, luminance, srgb_to_linear  # noqa: E402
from enhance.recipe import Recipe  # noqa: E402
from enhance.params import bounded, unconstrained  # noqa: E402
from enhance.render import Source, apply_pipeline, display, hdr_scale, render, resize_long  # noqa: E402
from enhance.result import Opinion  # noqa: E402
from enhance.tune import tune  # noqa: E402
from enhance.views import Views  # noqa: E402
from nima import Scorer  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"
CLIVE = ROOT.parent / "shared" / "data" / "clive"
GREY = math.log2(0.18)
CEILING = "tonemap fitted to the target (ceiling)"
EPS = 2.0**-14  # below the darkest non-zero 8-bit sRGB level (~3e-4 linear)


def expand(pristine: torch.Tensor, seed: int) -> tuple[torch.Tensor, float]:
    """Pristine sRGB (1,3,H,W) in [0,1] -> (scene radiance (1,3,H,W) >= 0, expansion factor k).

    log2 Y' = log2 0.18 + k (log2(Y + EPS) - log2 0.18) + ramp + offset, applied as a common gain
    to linear R, G, B (black stays black); monotone in Y, hence invertible.
    """
    g = np.random.default_rng(seed)
    k = float(g.uniform(2.0, 3.0))
    theta, offset = float(g.uniform(0, 2 * math.pi)), float(g.uniform(-3.0, 3.0))
    lin = srgb_to_linear(pristine)
    h, w = lin.shape[-2:]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    ramp = 0.5 * (math.cos(theta) * xx + math.sin(theta) * yy)
    log_gain = (k - 1) * (torch.log2(luminance(lin) + EPS) - GREY) + ramp + offset
    return lin * torch.exp2(log_gain), k


HABLE = (0.15, 0.50, 0.10, 0.20, 0.02, 0.30)  # A..F of Hable's filmic curve
HABLE_WHITE = 11.2
REINHARD_TOP = 1 - 2.0**-8  # display luminance of 1 would need infinite radiance: the brightest pixels map here


def with_luminance(lin: torch.Tensor, y: torch.Tensor, scene_y: torch.Tensor) -> torch.Tensor:
    """Linear (1,3,H,W) ``lin`` of luminance ``y`` (1,1,H,W) given luminance ``scene_y``, colour ratios kept."""
    return lin * torch.where(y > 0, scene_y / y.clamp_min(1e-12), torch.zeros_like(y))


def offset(seed: int) -> float:
    """The seeded exposure of a scene, EV in [-3, 3]."""
    return float(np.random.default_rng(seed).uniform(-3.0, 3.0))


def inverse_reinhard(pristine: torch.Tensor, seed: int) -> torch.Tensor:
    """Pristine sRGB (1,3,H,W) -> scene radiance whose global Reinhard L / (1 + L) is the photo's
    luminance (capped at ``REINHARD_TOP``), at a seeded exposure."""
    lin = srgb_to_linear(pristine)
    y = luminance(lin)
    shown = y.clamp(0, REINHARD_TOP)
    return with_luminance(lin, y, shown / (1 - shown) * 2.0 ** offset(seed))


def hable(x: torch.Tensor) -> torch.Tensor:
    """Hable's filmic curve, (x(Ax+CB)+DE) / (x(Ax+B)+DF) - E/F (elementwise)."""
    a, b, c, d, e, f = HABLE
    return (x * (a * x + c * b) + d * e) / (x * (a * x + b) + d * f) - e / f


def inverse_hable(pristine: torch.Tensor, seed: int) -> torch.Tensor:
    """Pristine sRGB (1,3,H,W) -> scene radiance whose Hable curve over its value at white 11.2 is the
    photo's luminance, at a seeded exposure. The curve's inverse is the root of a quadratic."""
    a, b, c, d, e, f = HABLE
    lin = srgb_to_linear(pristine)
    y = luminance(lin).double()
    t = y.clamp(0, 1) * hable(torch.tensor(HABLE_WHITE, dtype=torch.float64)) + e / f
    # t (x(Ax+B) + DF) = x(Ax+CB) + DE  <=>  A(t-1) x^2 + B(t-C) x + D(Ft-E) = 0, with t < 1
    qa, qb, qc = a * (t - 1), b * (t - c), d * (f * t - e)
    x = (-qb - torch.sqrt((qb**2 - 4 * qa * qc).clamp_min(0))) / (2 * qa)
    return with_luminance(lin, y.float(), x.clamp_min(0).float() * 2.0 ** offset(seed))


CONSTRUCTIONS = ("log", "reinhard", "hable")


def scene(pristine: torch.Tensor, construction: str, seed: int) -> torch.Tensor:
    """The scene-referred radiance (1,3,H,W) of a pristine photo by one construction."""
    if construction == "log":
        return expand(pristine, seed)[0]
    return {"reinhard": inverse_reinhard, "hable": inverse_hable}[construction](pristine, seed)


def reinhard_global(radiance: torch.Tensor) -> torch.Tensor:
    """Reinhard et al. 2002, global: key 0.18, white at the 99.9th percentile of scaled luminance."""
    y = luminance(radiance)
    scaled = y * hdr_scale(radiance)
    white = float(torch.quantile(scaled.flatten()[:: max(1, scaled.numel() // 1_000_000)], 0.999))
    shown = scaled * (1 + scaled / white**2) / (1 + scaled)
    return linear_to_srgb((radiance * shown / y.clamp_min(1e-12)).clamp(0, 1))


def opencv(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """An OpenCV tone mapper (defaults, gamma 1: linear output) followed by the sRGB encoding."""
    import cv2

    make = {"drago": cv2.createTonemapDrago, "mantiuk": cv2.createTonemapMantiuk,
            "reinhard": cv2.createTonemapReinhard}[name]

    def run(radiance: torch.Tensor) -> torch.Tensor:
        # OpenCV takes log of every channel: an exact 0 gives NaN that spreads through its normalisation
        # (a near-black result), so zeros are raised to the scene's smallest positive value.
        floor = float(radiance[radiance > 0].min())
        bgr = np.ascontiguousarray(radiance[0].permute(1, 2, 0).clamp_min(floor).numpy()[..., ::-1], dtype=np.float32)
        out = np.nan_to_num(make(1.0).process(bgr), nan=0.0, posinf=1.0, neginf=0.0)[..., ::-1]
        return linear_to_srgb(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None].clamp(0, 1))

    return run


def clip(radiance: torch.Tensor) -> torch.Tensor:
    """Plain clip after auto-exposure."""
    return display(radiance * hdr_scale(radiance))


def metrics(image: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = image[0].permute(1, 2, 0).double().numpy()
    b = target[0].permute(1, 2, 0).double().numpy()
    return (float(peak_signal_noise_ratio(b, a, data_range=1.0)),
            float(structural_similarity(b, a, data_range=1.0, channel_axis=2)))


def fit_to_target(
    radiance: torch.Tensor, target: torch.Tensor, recipe: Recipe, steps: int = 200
) -> tuple[torch.Tensor, dict[str, float]]:
    """The operator's ceiling: its parameters fitted by Adam to the known target (MSE at a 384 px
    proxy, after the tuner's pre-scale), then rendered at full size. Not a tone mapper (it sees
    the answer); it separates what the operator can express from what the scorer steers it to.
    Returns the rendering and the fitted parameters of the first stage."""
    scaled = radiance * hdr_scale(radiance)
    small, goal = resize_long(scaled, 384), resize_long(target, 384)
    u = [{k: v.clone().requires_grad_(True) for k, v in d.items()} for d in unconstrained(recipe, 1, radiance.device)]
    opt = torch.optim.Adam([t for d in u for t in d.values()], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        (apply_pipeline(small, recipe, bounded(recipe, u), None, True) - goal).square().mean().backward()
        opt.step()
    with torch.no_grad():
        params = bounded(recipe, u)
        fitted = {k: round(float(v), 3) for k, v in params[0].items()}
        return render(scaled, recipe, params, linear=True).clamp(0, 1), fitted


def spread(image: torch.Tensor) -> tuple[float, float]:
    """EV between the 5th and 95th, and the 1st and 99th, percentiles of the linear luminance of a
    (1,3,H,W) sRGB image."""
    log_y = torch.log2(luminance(srgb_to_linear(image)).flatten().double() + 2.0**-20)
    q = torch.quantile(log_y, torch.tensor([0.01, 0.05, 0.95, 0.99], dtype=torch.float64)).tolist()
    return q[2] - q[1], q[3] - q[0]


def print_spreads() -> None:
    """Median spreads of the Kodak targets and of the best-rated quarter of CLIVE; then, per
    construction, the 5th-95th spread of each Kodak scene's global Reinhard rendering, its ratio to
    the target's, and the share of scenes whose rendering spans more than well-rated CLIVE photos
    (75th, 90th percentile): whether a scene statistic tells how much contrast the rendering should
    have; and the same spread of the untuned `tonemap` rendering (where the climb starts, its
    contrast lowered to span at most ``HDR_SPREAD``)."""
    from nima.data.readers import read_clive

    rated = sorted(read_clive(str(CLIVE)).samples, key=lambda s: -s.mean)
    for name, paths in (("kodak", sorted(KODAK.glob("kodim*.png"))),
                        ("clive, best-rated quarter", [Path(s.path) for s in rated[: len(rated) // 4]])):
        ev = np.array([spread(load(p)) for p in paths])
        natural = np.percentile(ev[:, 0], [75, 90])  # the last one printed is CLIVE's
        print(f"{name} ({len(paths)} photos): median EV 5th-95th {np.median(ev[:, 0]):.2f} (75th and 90th percentile "
              f"of photos {natural[0]:.2f}, {natural[1]:.2f}), 1st-99th {np.median(ev[:, 1]):.2f}")
    for construction in CONSTRUCTIONS:
        shown: dict[str, list[float]] = {"global Reinhard": [], "untuned tonemap": []}
        ratio: dict[str, list[float]] = {"global Reinhard": [], "untuned tonemap": []}
        for path in sorted(KODAK.glob("kodim*.png")):
            target = load(path)
            radiance = scene(target, construction, int(path.stem[-2:]) + 1000 * CONSTRUCTIONS.index(construction))
            for name, image in (("global Reinhard", reinhard_global(radiance)),
                                ("untuned tonemap", Source.of(radiance, linear=True).plain)):
                shown[name].append(spread(image)[0])
                ratio[name].append(shown[name][-1] / spread(target)[0])
        for name, ev_ in shown.items():
            print(f"{name} on the {construction} scenes: EV 5th-95th median {np.median(ev_):.2f} "
                  f"(range {min(ev_):.2f}-{max(ev_):.2f}); against the target's, median {np.median(ratio[name]):.2f} "
                  f"(range {min(ratio[name]):.2f}-{max(ratio[name]):.2f}); share above CLIVE's 75th and 90th percentile "
                  + ", ".join(f"{np.mean(np.array(ev_) > t):.2f}" for t in natural))


def predicted(scorer: Scorer, image: torch.Tensor, recipe: Recipe) -> float:
    """Mean predicted score on the views the tuner scores its full render with."""
    with torch.no_grad():
        return Opinion.of(scorer(Views.of(image, recipe, 2, scorer.input_size, 0).render(scorer.input_size))).mean


def photos(source: str) -> list[Path]:
    """The pristine photos: the 24 Kodak ones, or the best-rated quarter of CLIVE (best first)."""
    if source == "kodak":
        return sorted(KODAK.glob("kodim*.png"))
    from nima.data.readers import read_clive

    rated = sorted(read_clive(str(CLIVE)).samples, key=lambda s: -s.mean)
    return [Path(s.path) for s in rated[: len(rated) // 4]]


def load(path: Path) -> torch.Tensor:
    """(1,3,H,W) sRGB in [0,1]."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def attribution(radiance: torch.Tensor, target: torch.Tensor, recipe: Recipe,
                values: dict[str, float]) -> dict[str, tuple[float, float]]:
    """(PSNR against ``target``, TMQI Q against the scene) of one-stage ``recipe`` rendered with its
    tuned ``values``, with each parameter alone back at its identity value (``"without NAME"``), and
    with each alone tuned (``"only NAME"``)."""
    identity = recipe.stages[0].op.identity
    scaled = radiance * hdr_scale(radiance)

    def figures(chosen: dict[str, float]) -> tuple[float, float]:
        params = [{k: torch.tensor(float(v)) for k, v in chosen.items()}]
        image = render(scaled, recipe, params, linear=True).clamp(0, 1)
        return metrics(image, target)[0], float(tmqi(image, radiance).q)

    out = {"tuned": figures(values), "identity": figures(identity)}
    for name in values:
        out[f"without {name}"] = figures({**values, name: identity[name]})
        out[f"only {name}"] = figures({**identity, name: values[name]})
    return out


def attribution_table(attributed: list[tuple[str, dict[str, tuple[float, float]]]]) -> None:
    """Mean PSNR and TMQI Q of each `attribution` variant per construction."""
    built = [c for c in CONSTRUCTIONS if any(c == a for a, _ in attributed)]
    print("\n`tonemap` tuned, each parameter's share (mean PSNR, dB / TMQI Q; scenes kept as the input left out)\n")
    print("| rendering | " + " | ".join(built) + " |")
    print("|---|" + "---|" * len(built))
    for variant in attributed[0][1]:
        means = [np.mean([d[variant] for a, d in attributed if a == c], axis=0) for c in built]
        print(f"| {variant} | " + " | ".join(f"{m[0]:.2f} / {m[1]:.4f}" for m in means) + " |")


def table(rows: list[dict[str, Any]], methods: list[str]) -> None:
    """Mean figures per method over all scenes, then PSNR, SSIM and TMQI Q per construction."""
    def mean(name: str, key: str, construction: str | None = None) -> float:
        mine = [r[key] for r in rows if r["method"] == name and construction in (None, r["construction"])]
        return sum(mine) / len(mine)

    def above(name: str) -> float:
        mine = [r["score"] > r["target_score"] for r in rows if r["method"] == name]
        return sum(mine) / len(mine)

    print(f"Predicted score of the targets themselves: {mean_target(rows):.3f}; 'rated above the target': the share "
          "of scenes whose rendering the scorer rates above the pristine photo (where a method falls short of the "
          "target but is rated above it, the objective is at fault, not the climb).\n")
    print("| method | PSNR (dB) | SSIM | TMQI S | TMQI N | TMQI Q | predicted score | rated above the target | seconds/scene |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in methods:
        print(f"| {m} | {mean(m, 'psnr'):.2f} | {mean(m, 'ssim'):.4f} | {mean(m, 's'):.4f} | {mean(m, 'n'):.4f} | "
              f"{mean(m, 'q'):.4f} | {mean(m, 'score'):.3f} | {above(m):.0%} | {mean(m, 'seconds'):.1f} |")
    built = [c for c in CONSTRUCTIONS if any(r["construction"] == c for r in rows)]
    print("\n| method | " + " | ".join(f"{c}: PSNR / SSIM / Q" for c in built) + " |")
    print("|---|" + "---|" * len(built))
    for m in methods:
        print(f"| {m} | " + " | ".join(f"{mean(m, 'psnr', c):.2f} / {mean(m, 'ssim', c):.4f} / {mean(m, 'q', c):.4f}"
                                       for c in built) + " |")


def mean_target(rows: list[dict[str, Any]]) -> float:
    """Mean predicted score of the pristine photos, one per scene."""
    per_scene = {(r["scene"], r["construction"]): r["target_score"] for r in rows}
    return float(np.mean(list(per_scene.values())))


def seen_table(rows: list[dict[str, Any]], methods: list[str], seen: set[str]) -> None:
    """Mean PSNR and TMQI Q per method over the scenes of photos that were ranking sources of the
    scorer's training (``seen``: its pristine versions were ranked above their distortions) and over
    the others."""
    count = {flag: len({r["scene"] for r in rows if (r["scene"] in seen) == flag}) for flag in (True, False)}
    if not (count[True] and count[False]):
        return
    parts = [(f"ranking sources of the scorer, {count[True]} photos", True),
             (f"photos it did not rank, {count[False]}", False)]
    print("\n| method | " + " | ".join(f"{name}: PSNR / Q" for name, _ in parts) + " |")
    print("|---|" + "---|" * len(parts))
    for m in methods:
        cells = []
        for _, flag in parts:
            mine = [r for r in rows if r["method"] == m and (r["scene"] in seen) == flag]
            cells.append(f"{np.mean([r['psnr'] for r in mine]):.2f} / {np.mean([r['q'] for r in mine]):.4f}")
        print(f"| {m} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=("kodak", "clive"), default="kodak", help="the pristine photos")
    ap.add_argument("--limit", type=int, default=24, help="first N photos")
    ap.add_argument("--stride", type=int, default=1, help="then every STRIDE-th of them (4: kodim01, 05, ...)")
    ap.add_argument("--skip", type=int, default=0, help="then leave out the first SKIP of those (to continue a run)")
    ap.add_argument("--constructions", default=",".join(CONSTRUCTIONS), help="which scene constructions, comma-separated")
    ap.add_argument("--steps", type=int, help="tuner steps (default: the recipe's)")
    ap.add_argument("--fidelity", help="tune at these structural-fidelity weights (comma-separated; default: the recipe's)")
    ap.add_argument("--strength", help="tune at these pulls toward the identity (the recipe's hdr_strength; comma-separated)")
    ap.add_argument("--gain", help="tune at these least score gains over the start (the recipe's hdr_gain; comma-separated)")
    ap.add_argument("--local", action="store_true", help="also tune `tonemap_local`")
    ap.add_argument("--weights", help="scorer weights (default: the shipped ones)")
    ap.add_argument("--csv", type=Path, help="write per-scene figures here (after every scene)")
    ap.add_argument("--ceiling", action="store_true",
                    help="only `tonemap` fitted to each target by PSNR: what the operator can reach")
    ap.add_argument("--attribute", action="store_true",
                    help="also each tuned parameter's share of the PSNR and TMQI Q (needs one fidelity weight, strength and gain)")
    ap.add_argument("--spread", action="store_true",
                    help="only the log-luminance spreads of the Kodak targets, the best-rated CLIVE photos, and global Reinhard's and the untuned renderings")
    args = ap.parse_args()
    if not KODAK.is_dir() or (args.source == "clive" and not CLIVE.is_dir()):
        print(f"skipped: {KODAK if not KODAK.is_dir() else CLIVE} not present (a fresh clone)")
        return
    if args.spread:
        print_spreads()
        return
    constructions = args.constructions.split(",")
    unknown = set(constructions) - set(CONSTRUCTIONS)
    if unknown:
        sys.exit(f"unknown construction(s) {', '.join(sorted(unknown))}: use {', '.join(CONSTRUCTIONS)}")
    from nima import load_scorer

    scorer = load_scorer(args.weights)
    print(f"weights: {scorer.weights} ({scorer.meta.get('note', 'no note')})")
    classic = {"reinhard (global)": reinhard_global, "opencv drago": opencv("drago"),
               "opencv mantiuk": opencv("mantiuk"), "opencv reinhard": opencv("reinhard"),
               "clip (auto-exposure)": clip}
    curve = Recipe.from_ops(["tonemap"])
    weights = [float(w) for w in args.fidelity.split(",")] if args.fidelity else [curve.fidelity]
    pulls = [float(p) for p in args.strength.split(",")] if args.strength else [curve.hdr_strength]
    gains = [float(g) for g in args.gain.split(",")] if args.gain else [curve.hdr_gain]

    def label(w: float, p: float, g: float) -> str:
        named = ([f"fidelity {w:g}"] * (len(weights) > 1) + [f"strength {p:g}"] * (len(pulls) > 1)
                 + [f"gain {g:g}"] * (len(gains) > 1))
        return f"tonemap ({', '.join(named)})" if named else "tonemap"

    tuned = {label(w, p, g): Recipe.from_ops(["tonemap"], fidelity=w, hdr_strength=p, hdr_gain=g)
             for w in weights for p in pulls for g in gains}
    if args.local:
        tuned["tonemap_local"] = Recipe.from_ops(["tonemap_local"])
    if args.attribute and len(tuned) != 1:
        sys.exit("--attribute takes one fidelity weight, strength and gain")
    rows: list[dict[str, Any]] = []
    attributed: list[tuple[str, dict[str, tuple[float, float]]]] = []
    for number, path in list(enumerate(photos(args.source)[: args.limit : args.stride]))[args.skip:]:
        target = load(path)
        target_score = round(predicted(scorer, target, curve), 4)
        for c, construction in enumerate(constructions):
            # the log construction keeps the seeds of the benchmark's first version (the photo's number)
            seed = int(path.stem[-2:]) if args.source == "kodak" else number
            seed += 1000 * CONSTRUCTIONS.index(construction)
            radiance = scene(target, construction, seed)
            results: dict[str, tuple[torch.Tensor, float]] = {}
            if args.ceiling:
                t0 = time.perf_counter()
                out, fitted = fit_to_target(radiance, target, curve)
                results[CEILING] = out, time.perf_counter() - t0
                print(f"  {path.stem} {construction} {CEILING}: {fitted}", flush=True)
            else:
                for name, recipe in tuned.items():
                    t0 = time.perf_counter()
                    out, res = tune(radiance, recipe, scorer, steps=args.steps, linear=True)
                    results[name] = out, time.perf_counter() - t0
                    print(f"  {path.stem} {construction} {name}: {res.values[0]} kept={res.kept_input}", flush=True)
                    if args.attribute and name == "tonemap" and not res.kept_input:
                        attributed.append((construction, attribution(radiance, target, recipe, res.values[0])))
                t0 = time.perf_counter()  # the input as displayed: what tuning starts from
                untuned = Source.of(radiance, linear=True).plain
                results["tonemap (untuned)"] = untuned, time.perf_counter() - t0
                for name, fn in classic.items():
                    t0 = time.perf_counter()
                    results[name] = fn(radiance), time.perf_counter() - t0
            for name, (out, secs) in results.items():
                psnr, ssim = metrics(out, target)
                quality = tmqi(out, radiance)
                rows.append({"scene": path.stem, "construction": construction, "method": name,
                             "psnr": round(psnr, 3), "ssim": round(ssim, 4), "s": round(float(quality.s), 4),
                             "n": round(float(quality.n), 4), "q": round(float(quality.q), 4),
                             "score": round(predicted(scorer, out, curve), 4), "target_score": target_score,
                             "seconds": round(secs, 2)})
            mine = [r for r in rows if r["scene"] == path.stem and r["construction"] == construction]
            if args.csv:  # rewritten after every scene, so that an interrupted run keeps what it measured
                with open(args.csv, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
            best = max(mine, key=lambda r: r["psnr"])
            print(f"{path.stem} {construction}: best PSNR {best['method']} {best['psnr']}; "
                  + ", ".join(f"{r['method']} {r['psnr']}" for r in mine if r["method"] in tuned), flush=True)
    n = len({r["scene"] for r in rows})
    print(f"\n{n} {args.source} photos x {len(constructions)} constructions; weights {scorer.weights}; "
          f"`OMP_NUM_THREADS=2 python benchmarks/hdr.py {' '.join(sys.argv[1:])}`\n")
    methods = [CEILING] if args.ceiling else [*tuned, "tonemap (untuned)", *classic]
    table(rows, methods)
    seen_table(rows, methods, {Path(name).stem for name in scorer.meta.get("pristine_train", [])})
    if attributed:
        attribution_table(attributed)


if __name__ == "__main__":
    main()
