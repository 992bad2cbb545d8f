"""Activations of a scorer's frozen early blocks, computed once per training run.

When the stem and the first ``frozen_blocks`` blocks do not train, a step needs only their
output. Computing it once for every view training sees (rated images, synthetic groups, the
validation images and the held-out distortion set) turns an epoch into a pass over the last
blocks alone. The views are fixed: a rated image is resized whole to the input size (the
evaluation view); a synthetic group is one draw of :class:`SyntheticRanking`, its members under
one shared random view. Training flips activations horizontally at random in place of flipping
images (exact up to the asymmetric 'SAME' padding of strided convolutions).

Activations are kept in float16, on the CPU, in one file of the run folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from nima.data import ImageRatings, Sample
from nima.data.images import evaluation_view
from nima.data.synthetic import SyntheticRanking, eval_pairs

Early = Callable[[Tensor], Tensor]


@dataclass
class Rated:
    """Rated images: x (N,C,h,w) float16 activations; dist (N,10) human opinion distributions;
    mean (N,) human means on each dataset's own scale; dataset (N,) long, index into the run's
    datasets."""

    x: Tensor
    dist: Tensor
    mean: Tensor
    dataset: Tensor


@dataclass
class Groups:
    """Synthetic groups: x (G,K,C,h,w) float16, the anchor first; level and family (G,K) long as
    :class:`SyntheticRanking` gives them."""

    x: Tensor
    level: Tensor
    family: Tensor


@dataclass
class Distorted:
    """The held-out distortion set of ``eval_pairs``: x (M,C,h,w) float16 and one
    (source, family, level) row per image."""

    x: Tensor
    rows: list[tuple[str, str, int]]


@torch.no_grad()
def activations(early: Early, batches: Iterable[Tensor], device: torch.device, desc: str) -> Tensor:
    """``early`` of each (B,3,S,S) batch, concatenated as float16 on the CPU."""
    out = [early(x.to(device)).half().cpu() for x in tqdm(batches, desc=desc, leave=False)]
    return torch.cat(out)


def rated(early: Early, parts: Sequence[list[Sample]], size: int, device: torch.device, workers: int) -> Rated:
    """Cache the evaluation view of every sample of ``parts`` (one list per dataset)."""
    samples = [s for part in parts for s in part]
    loader = DataLoader(ImageRatings(samples, train=False, size=size), batch_size=32, num_workers=workers)
    x = activations(early, (images for images, _ in loader), device, "caching rated images")
    return Rated(
        x=x,
        dist=torch.from_numpy(np.stack([s.dist for s in samples])) if samples else torch.zeros(0, 10),
        mean=torch.tensor([s.mean for s in samples], dtype=torch.float64),
        dataset=torch.tensor([k for k, part in enumerate(parts) for _ in part], dtype=torch.long),
    )


def groups(early: Early, dataset: SyntheticRanking, device: torch.device, workers: int) -> Groups:
    """Cache every group of ``dataset`` (epoch 0)."""
    loader = DataLoader(dataset, batch_size=4, num_workers=workers)
    xs, levels, families = [], [], []
    with torch.no_grad():
        for images, level, family in tqdm(loader, desc="caching synthetic groups", leave=False):
            g, k = images.shape[:2]
            h = early(images.flatten(0, 1).to(device)).half().cpu()
            xs.append(h.view(g, k, *h.shape[1:]))
            levels.append(level)
            families.append(family)
    return Groups(torch.cat(xs), torch.cat(levels), torch.cat(families))


def pairs(early: Early, pairs: Sequence[tuple[str, str]], size: int, device: torch.device) -> Tensor:
    """(P,2,C,h,w) float16: both images of each (better, worse) pair, each resized whole to the
    input size (the evaluation view)."""
    def images() -> Iterable[Tensor]:
        for first in range(0, len(pairs), 16):
            yield torch.stack([evaluation_view(path, size) for pair in pairs[first:first + 16] for path in pair])

    x = activations(early, images(), device, "caching preference pairs")
    return x.view(len(pairs), 2, *x.shape[1:])


def distorted(early: Early, paths: Sequence[str], size: int, device: torch.device) -> Distorted:
    """Cache the held-out distortion set of ``eval_pairs`` at the input size."""
    rows: list[tuple[str, str, int]] = []

    def images() -> Iterable[Tensor]:
        batch: list[Tensor] = []
        for source, family, level, image in eval_pairs(paths, size=size):
            rows.append((source, family, level))
            batch.append(image)
            if len(batch) == 32:
                yield torch.stack(batch)
                batch = []
        if batch:
            yield torch.stack(batch)

    return Distorted(activations(early, images(), device, "caching held-out distortions"), rows)


def weights_digest(modules: Iterable[nn.Module]) -> str:
    """A short hash of the modules' parameters and buffers. A cache depends on the weights of the
    blocks it ran, not on the file they were read from: a run started from other weights with the
    same frozen blocks reuses it, and a weights file rewritten under the same name does not."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def fingerprint(**parts: object) -> str:
    """A short hash of everything a cache depends on, so a changed run does not reuse a stale one."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load(path: Path, key: str) -> dict | None:
    """The cache saved at ``path`` under ``key``; None when absent or made for another run."""
    if not path.is_file():
        return None
    blob = torch.load(path, map_location="cpu", weights_only=False)
    return blob if blob.get("key") == key else None


def save(path: Path, blob: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
