"""The fast path of issue 23, timed as a user meets it: process start to file written.

Builds (in a temporary folder, never in the repository) a 12-megapixel JPEG by upscaling a Kodak
photo, the same photo as a 12-megapixel Radiance HDR scene (its linear light expanded through the
inverse of Reinhard's L / (1 + L), about 10 EV from black to the brightest pixel) and a folder of
one-megapixel JPEGs, then runs the commands below as subprocesses and
reports each one's wall time and the stages its sidecars record (read: the proxy or the photo
decoded; tune: prediction and climb; render: the choice, the full render and its scores; write:
encoding and the input's hash; wait: for the full decode of the JPEG after the climb; start: the
rest, chiefly importing torch and loading the scorer). It first times ``python -c "import gc, torch;
gc.freeze()"`` (the console script also freezes the collector on the way out)
three times: the floor under every row, and a gauge of how busy the machine is.

    python benchmarks/fast_path.py [--op-predictor FILE] [--repeat 1] [--batch-photos 8]

``--op-predictor``: a predictor file for ``--op tonemap`` (the operator alone) instead of the
shipped one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from common import KODAK, need

ENHANCE = [sys.executable, "-m", "cli"]
REPO = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> float:
    """Wall seconds of ``enhance ARGS`` (SystemExit when it fails)."""
    t0 = time.perf_counter()
    done = subprocess.run(ENHANCE + args, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"enhance {' '.join(args)} failed:\n{done.stderr}")
    return seconds


def run_python(code: str) -> float:
    """Wall seconds of ``python -c CODE``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def stages(sidecar: Path, wall: float) -> str:
    record = json.loads(sidecar.read_text())
    s = record["seconds"]
    start = wall - sum(s.values())
    return (f"start {start:.2f}, read {s['read']:.2f}, wait {s.get('wait', 0):.2f}, tune {s['tune']:.2f}, render {s['render']:.2f}, "
            f"write {s['write']:.2f} ({record['steps']} steps, {record['note'][:60]})")


def write_scene(path: Path, photo: Image.Image) -> None:
    """``photo`` as scene radiance: sRGB decoded to linear light, its luminance Y mapped to
    Y / (1 - 0.999 Y) with colour ratios kept, written as Radiance .hdr."""
    import cv2
    import numpy as np
    import torch

    from enhance.ops.color import luminance, srgb_to_linear

    lin = srgb_to_linear(torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)[None])
    radiance = (lin / (1 - 0.999 * luminance(lin)))[0].permute(1, 2, 0).numpy()
    assert cv2.imwrite(str(path), np.ascontiguousarray(radiance[..., ::-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--op-predictor", help="a predictor file for --op tonemap")
    parser.add_argument("--source", default="kodim05.png")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--batch-photos", type=int, default=8)
    parser.add_argument("--only", help="only the rows whose label contains this")
    args = parser.parse_args()
    need(KODAK)
    op_predictor = ["--predictor", str(Path(args.op_predictor).resolve())] if args.op_predictor else []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = folder / "big.jpg"
        photo = Image.open(KODAK / args.source).convert("RGB")
        photo.resize((4242, 2828), Image.LANCZOS).save(big, quality=92)  # 12.0 megapixels
        scene = folder / "big.hdr"
        write_scene(scene, photo.resize((4242, 2828), Image.LANCZOS))
        small = folder / "mp1"
        small.mkdir()
        for i, path in enumerate(sorted(KODAK.glob("*.png"))[: args.batch_photos]):
            im = Image.open(path).convert("RGB")
            size = (1224, 816) if im.width > im.height else (816, 1224)  # 1.0 megapixel
            im.resize(size, Image.LANCZOS).save(small / f"{i}.jpg", quality=92)
        rows = [
            ("tune --op tonemap (default)", ["tune", str(big), "--op", "tonemap", *op_predictor]),
            ("tune --op tonemap --steps 0", ["tune", str(big), "--op", "tonemap", "--steps", "0", *op_predictor]),
            ("tune --op tonemap --no-predict", ["tune", str(big), "--op", "tonemap", "--no-predict"]),
            ("tune --recipe tonemap (default)", ["tune", str(big), "--recipe", "tonemap"]),
            ("tune --recipe tonemap --steps 0", ["tune", str(big), "--recipe", "tonemap", "--steps", "0"]),
            ("tune --recipe auto (default)", ["tune", str(big), "--recipe", "auto"]),
            ("tune --recipe auto --steps 0", ["tune", str(big), "--recipe", "auto", "--steps", "0"]),
            ("tune --recipe auto --no-predict", ["tune", str(big), "--recipe", "auto", "--no-predict"]),
            ("tune big.hdr --op tonemap (default)", ["tune", str(scene), "--op", "tonemap"]),
            ("tune big.hdr --op tonemap --steps 20", ["tune", str(scene), "--op", "tonemap", "--steps", "20"]),
        ]
        imports = [run_python("import gc, torch; gc.freeze()") for _ in range(3)]  # the floor under every row (enhance freezes too)
        print(f"python -c 'import gc, torch; gc.freeze()': {', '.join(f'{t:.2f}' for t in imports)} s", flush=True)
        for label, command in rows:
            if args.only and args.only not in label:
                continue
            for _ in range(args.repeat):
                out = folder / "out.jpg"
                wall = run([*command, "-o", str(out), "--force"])
                print(f"{label}: {wall:.1f} s  [{stages(Path(f'{out}.json'), wall)}]", flush=True)
        for label, extra in (("batch --op tonemap", op_predictor), ("batch --op tonemap --steps 0", [*op_predictor, "--steps", "0"]),
                             ("batch --op tonemap --no-predict", ["--no-predict"])):
            if args.only and args.only not in label:
                continue
            outdir = folder / label.replace(" ", "_")
            wall = run(["batch", str(small), "-o", str(outdir), "--op", "tonemap", "--quiet", *extra])
            records = [json.loads(line) for line in (outdir / "manifest.jsonl").read_text().splitlines()]
            done = [r for r in records if r["status"] == "done"]
            mean = {k: sum(r["seconds"][k] for r in done) / len(done) for k in ("read", "tune", "render", "write")}
            print(f"{label}: {len(done)} one-megapixel photos in {wall:.1f} s = {len(done) / wall:.2f} photos/s "
                  f"(per photo: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()) + ")", flush=True)


if __name__ == "__main__":
    main()
