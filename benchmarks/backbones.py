"""What each EfficientNet-Lite backbone costs: the scorer's forward pass (`enhance score`), a tuning
step (forward and backward to the input), a training step of the last blocks on cached activations
and the caching pass, per image, with the size of its fp16 weights file.

    python benchmarks/backbones.py [--threads 2] [--batch 8] [--json benchmarks/results/backbones.json]

Costs are CPU milliseconds per image (the process's CPU time, all threads: on a machine shared
with other jobs it tracks the work far better than wall time does), medians of ``--repeats`` runs
after one warm-up, at each backbone's input size. The cut for training is the one
configs/default.toml uses for Lite0 (all blocks but the last frozen).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from common import save_json


def per_image(fn, images: int, repeats: int) -> float:
    """Median CPU milliseconds per image of ``fn`` over ``repeats`` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return 1000 * statistics.median(times) / images


def measure(name: str, batch: int, repeats: int) -> dict:
    from nima import NIMA, save_checkpoint

    model = NIMA(name, pretrained=True).eval()
    size = model.spec.input_size
    blocks = len(model.features._blocks)  # type: ignore[arg-type]
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    early, late = model.split(blocks - 1)
    with torch.no_grad():
        cached = early(x)

    def score() -> None:
        with torch.no_grad():
            model(x)

    def tune_step() -> None:
        image = x.clone().requires_grad_(True)
        model(image).sum().backward()

    def train_step() -> None:
        late(cached).sum().backward()

    def cache_pass() -> None:
        with torch.no_grad():
            early(x)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.pt")
        save_checkpoint(path, model)
        size_mb = os.path.getsize(path) / 2**20
    return {"input_size": size, "blocks": blocks, "weights_MiB_fp16": round(size_mb, 2),
            "score_ms": per_image(score, batch, repeats), "tune_step_ms": per_image(tune_step, batch, repeats),
            "train_step_last_block_ms": per_image(train_step, batch, repeats),
            "cache_pass_ms": per_image(cache_pass, batch, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = {"threads": args.threads, "batch": args.batch, "load_average": os.getloadavg()}
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        figures[name] = measure(name, args.batch, args.repeats)
        f = figures[name]
        print(f"| {name} | {f['input_size']} | {f['weights_MiB_fp16']:.1f} MiB | {f['score_ms']:.0f} | "
              f"{f['tune_step_ms']:.0f} | {f['train_step_last_block_ms']:.0f} | {f['cache_pass_ms']:.0f} |", flush=True)
    save_json(args.json, figures)


if __name__ == "__main__":
    main()
