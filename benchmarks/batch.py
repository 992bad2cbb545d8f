"""Throughput of ``enhance batch`` on the 24 Kodak photos (768x512), split into decode, tune,
render and encode from the sidecars' ``seconds``.

    python benchmarks/batch.py [--jobs 1 2] [--steps N] [--limit N] [--weights FILE]

Images per second is 24 over the command's wall time (process start and scorer load included);
the stage columns are mean seconds per photo summed over photos, so with --jobs 2 or overlapped
reading and writing they add up to more than the wall time. Prints a markdown table and the exact
commands; writes nothing but a temporary output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
STAGES = ("read", "tune", "render", "write")


def run(inputs: list[Path], jobs: int, steps: int | None, weights: str | None, out: Path) -> dict:
    cmd = [sys.executable, "-m", "cli", "batch", *map(str, inputs), "-o", str(out), "--op", "tonemap",
           "--quiet", "--jobs", str(jobs)]
    cmd += ["--steps", str(steps)] if steps else []
    cmd += ["--weights", weights] if weights else []
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    sides = [json.loads(p.read_text()) for p in sorted(out.rglob("*.png.json"))]
    stages = {k: sum(s["seconds"][k] for s in sides) / len(sides) for k in STAGES}
    steps_done = sum(s["steps"] for s in sides) / len(sides)
    return {"cmd": shlex.join(["enhance", *cmd[3:]]), "n": len(sides), "wall": wall, "stages": stages,
            "steps": steps_done}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, help="step budget (default: the recipe's)")
    ap.add_argument("--limit", type=int, help="only the first N photos")
    ap.add_argument("--weights", help="scorer weights (default: the shipped ones)")
    args = ap.parse_args()
    if not KODAK.is_dir():
        print(f"skipped: {KODAK} not present (the Kodak set lives beside the repository)")
        return
    photos = sorted(KODAK.glob("kodim*.png"))[: args.limit] if args.limit else [KODAK]
    load = os.getloadavg()[0]
    rows = []
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            rows.append((jobs, run(photos, jobs, args.steps, args.weights, out)))
            shutil.rmtree(out, ignore_errors=True)
    print(f"{rows[0][1]['n']} Kodak photos, --op tonemap, {os.cpu_count()} CPUs, load average {load:.2f} at start\n")
    print("| --jobs | images/s | wall s | steps/photo | " + " | ".join(f"{k} s/photo" for k in STAGES) + " |")
    print("|---:|---:|---:|---:|" + "---:|" * len(STAGES))
    for jobs, r in rows:
        print(f"| {jobs} | {r['n'] / r['wall']:.3f} | {r['wall']:.1f} | {r['steps']:.1f} | "
              + " | ".join(f"{r['stages'][k]:.3f}" for k in STAGES) + " |")
    print()
    for _, r in rows:
        print(f"    {r['cmd']}")


if __name__ == "__main__":
    main()
