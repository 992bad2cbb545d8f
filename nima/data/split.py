"""Deterministic train/validation splits by group, and their JSON files."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter

from nima.data.readers import Sample


def split_groups(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, val) without separating a group.

    Groups are ranked by a hash of (seed, group) and moved to val in that order until val holds
    round(val_fraction * len(samples)) samples or just more. The result depends only on the set of samples
    and seed, not their order; both lists come sorted by path. Adding samples moves few groups.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    sizes = Counter(s.group for s in samples)
    ranked = sorted(sizes, key=lambda g: (hashlib.sha256(f"{seed}:{g}".encode()).hexdigest(), g))
    target, taken, val_groups = round(val_fraction * len(samples)), 0, set()
    for group in ranked:
        if taken >= target:
            break
        val_groups.add(group)
        taken += sizes[group]
    ordered = sorted(samples, key=lambda s: s.path)
    return [s for s in ordered if s.group not in val_groups], [s for s in ordered if s.group in val_groups]


def _relative(path: str, root: str | None) -> str:
    if root is None:
        return path
    rel = os.path.relpath(path, root)
    return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def save_split(path: str, train: list[Sample], val: list[Sample], root: str | None = None) -> None:
    """Write {"train": [paths], "val": [paths]} as JSON; paths under root (the dataset root, e.g.
    Ratings.root) are stored relative to it, so the file survives moving the dataset."""
    split = {name: [_relative(s.path, root) for s in part] for name, part in (("train", train), ("val", val))}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(split, fh, indent=1)


def load_split(path: str, root: str | None = None) -> dict[str, list[str]]:
    """Read a split file: {"train": [paths], "val": [paths]}. With root, relative paths are joined to it
    (normalised, so they compare equal to Sample.path); without, paths come back as stored."""
    with open(path, encoding="utf-8") as fh:
        split = json.load(fh)
    if not isinstance(split, dict) or not {"train", "val"} <= split.keys():
        raise ValueError(f"{path}: not a split file (expected keys 'train' and 'val')")
    if root is None:
        return {"train": list(split["train"]), "val": list(split["val"])}
    return {k: [os.path.normpath(os.path.join(root, p)) for p in split[k]] for k in ("train", "val")}
