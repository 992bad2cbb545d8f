"""GPU figures in one short run (GPU time is scarce): scorer throughput at 224 px in batches of
256, whether bf16 autocast with channels-last helps and how far it moves scores, one tuning step,
whether ``enhance.tune`` repeats itself with one seed, ``enhance tune`` on a 12-megapixel photo,
``enhance batch`` on 1-megapixel photos, and training images per second.

    python benchmarks/gpu.py --json benchmarks/results/gpu_h200.json [--only SECTION ...]

Each section is written to the JSON as soon as it is measured; a section that fails records its
error and the others still run. Runs on the CPU too (slowly), which is how it is tested before a
GPU is at hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import speed
from common import ROOT, save_json
from speed import sync


def scorer_throughput(device: torch.device, batch: int, iters: int) -> dict:
    """Images per second through the scorer's forward pass (224 px, already on the device)."""
    from nima import load_scorer

    x = torch.rand(batch, 3, 224, 224, device=device)
    out = {}
    for name, bf16 in (("fp32", False), ("bf16_channels_last", True)):
        scorer = load_scorer(device=device)
        xx = x.contiguous(memory_format=torch.channels_last) if bf16 else x
        if bf16:
            scorer = scorer.to(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for _ in range(3):
                scorer(xx)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                scorer(xx)
            sync(device)
        out[name] = batch * iters / (time.perf_counter() - t0)
    return {"batch": batch, "images_per_second": out}


def bf16_agreement(device: torch.device, kodak: Path) -> dict:
    """How far bf16 autocast moves predicted means: the 24 Kodak photos and 4 distortions of each."""
    from nima import load_scorer, mean_score

    images = []
    for p in sorted(kodak.glob("kodim*.png")):
        x = torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).float() / 255
        images += [x, x * 0.4, (x * 1.8).clamp(0, 1), 0.25 + 0.5 * x, (x + 0.08 * torch.randn_like(x)).clamp(0, 1)]
    batch = torch.stack([torch.nn.functional.interpolate(i[None], size=(224, 224), mode="bilinear",
                                                         antialias=True)[0] for i in images]).to(device)
    scorer = load_scorer(device=device)
    with torch.no_grad():
        a = mean_score(scorer(batch)).float().cpu()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            b = mean_score(scorer.to(memory_format=torch.channels_last)(batch).float()).cpu()
    order = lambda v: v.argsort().argsort().double()  # noqa: E731
    return {"images": len(images), "max_abs_diff": float((a - b).abs().max()),
            "mean_abs_diff": float((a - b).abs().mean()),
            "spearman": float(np.corrcoef(order(a), order(b))[0, 1])}


def determinism(device: torch.device, kodak: Path, repeats: int) -> dict:
    """Whether ``enhance.tune`` repeats itself on this device: 1-megapixel photo, same seed,
    ``repeats`` runs per recipe (``--op tonemap`` and ``auto``) as it stands ("default") and under
    ``torch.use_deterministic_algorithms(warn_only=True)``, whose warnings name any kernel left
    without a deterministic version; distinct outputs and step counts per setting."""
    import contextlib
    import enhance
    from nima import load_scorer

    img = Image.open(kodak / "kodim05.png").convert("RGB").resize((1224, 816), Image.Resampling.BICUBIC)
    image = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)[None].to(device)
    scorer = load_scorer(device=device)

    @contextlib.contextmanager
    def strict():  # type: ignore[no-untyped-def]
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(False)

    settings: dict[str, Callable[[], Any]] = {"default": contextlib.nullcontext, "deterministic_algorithms": strict}
    out = {}
    for recipe in (["tonemap"], "auto"):
        for name, ctx in settings.items():
            results = []
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(repeats):
                    with ctx():
                        y, r = enhance.tune(image, recipe, scorer)
                    results.append((hash(y.cpu().numpy().tobytes()), r.steps, json.dumps(r.values)))
            out[f"{recipe if isinstance(recipe, str) else recipe[0]}/{name}"] = {
                "distinct_outputs": len({h for h, _, _ in results}), "steps": [n for _, n, _ in results],
                "params": sorted({v for _, _, v in results}),
                "warnings": sorted({str(w.message)[:300] for w in caught})}
    return out


