"""Speed of the tuner on this machine.

1. Wall time of ``enhance tune photo.jpg --op tonemap`` on a 12-megapixel JPEG (a Kodak photo
   enlarged to 4000x3000), end to end as a user runs it (process start, decode, tune, render,
   encode), with the phases from the sidecar.
2. The time of one tuning step against one scorer forward-and-backward pass on the same views.
3. Scoring without gradients, the tuner's pass (mean score back to 3 and 12 views of Kodak
   photos, with the input gradients' distance from a float64 reference) and a training
   forward+backward on the CPU, channels-last (the default there) against the plain NCHW layout.
4. Adam against Nelder-Mead: scorer evaluations needed to reach 99% of the best improvement
   either optimiser found, on degraded held-out photos with a 7-parameter recipe.
5. ``lut``: the full-resolution render of pointwise pipelines on the 12-megapixel photo, torch
   (``enhance.render.render``) against tables (``enhance.lut``), with the largest difference.
6. ``draft``: the tuning proxy (long side 512) of the 12-megapixel JPEG, full decode and resize
   against the DCT-scaled decode (``enhance.proxy.read_proxy``).

    python benchmarks/speed.py --json benchmarks/results/speed.json [--only layout ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import KODAK, ROOT, load_rgb, need, quantise, save_json, to_tensor


PARTS = ["tune", "step", "layout", "optimisers", "lut", "draft"]


def tune_12mp(workdir: Path, runs: int, photo: str = "kodim05.png") -> dict:
    """``enhance tune --op tonemap`` on a Kodak photo enlarged to 4000x3000, ``runs`` times."""
    src = workdir / "12mp.jpg"
    Image.open(KODAK / photo).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(src, quality=95)
    walls, phases = [], []
    for i in range(runs):
        out = workdir / f"out{i}.jpg"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cli", "tune", str(src), "--op", "tonemap", "-o", str(out)],
                       cwd=ROOT, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
        record = json.loads(Path(f"{out}.json").read_text())
        phases.append({**record["seconds"], "steps": record["steps"]})
    return {"megapixels": 12.0, "photo": photo, "wall_seconds": walls, "phases": phases}


def sync(device: str | torch.device) -> None:
    """Wait for the device's queued work, so that wall-clock timings include it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def step_cost(repeats: int, device: str = "cpu", bf16: bool = False) -> dict:
    """Seconds per tuning step vs one scorer forward+backward on the same (3,3,224,224) views.

    ``bf16``: the scorer runs under bf16 autocast in channels-last layout (a CUDA option measured
    by benchmarks/gpu.py); the operators stay in float32.
    """
    from enhance.recipe import Recipe
    from enhance.climb import repeatable
    from enhance.params import bounded, identity_pull, unconstrained
    from enhance.render import apply_pipeline
    from enhance.views import Views
    from nima import load_scorer, mean_score

    scorer = load_scorer(device=device)
    if bf16:
        scorer = scorer.to(memory_format=torch.channels_last)
    image = to_tensor(load_rgb(KODAK / "kodim05.png")).to(device)
    recipe = Recipe.from_ops(["tonemap"])
    views = Views.of(image, recipe, crops=2, size=224, seed=0)
    u = [{k: v.requires_grad_(True) for k, v in d.items()} for d in unconstrained(recipe, 1, torch.device(device))]
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)

    def score(x: torch.Tensor) -> torch.Tensor:
        with autocast:
            return mean_score(scorer(x).float())
    opt = torch.optim.Adam([t for d in u for t in d.values()], lr=0.15)

    def one_step() -> None:
        params = bounded(recipe, u)
        x = views.render(224, lambda im, ref: apply_pipeline(im, recipe, params, ref))
        loss = -score(x).mean() + 0.05 * identity_pull(recipe, params).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    fixed = views.render(224).detach().requires_grad_(True)

    def scorer_pass() -> None:
        fixed.grad = None
        score(fixed).mean().backward()

    def timed(f) -> float:  # type: ignore[no-untyped-def]
        f()  # warm-up
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            f()
        sync(device)
        return (time.perf_counter() - t0) / repeats

    with repeatable(torch.device(device)):  # the tuner's own kernel settings (CUDA: deterministic ones)
        step, base = timed(one_step), timed(scorer_pass)
    return {"step_seconds": step, "scorer_pass_seconds": base, "ratio": step / base, "views": 3}


