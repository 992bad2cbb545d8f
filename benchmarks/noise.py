"""Where `auto`'s noise guard fires: `enhance.noise.noise_level` on the restoration benchmark's
photos, clean and with each of its degradations, and on real rated photos.

The guard (`when_noisy` in recipes/auto.toml) tunes `denoise` alone on a photo that reads at least
`enhance.noise.NOISY`. This prints, per collection and degradation, the least, median and largest
reading and how many photos reach the threshold; with ``--real``, the same for CLIVE's photos and
every tenth photo of BIQ2021 (both splits), and the photos that read highest.

    python benchmarks/noise.py --biq2021 DATA --real --json benchmarks/results/noise_levels.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import KODAK, SHARED, load_rgb, need, quantise, save_json, to_tensor
from restore import DEGRADATIONS


def level(x: np.ndarray) -> float:
    """The noise reading of (H,W,3) ``x`` in [0,1], in 1/255 units."""
    from enhance.noise import noise_level

    return float(noise_level(to_tensor(x))) * 255


def summary(values: list[float], threshold: float) -> dict:
    return {"n": len(values), "min": min(values), "median": float(np.median(values)), "max": max(values),
            "at_threshold": sum(v >= threshold for v in values)}


def main() -> None:
    from enhance.noise import NOISY
    from nima.sources import pristine_paths

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--biq2021", metavar="DATA", help="a folder holding biq2021/: adds the restoration "
                        "benchmark's 30 BIQ2021 photos (and, with --real, its sample)")
    parser.add_argument("--real", action="store_true", help="also CLIVE's photos and every tenth BIQ2021 photo")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    need(KODAK)
    t0 = time.perf_counter()
    threshold = NOISY * 255
    collections = {"kodak": sorted(str(p) for p in KODAK.glob("*.png"))}
    if args.biq2021:
        collections["biq2021"] = pristine_paths([str(Path(__file__).parent / "sources" / "biq2021-test-best.csv")],
                                                args.biq2021)
    out: dict = {"threshold": threshold, "restoration": {}, "real": {}}
    print(f"noise readings in 1/255 (threshold {threshold:g}): least, median, largest, photos at the threshold")
    for name, paths in collections.items():
        photos = [load_rgb(Path(p)) for p in paths]
        for d, f in [("clean", None), *DEGRADATIONS.items()]:
            s = summary([level(quantise(x if f is None else f(x))) for x in photos], threshold)
            out["restoration"][f"{name} {d}"] = s
            print(f"{name:8s} {d:14s} {s['min']:6.2f} {s['median']:6.2f} {s['max']:6.2f}   {s['at_threshold']}/{s['n']}")
    if args.real:
        real = {"clive": sorted(p for p in (SHARED / "clive" / "Images").glob("*") if p.is_file())}
        if args.biq2021:
            real["biq2021 (every tenth)"] = sorted(Path(args.biq2021, "biq2021").rglob("*.jpg"))[::10]
        for name, files in real.items():
            if not files:
                sys.exit(f"{name}: no photos found")
            values = [level(load_rgb(p)) for p in files]
            s = summary(values, threshold)
            top = sorted(zip(values, (p.name for p in files)), reverse=True)[:5]
            s["highest"] = [[n, v] for v, n in top]
            out["real"][name] = s
            print(f"{name:22s} {s['min']:6.2f} {s['median']:6.2f} {s['max']:6.2f}   {s['at_threshold']}/{s['n']}; "
                  "highest: " + ", ".join(f"{n} {v:.2f}" for v, n in top))
    print(f"{time.perf_counter() - t0:.0f} s")
    save_json(args.json, out)


if __name__ == "__main__":
    main()
