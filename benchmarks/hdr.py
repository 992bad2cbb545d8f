"""HDR tone mapping against a known target: tuned `tonemap` / `tonemap_local` versus classic operators.

Scenes: each Kodak photograph (the pristine target) is made scene-referred by an invertible expansion
of its luminance, hue kept (:func:`expand`): in linear light, log2 luminance is stretched about middle
grey by a factor k in [2, 3] (highlights several EV above white, shadows several below), a smooth
illumination ramp of +-0.5 EV is added, and the whole scene is put at a random exposure (+-3 EV).
A tone mapper that compresses log luminance by ~1/k about the right grey recovers the photo, up to
the ramp, which only a local operator can undo.

Methods, all on the same scenes: ``tonemap`` and ``tonemap_local`` tuned by :func:`enhance.tune.tune`
with their defaults (recipe steps, the tuner's HDR pre-scale); ``tonemap`` untuned, at its identity
parameters after the same pre-scale (where tuning starts); Reinhard global (key 0.18, white at the
99.9th percentile of the scaled luminance); OpenCV Drago, Mantiuk and Reinhard (defaults, gamma 1, then
sRGB-encoded; exact zeros raised to the smallest positive radiance, which OpenCV needs); and a plain clip after auto-exposure (:func:`enhance.tune.display` of the pre-scaled
radiance). Reported: PSNR and SSIM (skimage) of the sRGB result against the pristine photo, and the
predicted score on the tuner's views (proxy and two crops) with the installed weights.

    OMP_NUM_THREADS=2 python benchmarks/hdr.py [--limit N] [--stride S] [--steps S] [--csv per_scene.csv] [--ceiling]

``--ceiling`` runs only ``tonemap`` fitted to each target by PSNR: what the operator can express.
``--spread`` only prints the median log-luminance spread of the Kodak targets and of the best-rated
quarter of CLIVE (the data a scene-adaptive default compression would be calibrated on).

``--stride 3`` (8 scenes) is a quick subset for checking the script; its mean is not the
benchmark's figure, which is over all 24 scenes (``--stride 1``, the default).
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

from enhance.ops.color import linear_to_srgb, luminance, srgb_to_linear  # noqa: E402
from enhance.recipe import Recipe  # noqa: E402
from enhance.tune import (  # noqa: E402
    Opinion, Views, _unconstrained, apply_pipeline, bounded, display, hdr_scale, render, resize_long, tune,
)
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
    """Plain clip after auto-exposure: the tuner's "before"."""
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
    u = [{k: v.clone().requires_grad_(True) for k, v in d.items()} for d in _unconstrained(recipe, 1, radiance.device)]
    opt = torch.optim.Adam([t for d in u for t in d.values()], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        (apply_pipeline(small, recipe, bounded(recipe, u), None, True) - goal).square().mean().backward()
        opt.step()
    with torch.no_grad():
        params = bounded(recipe, u)
        fitted = {k: round(float(v), 3) for k, v in params[0].items()}
        return render(scaled, recipe, params, linear=True).clamp(0, 1), fitted


def spread(path: Path) -> tuple[float, float]:
    """EV between the 5th and 95th, and the 1st and 99th, percentiles of a photo's linear luminance."""
    lin = srgb_to_linear(torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255))
    log_y = torch.log2(luminance(lin.permute(2, 0, 1)[None]).flatten().double() + 2.0**-20)
    q = torch.quantile(log_y, torch.tensor([0.01, 0.05, 0.95, 0.99], dtype=torch.float64)).tolist()
    return q[2] - q[1], q[3] - q[0]


