"""Evaluation: agreement with human ratings and pristine-first accuracy on synthetic sets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from nima.data import ImageRatings, Sample
from nima.data.synthetic import eval_pairs
from nima.metrics import summarise
from nima.model import mean_score


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Iterable[torch.Tensor], device: torch.device) -> np.ndarray:
    """Distributions (n,N) for batches of (B,3,S,S) images in [0,1]."""
    model.eval()
    out = [model(x.to(device)).float().cpu() for x in batches]
    return torch.cat(out).numpy() if out else np.zeros((0, 10), np.float32)


def evaluate_samples(
    model: torch.nn.Module, samples: Sequence[Sample], device: torch.device, batch_size: int = 32,
    workers: int = 0,
) -> dict[str, float]:
    """n, SRCC, PLCC, EMD (r=1, r=2) and accuracy of ``model`` on rated samples (eval view)."""
    loader = DataLoader(ImageRatings(list(samples), train=False), batch_size=batch_size, num_workers=workers)
    pred = predict(model, (x for x, _ in loader), device)
    human = np.stack([s.dist for s in samples])
    return summarise(pred, human, np.array([s.mean for s in samples]))


@torch.no_grad()
def pristine_first(
    model: torch.nn.Module, paths: Sequence[str], device: torch.device, seed: int = 0, batch_size: int = 32
) -> dict[str, object]:
    """Share of (pristine, distorted) pairs where the pristine scores higher, overall and per
    distortion family, on every family and level of ``eval_pairs`` built from ``paths``."""
    model.eval()
    rows: list[tuple[str, str, int]] = []
    scores: list[float] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            scores.extend(mean_score(model(torch.stack(pending).to(device))).float().cpu().tolist())
            pending.clear()

    for source, family, level, image in eval_pairs(paths, seed=seed):
        rows.append((source, family, level))
        pending.append(image)
        if len(pending) == batch_size:
            flush()
    flush()
    pristine = {src: s for (src, fam, _), s in zip(rows, scores) if fam == "pristine"}
    wins: dict[str, list[bool]] = defaultdict(list)
    for (src, fam, _), s in zip(rows, scores):
        if fam != "pristine":
            wins[fam].append(pristine[src] > s)
    per_family = {fam: float(np.mean(w)) for fam, w in sorted(wins.items())}
    every = [x for w in wins.values() for x in w]
    return {"pairs": len(every), "accuracy": float(np.mean(every)) if every else float("nan"), "per_family": per_family}


def select_split(samples: Sequence[Sample], root: str, meta: dict, split: str | None) -> list[Sample]:
    """All samples, or the ``"val"`` / ``"train"`` part of the run recorded in a weights file's
    meta (``val_split`` holds paths relative to the dataset root)."""
    if split is None:
        return list(samples)
    if split not in ("val", "train"):
        raise ValueError(f"unknown split {split!r}: use 'val' or 'train'")
    if "val_split" not in meta:
        raise ValueError("these weights record no validation split")
    rootp = Path(root).resolve()
    val = set(meta["val_split"])

    def rel(s: Sample) -> str:
        try:
            return str(Path(s.path).resolve().relative_to(rootp))
        except ValueError:
            return s.path

    chosen = [s for s in samples if (rel(s) in val) == (split == "val")]
    if not chosen:
        raise ValueError(f"no image of split {split!r} found under {root}")
    return chosen
