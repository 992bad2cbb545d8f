"""Score every photo in a folder (recursively) into a CSV of path, mean, std.

    python examples/score_folder.py [folder] [out.csv] [--weights FILE]

``mean`` and ``std`` are the predicted mean and spread of human opinion on the scale 1..10.
Files that cannot be read are reported and left out. Paths are written relative to the CSV's
folder, and the header ``path,mean,std`` is the one ``nima.train`` reads as a ``csv:`` dataset.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import enhance
import nima

HERE = Path(__file__).resolve().parent
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".hdr", ".exr"}


def main() -> None:
    parser = argparse.ArgumentParser(description="Score a folder of photos into a CSV (path, mean, std).")
    parser.add_argument("folder", nargs="?", default=str(HERE), help="folder of photos (default: examples/)")
    parser.add_argument("out", nargs="?", default="scores.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--weights", help="scorer weights file (default: the shipped ones)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    args = parser.parse_args()

    paths = sorted(p for p in Path(args.folder).resolve().rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    scorer = nima.load_scorer(args.weights, device=args.device)
    t0 = time.perf_counter()
    rows: list[enhance.FileScore] = []
    for result in enhance.score_files(paths, scorer):   # batches of 16, resized to the scorer's input
        if isinstance(result, enhance.ImageError):
            print(f"skipped: {result}", file=sys.stderr)
        else:
            rows.append(result)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "mean", "std"])
        for r in rows:
            rel = os.path.relpath(r.path, Path(args.out).resolve().parent)
            writer.writerow([Path(rel).as_posix(), f"{r.mean:.4f}", f"{r.std:.4f}"])
    print(f"scored {len(rows)} of {len(paths)} files in {time.perf_counter() - t0:.1f} s; wrote {args.out}")
    if rows:
        best, worst = max(rows, key=lambda r: r.mean), min(rows, key=lambda r: r.mean)
        print(f"best  {best.mean:.3f} ± {best.std:.3f}  {best.path}")
        print(f"worst {worst.mean:.3f} ± {worst.std:.3f}  {worst.path}")


if __name__ == "__main__":
    main()
