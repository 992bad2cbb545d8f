"""Evaluation: agreement with human ratings and pristine-first accuracy on synthetic sets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

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
    size = int(getattr(model, "input_size", 224))
    loader = DataLoader(ImageRatings(list(samples), train=False, size=size), batch_size=batch_size, num_workers=workers)
    pred = predict(model, (x for x, _ in loader), device)
    human = np.stack([s.dist for s in samples])
    return summarise(pred, human, np.array([s.mean for s in samples]))


@torch.no_grad()
def pristine_first(
    model: torch.nn.Module, paths: Sequence[str], device: torch.device, seed: int = 0, batch_size: int = 32
) -> dict[str, Any]:
    """Share of (pristine, distorted) pairs where the pristine scores higher, on every family and
    level of ``eval_pairs`` built from ``paths``: see :func:`pristine_first_of`."""
    model.eval()
    rows: list[tuple[str, str, int]] = []
    scores: list[float] = []
    pending: list[torch.Tensor] = []
    size = int(getattr(model, "input_size", 224))

    def flush() -> None:
        if pending:
            scores.extend(mean_score(model(torch.stack(pending).to(device))).float().cpu().tolist())
            pending.clear()

    for source, family, level, image in eval_pairs(paths, seed=seed, size=size):
        rows.append((source, family, level))
        pending.append(image)
        if len(pending) == batch_size:
            flush()
    flush()
    return pristine_first_of(rows, scores)


def pristine_first_of(rows: Sequence[tuple[str, str, int]], scores: Sequence[float]) -> dict[str, Any]:
    """Pristine-first figures from (source, family, level) rows (family "pristine", level 0, for each
    source's pristine photo) and their scores: ``accuracy`` over every pair, ``levels_2_5`` over
    levels 2 to 5 (level 1 is mild enough to be a matter of taste: ``level_1`` alone), and per family
    over every level (``per_family``) and over levels 2 to 5 (``per_family_2_5``)."""
    pristine = {src: s for (src, fam, _), s in zip(rows, scores) if fam == "pristine"}
    wins: dict[str, list[bool]] = defaultdict(list)
    strong: dict[str, list[bool]] = defaultdict(list)
    mild: list[bool] = []
    for (src, fam, level), s in zip(rows, scores):
        if fam != "pristine":
            won = pristine[src] > s
            wins[fam].append(won)
            (strong[fam] if level >= 2 else mild).append(won)

    def share(w: list[bool]) -> float:
        return float(np.mean(w)) if w else float("nan")

    every = [x for w in wins.values() for x in w]
    return {
        "pairs": len(every), "accuracy": share(every),
        "levels_2_5": share([x for w in strong.values() for x in w]), "level_1": share(mild),
        "per_family": {fam: share(w) for fam, w in sorted(wins.items())},
        "per_family_2_5": {fam: share(w) for fam, w in sorted(strong.items())},
    }


def select_split(samples: Sequence[Sample], root: str, meta: dict, split: str | None,
                 official: dict[str, str] | None = None) -> list[Sample]:
    """All samples; the ``"val"`` / ``"train"`` part of the run recorded in a weights file's meta
    (``val_split`` holds paths relative to the dataset root); or ``"test"``, the dataset's own test
    set (``official``: path -> set name, as ``Ratings.official_split``)."""
    if split is None:
        return list(samples)
    if split == "test":
        chosen = [s for s in samples if (official or {}).get(s.path) == "test"]
        if not chosen:
            raise ValueError(f"{root}: this dataset has no official test split")
        return chosen
    if split not in ("val", "train"):
        raise ValueError(f"unknown split {split!r}: use 'val', 'train' or 'test'")
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