def print_spreads() -> None:
    """Median spreads of the Kodak targets and of the best-rated quarter of CLIVE."""
    from nima.data.readers import read_clive

    rated = sorted(read_clive(str(CLIVE)).samples, key=lambda s: -s.mean)
    for name, paths in (("kodak", sorted(KODAK.glob("kodim*.png"))),
                        ("clive, best-rated quarter", [Path(s.path) for s in rated[: len(rated) // 4]])):
        ev = np.array([spread(p) for p in paths])
        print(f"{name} ({len(paths)} photos): median EV 5th-95th {np.median(ev[:, 0]):.2f}, "
              f"1st-99th {np.median(ev[:, 1]):.2f}")


def predicted(scorer: Scorer, image: torch.Tensor, recipe: Recipe) -> float:
    """Mean predicted score on the views the tuner scores its full render with."""
    with torch.no_grad():
        return Opinion.of(scorer(Views.of(image, recipe, 2, scorer.input_size, 0).render(scorer.input_size))).mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=24, help="first N Kodak photos")
    ap.add_argument("--stride", type=int, default=1, help="then every STRIDE-th of them (3: kodim01, 04, ...)")
    ap.add_argument("--steps", type=int, help="tuner steps (default: the recipe's)")
    ap.add_argument("--weights", help="scorer weights (default: the shipped ones)")
    ap.add_argument("--csv", type=Path, help="write per-scene figures here")
    ap.add_argument("--ceiling", action="store_true",
                    help="only `tonemap` fitted to each target by PSNR: what the operator can reach")
    ap.add_argument("--spread", action="store_true",
                    help="only the log-luminance spreads of the Kodak targets and the best-rated CLIVE photos")
    args = ap.parse_args()
    if not KODAK.is_dir():
        print(f"skipped: {KODAK} not present (a fresh clone)")
        return
    if args.spread:
        print_spreads()
        return
    from nima import load_scorer

    scorer = load_scorer(args.weights)
    print(f"weights: {scorer.weights} ({scorer.meta.get('note', 'no note')})")
    classic = {"reinhard (global)": reinhard_global, "opencv drago": opencv("drago"),
               "opencv mantiuk": opencv("mantiuk"), "opencv reinhard": opencv("reinhard"),
               "clip (auto-exposure)": clip}
    curve = Recipe.from_ops(["tonemap"])
    rows: list[dict[str, Any]] = []
    for path in sorted(KODAK.glob("kodim*.png"))[: args.limit : args.stride]:
        target = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255)
        target = target.permute(2, 0, 1)[None].contiguous()
        radiance, k = expand(target, seed=int(path.stem[-2:]))
        results: dict[str, tuple[torch.Tensor, float]] = {}
        if args.ceiling:
            t0 = time.perf_counter()
            out, fitted = fit_to_target(radiance, target, curve)
            results[CEILING] = out, time.perf_counter() - t0
            print(f"  {path.stem} {CEILING}: {fitted}", flush=True)
        else:
            for op in ("tonemap", "tonemap_local"):
                recipe = Recipe.from_ops([op])
                t0 = time.perf_counter()
                out, res = tune(radiance, recipe, scorer, steps=args.steps, linear=True)
                results[op] = out, time.perf_counter() - t0
                print(f"  {path.stem} {op}: {res.values[0]} kept={res.kept_input}", flush=True)
            t0 = time.perf_counter()  # the operator at its identity: what tuning starts from
            identity = [curve.stages[0].op.identity_params()]
            untuned = render(radiance * hdr_scale(radiance), curve, identity, linear=True).clamp(0, 1)
            results["tonemap (untuned)"] = untuned, time.perf_counter() - t0
            for name, fn in classic.items():
                t0 = time.perf_counter()
                results[name] = fn(radiance), time.perf_counter() - t0
        for name, (out, secs) in results.items():
            psnr, ssim = metrics(out, target)
            rows.append({"scene": path.stem, "k": round(k, 3), "method": name, "psnr": round(psnr, 3),
                         "ssim": round(ssim, 4), "score": round(predicted(scorer, out, curve), 4),
                         "seconds": round(secs, 2)})
        best = max((r for r in rows if r["scene"] == path.stem), key=lambda r: r["psnr"])
        print(f"{path.stem} (k={k:.2f}): best PSNR {best['method']} {best['psnr']}", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    n = len({r["scene"] for r in rows})
    print(f"\n{n} Kodak-derived HDR scenes; weights {scorer.weights}; "
          f"`OMP_NUM_THREADS=2 python benchmarks/hdr.py {' '.join(sys.argv[1:])}`\n")
    print("| method | PSNR (dB) | SSIM | predicted score | seconds/scene |")
    print("|---|---|---|---|---|")
    for name in [CEILING] if args.ceiling else ["tonemap", "tonemap_local", "tonemap (untuned)", *classic]:
        mine = [r for r in rows if r["method"] == name]
        mean = {key: sum(r[key] for r in mine) / len(mine) for key in ("psnr", "ssim", "score", "seconds")}
        print(f"| {name} | {mean['psnr']:.2f} | {mean['ssim']:.4f} | {mean['score']:.3f} | {mean['seconds']:.1f} |")


if __name__ == "__main__":
    main()
