"""Score scales and 10-bucket target distributions over the scores 1..10."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Smallest standard deviation (score units) given to gaussian_buckets: a zero std still spreads a little.
MIN_STD = 0.3


@dataclass(frozen=True)
class Scale:
    """A dataset's own score scale: lo is the worst score, hi the best."""

    name: str
    lo: float
    hi: float


UNIT = Scale("1-10", 1, 10)


def to_unit(mean: float, scale: Scale) -> float:
    """A score on scale, mapped linearly to 1..10.

    >>> to_unit(50.0, Scale("MOS 0-100", 0, 100))
    5.5
    """
    return 1.0 + 9.0 * (mean - scale.lo) / (scale.hi - scale.lo)


def std_to_unit(std: float, scale: Scale) -> float:
    """A standard deviation on scale, in 1..10 score units (the same linear map as to_unit, without offset)."""
    return std * 9.0 / (scale.hi - scale.lo)


def gaussian_buckets(mean_1_10: float, std_1_10: float, n: int = 10) -> npt.NDArray[np.float32]:
    """Normal(mean, std) discretised over the scores 1..n: bucket k holds the mass on [k-0.5, k+0.5], the
    tails fold into buckets 1 and n. std is floored at MIN_STD. Returns (n,) float32 summing to 1.

    >>> gaussian_buckets(5.5, 0.0).round(3).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
    """
    scale = max(std_1_10, MIN_STD) * math.sqrt(2.0)
    cdf = [0.0] + [0.5 * (1.0 + math.erf((k + 0.5 - mean_1_10) / scale)) for k in range(1, n)] + [1.0]
    p = np.diff(np.asarray(cdf))
    return (p / p.sum()).astype(np.float32)


def votes_to_buckets(votes: npt.ArrayLike, n: int = 10) -> npt.NDArray[np.float32]:
    """Vote counts over the scores 1..N -> (n,) float32 distribution over 1..n.

    N == n: the normalised histogram. Otherwise the votes' mean and std, mapped linearly from 1..N to
    1..n, through gaussian_buckets. Raises ValueError when there are no votes.

    >>> votes_to_buckets([0, 2, 2, 0, 0, 0, 0, 0, 0, 0]).tolist()
    [0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    v = np.asarray(votes, dtype=np.float64)
    if v.ndim != 1 or v.size < 2 or v.sum() <= 0 or (v < 0).any():
        raise ValueError(f"need non-negative vote counts over at least 2 buckets, with some votes: {v.tolist()}")
    p = v / v.sum()
    if v.size == n:
        return p.astype(np.float32)
    k = np.arange(1, v.size + 1)
    mean = float((p * k).sum())
    std = float(np.sqrt((p * (k - mean) ** 2).sum()))
    stretch = (n - 1) / (v.size - 1)
    return gaussian_buckets(1.0 + (mean - 1.0) * stretch, std * stretch, n)
