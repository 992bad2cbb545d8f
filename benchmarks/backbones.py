"""What each EfficientNet-Lite backbone costs and what its features are worth.

Cost: the scorer's forward pass (`enhance score`), a tuning step (forward and backward to the
input), a training step of the trained blocks and the head on cached activations, and the caching
pass, per image, with the size of its fp16 weights file. CPU milliseconds per image (the process's
CPU time, all threads: on a machine shared with other jobs it tracks the work far better than wall
time does), medians of ``--repeats`` runs after one warm-up, at each backbone's input size or at
each of ``--sizes``. The training cut freezes the first half of the blocks (8 of 16 for Lite0).

Worth (``--probe DATA``, a folder holding clive/ and biq2021/): a linear probe, ridge regression
from the mean- and std-pooled ImageNet features (no training of the network) to the opinion
scores, fitted on CLIVE's training split plus ``--probe-images`` photos of BIQ2021's training part
and measured (SRCC) on CLIVE's validation split and on BIQ2021's validation part, the splits of
configs/default.toml. BIQ2021's Test split is not touched. The features are taken of the whole
image resized to the input size, so ``--sizes`` shows what a larger view is worth.

    python benchmarks/backbones.py --batch 4 --repeats 2 --probe DATA --json benchmarks/results/backbones.json
    python benchmarks/backbones.py --only efficientnet_lite0 --sizes 224,384 --batch 4 --repeats 2 \
        --json benchmarks/results/backbones_sizes.json
    python benchmarks/backbones.py --only efficientnet_lite0 --sizes 224,384,448 --batch 4 --repeats 2 --probe DATA
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nima import NIMA

from common import save_json

BACKBONES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def per_image(fn, images: int, repeats: int) -> float:
    """Median CPU milliseconds per image of ``fn`` over ``repeats`` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return 1000 * statistics.median(times) / images


def measure(name: str, size: int | None, batch: int, repeats: int) -> dict:
    from nima import save_checkpoint

    model = NIMA(name, pretrained=True, input_size=size).eval()
    size = model.input_size
    blocks = len(model.features._blocks)  # type: ignore[arg-type]
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    early, late = model.split(blocks // 2)
    with torch.no_grad():
        cached = early(x)

    def score() -> None:
        with torch.no_grad():
            model(x)

    def tune_step() -> None:
        image = x.clone().requires_grad_(True)
        model(image).sum().backward()

    def train_step() -> None:
        model.predict(late(cached)).sum().backward()

    def cache_pass() -> None:
        with torch.no_grad():
            early(x)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.pt")
        save_checkpoint(path, model)
        size_mb = os.path.getsize(path) / 2**20
    return {"input_size": size, "blocks": blocks, "weights_MiB_fp16": round(size_mb, 2),
            "score_ms": per_image(score, batch, repeats), "tune_step_ms": per_image(tune_step, batch, repeats),
            "train_step_ms": per_image(train_step, batch, repeats),
            "cache_pass_ms": per_image(cache_pass, batch, repeats)}


def probe_data(root: str, images: int) -> tuple[list, list]:
    """(fit, measure): lists of (dataset kind, samples): CLIVE's training split and ``images`` photos
    of BIQ2021's training part to fit; CLIVE's validation split and BIQ2021's validation part (at
    most ``images`` // 2) to measure."""
    from nima.training import load_data, read_config

    config = read_config(str(Path(__file__).parent.parent / "configs" / "default.toml"), data_root=root, pristine=[])
    data = load_data(config)
    rng = np.random.default_rng(0)

    def some(samples: list, n: int) -> list:
        return [samples[i] for i in sorted(rng.choice(len(samples), min(n, len(samples)), replace=False))]

    fit, measure_ = [], []
    for kind, train, val in zip(data.kinds, data.train, data.val):
        fit.append((kind, train if kind == "clive" else some(train, images)))
        measure_.append((kind, val if kind == "clive" else some(val, images // 2)))
    return fit, measure_


def pooled_features(model: NIMA, samples: list, batch: int) -> np.ndarray:
    """(N, 2 x channels) mean- and std-pooled features of ``model`` (a NIMA) of the whole image at the input size."""
    from torch.utils.data import DataLoader

    from nima.data import ImageRatings

    loader = DataLoader(ImageRatings(samples, train=False, size=model.input_size), batch_size=batch)
    out = []
    with torch.no_grad():
        for images, _ in loader:
            f = model.features((images - model.norm_mean) / model.norm_std)
            out.append(torch.cat([f.mean((2, 3)), f.std((2, 3))], 1).numpy())
    return np.concatenate(out)


def ridge_srcc(fit: list[tuple[np.ndarray, np.ndarray]], measure_: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Fit one ridge regression on every (features, scores) pair of ``fit`` (each dataset's scores
    standardised within itself, as their scales differ), the penalty chosen by 5-fold
    cross-validation on the fit set; SRCC on each pair of ``measure_``."""
    from scipy.stats import spearmanr

    x = np.concatenate([f for f, _ in fit])
    y = np.concatenate([(s - s.mean()) / s.std() for _, s in fit])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd

    def solve(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
        return np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b)

    folds = np.arange(len(z)) % 5
    np.random.default_rng(0).shuffle(folds)
    best = min((10.0**k for k in range(0, 6)), key=lambda lam: sum(
        np.mean((z[folds == k] @ solve(z[folds != k], y[folds != k], lam) - y[folds == k]) ** 2) for k in range(5)))
    w = solve(z, y, best)
    return [float(spearmanr(((f - mu) / sd) @ w, s)[0]) for f, s in measure_]


def probe(name: str, size: int | None, fit: list, measure_: list, batch: int) -> dict:
    model = NIMA(name, pretrained=True, input_size=size).eval()

    def feats(parts: list) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(pooled_features(model, samples, batch), np.array([s.mean for s in samples])) for _, samples in parts]

    srcc = ridge_srcc(feats(fit), feats(measure_))
    return {f"probe_srcc_{kind}": value for (kind, _), value in zip(measure_, srcc)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probe", metavar="DATA", help="also fit the linear probe on clive/ and biq2021/ under DATA")
    parser.add_argument("--probe-images", type=int, default=1000, help="BIQ2021 training photos the probe fits on")
    parser.add_argument("--only", nargs="+", choices=BACKBONES, default=BACKBONES, help="backbones to measure")
    parser.add_argument("--sizes", type=lambda v: [int(s) for s in v.split(",")],
                        help="input sizes to measure each backbone at, comma-separated (default: its own)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = {"threads": args.threads, "batch": args.batch, "load_average": os.getloadavg()}
    parts = probe_data(args.probe, args.probe_images) if args.probe else None
    for name in args.only:
        for size in args.sizes or [None]:
            f = measure(name, size, args.batch, args.repeats)
            figures[name if args.sizes is None else f"{name}@{f['input_size']}"] = f
            if parts:
                f.update(probe(name, size, *parts, batch=32))
            print(f"| {name} | {f['input_size']} | {f['weights_MiB_fp16']:.1f} MiB | {f['score_ms']:.0f} | "
                  f"{f['tune_step_ms']:.0f} | {f['train_step_ms']:.0f} | {f['cache_pass_ms']:.0f} |"
                  + "".join(f" {f[k]:.3f} |" for k in f if k.startswith("probe_")), flush=True)
    save_json(args.json, figures)


if __name__ == "__main__":
    main()