def layout_cost(rounds: int, repeats: int = 5) -> dict:
    """The CPU backbone layout: channels-last (``NIMA.channels_last``, the default) against plain
    NCHW, on scoring without gradients (batch 32 at 224 px), the tuner's pass (the shipped scorer's
    mean score back to 3 and to 12 views, 224 px crops of kodim01-04) and a training
    forward+backward (batch 32, train mode, BatchNorm on its statistics, the stem and first 3
    blocks frozen, as in training). The layouts alternate, ``rounds`` times; the best round of each
    is kept, with the largest difference between their scores and between their parameter
    gradients, and each layout's input gradients' relative distance from the same scorer's in float64."""
    import copy

    from nima import NIMA, load_scorer, mean_score
    from nima.training import set_bn_eval

    scorer = load_scorer()
    net = NIMA("efficientnet_lite0", pretrained=True).train()
    net.freeze(3)
    set_bn_eval(net)
    batch = torch.rand(32, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    photos = [to_tensor(load_rgb(KODAK / f"kodim{k:02d}.png")) for k in (1, 2, 3, 4)]
    views = torch.cat([p[..., top: top + 224, left: left + 224] for p in photos for top, left in ((0, 0), (100, 150), (280, 280))])

    def score() -> torch.Tensor:
        with torch.no_grad():
            return mean_score(scorer(batch))

    def climb_pass(n: int, model: torch.nn.Module = scorer) -> torch.Tensor:
        x = views[:n].to(next(model.parameters()).dtype).requires_grad_(True)
        model.mean(x).sum().backward()
        return x.grad.double()

    def train_pass() -> torch.Tensor:
        torch.manual_seed(0)  # the same dropout mask in both layouts
        net.zero_grad(set_to_none=True)
        net(batch).square().sum().backward()
        return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])

    reference = climb_pass(12, copy.deepcopy(scorer).double())
    best: dict[str, float] = {}
    out: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}
    input_grad_error: dict[str, float] = {}
    default = NIMA.channels_last
    try:
        for _ in range(rounds):
            for layout in (True, False):
                NIMA.channels_last = layout
                out[layout] = (score(), train_pass())  # also the warm-up
                grad = climb_pass(12)
                input_grad_error["channels_last" if layout else "nchw"] = float((grad - reference).norm() / reference.norm())
                for name, f in (("score", score), ("climb_pass_3", lambda: climb_pass(3)),
                                ("climb_pass_12", lambda: climb_pass(12)), ("train_pass", train_pass)):
                    t0 = time.perf_counter()
                    for _ in range(repeats):
                        f()
                    key = f"{name}_{'channels_last' if layout else 'nchw'}_seconds"
                    best[key] = min(best.get(key, float("inf")), (time.perf_counter() - t0) / repeats)
    finally:
        NIMA.channels_last = default
    (s1, g1), (s0, g0) = out[True], out[False]
    return {**best, "rounds": rounds, "repeats": repeats, "max_score_difference": float((s1 - s0).abs().max()),
            "grad_relative_difference": float((g1 - g0).norm() / g0.norm()),
            "input_grad_error_vs_float64": input_grad_error}


def optimiser_efficiency(steps: int) -> list[dict]:
    """Evaluations each optimiser needs to reach 99% of the best improvement found by either."""
    import enhance
    from nima import load_scorer

    scorer = load_scorer()
    rows = []
    for name, f in (("kodim19 dark", lambda x: x**1.8 * 0.7), ("kodim21 flat", lambda x: 0.25 + 0.5 * x),
                    ("kodim23 bright", lambda x: np.clip(x * 1.4 + 0.05, 0, 1))):
        image = to_tensor(quantise(f(load_rgb(KODAK / f"{name.split()[0]}.png"))))
        histories = {}
        for opt in ("adam", "nelder-mead"):
            _, result = enhance.tune(image, ["exposure", "levels", "contrast"], scorer, steps=steps,
                                     optimizer=opt, patience=steps)
            histories[opt] = np.array(result.history)
        start = histories["adam"][0]
        best = max(h.max() for h in histories.values())
        target = start + 0.99 * (best - start)
        row = {"image": name, "start": float(start), "best": float(best)}
        for opt, h in histories.items():
            hit = np.nonzero(h >= target)[0]
            row[opt] = int(hit[0]) + 1 if len(hit) else None  # evaluations, the start included
            row[f"{opt}_best"] = float(h.max())
            row[f"{opt}_evaluations"] = len(h)
        rows.append(row)
    return rows


def enlarged_12mp(workdir: Path, photo: str = "kodim05.png") -> Path:
    """The Kodak photo enlarged to 4000x3000 and saved as a JPEG (quality 95), as `tune_12mp` makes it."""
    src = workdir / "12mp.jpg"
    Image.open(KODAK / photo).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(src, quality=95)
    return src


def best_of(runs: int, f) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """(the shortest wall time of ``runs`` calls of f, f's last result)."""
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return min(times), out


def lut_cost(workdir: Path, runs: int) -> list[dict]:
    """Torch against table rendering of pointwise pipelines on the 12 MP photo (8-bit in, 8-bit out)."""
    from enhance import lut
    from enhance.io import read
    from enhance.recipe import Recipe
    from enhance.params import params_from_values
    from enhance.render import render

    photo = read(enlarged_12mp(workdir)).image
    pixels = lut.to_codes(photo[0].permute(1, 2, 0))
    rows = []
    for names, values in ((["levels"], [{"black": 0.05, "white": 0.9, "gamma": 1.3}]),
                          (["tonemap"], [{"exposure": 0.5, "shadows": 0.3, "highlights": -0.4}]),
                          (["exposure", "tonemap", "contrast"], [{"ev": 0.3}, {"exposure": 0.2, "shadows": 0.2, "highlights": -0.3},
                                                                 {"amount": 0.3, "midpoint": 0.5, "saturation": 1.2}])):
        recipe = Recipe.from_ops(names)
        params = params_from_values(recipe, values)
        t_torch, ref = best_of(runs, lambda: lut.to_codes(render(photo, recipe, params)[0].permute(1, 2, 0)))
        t_lut, out = best_of(runs, lambda: lut.render_8bit(pixels, recipe, params))
        rows.append({"pipeline": "+".join(names), "torch_seconds": t_torch, "lut_seconds": t_lut,
                     "max_levels_apart": int(np.abs(out.astype(int) - ref.astype(int)).max())})  # type: ignore[union-attr]
    return rows


