"""Agreement with human opinion: SRCC, PLCC, EMD and binary accuracy."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from nima.loss import emd


def _varies(pred: np.ndarray, human: np.ndarray) -> bool:
    """Whether a correlation is defined: two values or more, and neither side constant."""
    return len(pred) > 1 and np.ptp(pred) > 0 and np.ptp(human) > 0


def srcc(pred: np.ndarray, human: np.ndarray) -> float:
    """Spearman rank correlation of predicted and human mean scores (NaN where undefined: fewer
    than 2, or one side constant, as a barely trained model's predictions can be).

    >>> srcc(np.array([1.0, 2, 3]), np.array([10.0, 30, 20]))
    0.5
    """
    return float(stats.spearmanr(pred, human)[0]) if _varies(pred, human) else float("nan")


def plcc(pred: np.ndarray, human: np.ndarray) -> float:
    """Pearson linear correlation of predicted and human mean scores (NaN where undefined, as for SRCC)."""
    return float(stats.pearsonr(pred, human)[0]) if _varies(pred, human) else float("nan")


def accuracy(pred: np.ndarray, human: np.ndarray, threshold: float = 5.0) -> float:
    """Share of images on the same side of ``threshold`` (AVA's protocol: 5 on the 1..10 scale).

    >>> accuracy(np.array([4.0, 6, 6]), np.array([4.5, 5.5, 4.0]))
    0.6666666666666666
    """
    return float(np.mean((pred >= threshold) == (human >= threshold)))


def summarise(pred_dist: np.ndarray, human_dist: np.ndarray, human_mean: np.ndarray) -> dict[str, float]:
    """n, SRCC, PLCC (against the human means on the dataset's own scale), EMD r=1 and r=2 and
    accuracy (both on 1..10) for (n,10) predicted and human distributions."""
    p, q = torch.from_numpy(pred_dist).double(), torch.from_numpy(human_dist).double()
    buckets = np.arange(1, p.shape[1] + 1)
    pred_mean, human_mean_10 = pred_dist @ buckets, human_dist @ buckets
    return {
        "n": int(len(pred_mean)),
        "srcc": srcc(pred_mean, human_mean),
        "plcc": plcc(pred_mean, human_mean),
        "emd1": float(emd(p, q, r=1).mean()),
        "emd2": float(emd(p, q, r=2).mean()),
        "accuracy": accuracy(pred_mean, human_mean_10),
    }
