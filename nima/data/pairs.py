"""Preference pairs: two versions of one photo, the first preferred, for a ranking term in training.

A pairs file is a CSV with the columns ``better`` and ``worse``: image paths, absolute or relative
to the file's folder. Both images of a row show the same scene at the same size (a user's A/B
choices between two edits, or a pristine photo and an over-processed version of it).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from nima.data.synthetic import PhotoCache, shared_view


def _shown_size(path: str) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the header alone."""
    with Image.open(path) as im:
        w, h = im.size
        return (h, w) if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(better, worse) absolute paths from a pairs CSV. ValueError naming the file and line for a
    missing or unreadable image, or a pair of two sizes."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: cannot read pairs ({e})") from None
    if not rows or not {"better", "worse"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a CSV with columns better,worse and at least one row")
    pairs = []
    for line, row in enumerate(rows, start=2):
        both = tuple(str((path.parent / (row[k] or "")).resolve()) for k in ("better", "worse"))
        missing = [p for p in both if not Path(p).is_file()]
        if missing:
            raise ValueError(f"{path}: line {line}: no such image {missing[0]}")
        try:
            sizes = [_shown_size(p) for p in both]
        except OSError as e:
            raise ValueError(f"{path}: line {line}: cannot read an image ({e})") from None
        if sizes[0] != sizes[1]:
            raise ValueError(f"{path}: line {line}: a pair must have one size, got {sizes[0]} and {sizes[1]}")
        pairs.append((both[0], both[1]))
    return pairs


class PreferencePairs(torch.utils.data.Dataset):
    """Pairs seen through one shared view each, as the synthetic groups are (``shared_view``).

    Item ``i`` of epoch ``e`` is pair ``(e * len(self) + i) % len(pairs)``: images (2,3,size,size)
    float32 in [0,1], the preferred one first. Both are read at ``long_side`` (antialiased) and must
    then have the same size. Deterministic for (seed, epoch, i).
    """

    def __init__(self, pairs: list[tuple[str, str]], size: int = 224, long_side: int = 512, seed: int = 0,
                 pairs_per_epoch: int | None = None) -> None:
        if not pairs:
            raise ValueError("no preference pairs")
        self.pairs = pairs
        self.size = size
        self.seed = seed
        self.pairs_per_epoch = pairs_per_epoch
        self.epoch = 0
        self._image = PhotoCache(long_side)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.pairs_per_epoch if self.pairs_per_epoch is not None else len(self.pairs)

    def __getitem__(self, i: int) -> Tensor:
        if not 0 <= i < len(self):
            raise IndexError(i)
        better, worse = self.pairs[(self.epoch * len(self) + i) % len(self.pairs)]
        a, b = self._image(better), self._image(worse)
        if a.shape != b.shape:
            raise ValueError(f"{better} and {worse}: a pair must have one size, got {tuple(a.shape[1:])} "
                             f"and {tuple(b.shape[1:])}")
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return shared_view(torch.stack([a, b]), rng, self.size).contiguous()