def draft_cost(workdir: Path, runs: int) -> dict:
    """The proxy (long side 512) of the 12 MP JPEG: full decode + resize against the draft decode."""
    from enhance.io import read
    from enhance.proxy import read_proxy
    from enhance.render import resize_long

    src = enlarged_12mp(workdir)
    t_full, full = best_of(runs, lambda: resize_long(read(src).image, 512))
    t_draft, proxy = best_of(runs, lambda: read_proxy(src, 512))
    d = (full - proxy).abs().flatten() * 255  # type: ignore[operator]
    return {"full_seconds": t_full, "draft_seconds": t_draft, "mean_levels_apart": float(d.mean()),
            "p99_levels_apart": float(d.quantile(0.99))}


def table(header: list[str], rows: list[list]) -> None:
    """Print a Markdown table."""
    print("\n| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150, help="budget for the optimiser comparison")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    parts = args.only or PARTS
    need(KODAK)
    torch.manual_seed(0)
    figures: dict = {"threads": torch.get_num_threads()}
    if "tune" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            figures["tune_12mp"] = t = tune_12mp(Path(tmp), args.runs)
        print(f"enhance tune, 12 MP JPEG, --op tonemap: wall {min(t['wall_seconds']):.2f} s best of {args.runs} "
              f"(all: {', '.join(f'{w:.2f}' for w in t['wall_seconds'])})")
        print("  phases of the best run: " + ", ".join(f"{k} {v}" for k, v in t["phases"][int(np.argmin(t['wall_seconds']))].items()))
    if "step" in parts:
        figures["step"] = s = step_cost(repeats=30)
        print(f"tuning step {1000 * s['step_seconds']:.0f} ms vs scorer forward+backward on the same 3 views "
              f"{1000 * s['scorer_pass_seconds']:.0f} ms: ratio {s['ratio']:.2f}")
    if "layout" in parts:
        figures["layout"] = lay = layout_cost(rounds=3)
        print("CPU layout, best of 3 rounds, channels-last against NCHW: scoring 32 images without gradients "
              f"{1000 * lay['score_channels_last_seconds']:.0f} against {1000 * lay['score_nchw_seconds']:.0f} ms; "
              f"the tuner's pass on 3 views {1000 * lay['climb_pass_3_channels_last_seconds']:.0f} against "
              f"{1000 * lay['climb_pass_3_nchw_seconds']:.0f} ms, on 12 views {1000 * lay['climb_pass_12_channels_last_seconds']:.0f} "
              f"against {1000 * lay['climb_pass_12_nchw_seconds']:.0f} ms, input gradients "
              f"{lay['input_grad_error_vs_float64']['channels_last']:.1e} against "
              f"{lay['input_grad_error_vs_float64']['nchw']:.1e} from float64 (relative); "
              f"training forward+backward, batch 32, {lay['train_pass_channels_last_seconds']:.2f} against "
              f"{lay['train_pass_nchw_seconds']:.2f} s; largest score difference {lay['max_score_difference']:.1e}, "
              f"parameter gradients {lay['grad_relative_difference']:.1e} apart (relative)")
    if "optimisers" in parts:
        figures["optimisers"] = rows = optimiser_efficiency(args.steps)
        table(["image", "start", "best", "Adam evaluations to 99%", "Nelder-Mead evaluations to 99%"],
              [[r["image"], f"{r['start']:.3f}", f"{r['best']:.3f}", r["adam"], r["nelder-mead"]] for r in rows])
    if "lut" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            figures["lut"] = rows = lut_cost(Path(tmp), args.runs)
        table(["pipeline, 12 MP, 8-bit", "torch render", "tables", "largest difference (8-bit levels)"],
              [[r["pipeline"], f"{r['torch_seconds']:.2f} s", f"{r['lut_seconds']:.2f} s", r["max_levels_apart"]] for r in rows])
    if "draft" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            figures["draft"] = d = draft_cost(Path(tmp), args.runs)
        print(f"proxy of the 12 MP JPEG: full decode + resize {d['full_seconds']:.2f} s, draft decode {d['draft_seconds']:.2f} s "
              f"(best of {args.runs}); {d['mean_levels_apart']:.2f} levels apart on average, 99th percentile "
              f"{d['p99_levels_apart']:.2f}")
    save_json(args.json, figures)


if __name__ == "__main__":
    main()