def photos(kodak: Path, folder: Path, size: tuple[int, int], n: int) -> list[Path]:
    """The first n Kodak photos enlarged to ``size`` (landscape; portraits are turned) as JPEG q95."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sorted(kodak.glob("kodim*.png"))[:n]:
        img = Image.open(p).convert("RGB")
        if img.height > img.width:
            img = img.transpose(Image.Transpose.ROTATE_90)
        dst = folder / f"{p.stem}.jpg"
        img.resize(size, Image.Resampling.BICUBIC).save(dst, quality=95)
        out.append(dst)
    return out


def cli(*args: str) -> float:
    """Wall seconds of one ``enhance`` command (process start included)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def batch_1mp(kodak: Path, tmp: Path) -> dict:
    inputs = photos(kodak, tmp / "1mp", (1224, 816), 24)
    out = tmp / "1mp_out"
    wall = cli("batch", *map(str, inputs), "-o", str(out), "--op", "tonemap", "--quiet")
    sides = [json.loads(p.read_text()) for p in sorted(out.rglob("*.jpg.json"))]
    stages = {k: sum(s["seconds"][k] for s in sides) / len(sides) for k in ("read", "tune", "render", "write")}
    score_wall = cli("score", *map(str, inputs))
    return {"command": "enhance batch <24 photos, 1224x816> -o out --op tonemap --quiet", "photos": len(sides),
            "wall_seconds": wall, "images_per_second": len(sides) / wall, "seconds_per_photo": stages,
            "score_command_wall_seconds": score_wall}


def training(data: Path, init: Path | None, tmp: Path, workers: int, limit: int | None) -> dict:
    """One epoch of the scorer's training configuration (configs/default.toml): caching the frozen blocks'
    activations, then one pass of rated images plus synthetic groups over the last blocks."""
    out = tmp / "train.pt"
    args = ["train", "--config", str(ROOT / "configs" / "default.toml"), "--data-root", str(data), "--out", str(out),
            "--epochs", "1", "--workers", str(workers)]
    args += ["--init", str(init)] if init else []
    if limit:  # a quick look: a run configuration that keeps the first N images of each dataset
        quick = tmp / "quick.toml"
        quick.write_text((ROOT / "configs" / "default.toml").read_text() + f"limit = {limit}\n")
        args[2] = str(quick)
    wall = cli(*args)
    from nima import load_checkpoint

    meta = load_checkpoint(out)[1]
    config = meta["config"]
    per_step = config["batch_size"] + config["groups_per_step"] * (1 + config["per_group"])
    images = meta["validation"]["steps"] * per_step  # about: a small dataset's one partial batch is smaller
    return {"command": "enhance " + " ".join(args), "wall_seconds": wall, "train_seconds": meta["train_seconds"],
            "images": images, "images_per_second": images / meta["train_seconds"], "workers": workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"),
                        help="holds clive/ and kodak/ (and, for the training figure, what configs/default.toml reads)")
    parser.add_argument("--init", help="weights to start the training figure from (default: the configuration's, the shipped weights)")
    parser.add_argument("--json", required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script, not the GPU")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--only", nargs="+", help="run only these sections")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = Path(args.data).resolve()  # commands run from the repository root
    kodak = data / "kodak"
    speed.KODAK = kodak  # step_cost reads its photo from there
    figures: dict[str, Any] = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                               "torch": torch.__version__}

    def section(name: str, f: Callable[[], Any]) -> None:
        if args.only and name not in args.only:
            return
        t0 = time.perf_counter()
        try:
            figures[name] = f()
        except Exception:  # a failed section is recorded and the others still run
            figures[name] = {"error": traceback.format_exc()}
        print(f"{name} ({time.perf_counter() - t0:.1f} s): {json.dumps(figures[name])}", flush=True)
        save_json(args.json, figures)

    tmp = Path(tempfile.mkdtemp())
    try:
        section("scorer", lambda: scorer_throughput(device, 16 if args.quick else 256, 2 if args.quick else 20))
        section("bf16_agreement", lambda: bf16_agreement(device, kodak))
        section("step_fp32", lambda: speed.step_cost(3 if args.quick else 50, str(device), bf16=False))
        section("step_bf16", lambda: speed.step_cost(3 if args.quick else 50, str(device), bf16=True))
        section("determinism", lambda: determinism(device, kodak, 2 if args.quick else 4))
        if not args.quick:
            section("tune_12mp", lambda: speed.tune_12mp(tmp, 3, "kodim01.png"))
            section("batch_1mp", lambda: batch_1mp(kodak, tmp))
        section("training", lambda: training(data, Path(args.init).resolve() if args.init else None, tmp, args.workers,
                                             64 if args.quick else None))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
