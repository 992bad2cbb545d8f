"""The synthetic ranking data built on `nima.data.distortions`: pristine photos loaded and cached,
one random view shared by a group, the `SyntheticRanking` dataset of groups (pristine first, then
distortions of it at graded levels) and the evaluation pairs (every family at every level).

Images are (3,H,W) float32 sRGB-encoded in [0,1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from nima.data.distortions import (
    COMPOUND_BASES,
    COMPOUND_LEVELS,
    DENOISE_AMOUNTS,
    DENOISE_RADIUS,
    DENOISED_EDIT_LEVELS,
    DENOISED_EDITS,
    DENOISED_LEVELS,
    FAMILIES,
    LEVELS,
    SMOOTHING,
    denoise,
    distort,
)


# --- loading and views --------------------------------------------------------------------


def _resize(x: Tensor, h: int, w: int) -> Tensor:
    """Antialiased bilinear resize of (C,H,W) or (N,C,H,W) to (h, w)."""
    batch = x if x.ndim == 4 else x[None]
    out = F.interpolate(batch, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return (out if x.ndim == 4 else out[0]).clamp(0.0, 1.0)


def load_pristine(path: str | Path, long_side: int = 512) -> Tensor:
    """Read an image (EXIF orientation applied) as (3,h,w) float32 in [0,1].

    Resized (antialiased, up or down) so that its long side is ``long_side`` px.
    """
    with Image.open(path) as im:
        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255
    h, w = x.shape[1:]
    s = long_side / max(h, w)
    return _resize(x, max(1, round(h * s)), max(1, round(w * s)))


class PhotoCache:
    """``cache(path)``: the photo of :func:`load_pristine` at ``long_side``, (3,h,w) float32 in
    [0,1], decoded once and then kept as 8 bits (a quarter of the memory) for every later call."""

    def __init__(self, long_side: int = 512) -> None:
        self.long_side = long_side
        self._photos: dict[str, Tensor] = {}  # path -> (3,h,w) uint8

    def __call__(self, path: str) -> Tensor:
        if path not in self._photos:
            self._photos[path] = (load_pristine(path, self.long_side) * 255).round().to(torch.uint8)
        return self._photos[path].float() / 255


def shared_view(batch: Tensor, rng: np.random.Generator, size: int) -> Tensor:
    """One random view, the same for every image of (N,3,h,w) -> (N,3,size,size).

    With probability 1/2 the whole image resized to ``round(size * 8 / 7)`` square then a random
    ``size`` crop; else a ``size`` crop of the image scaled by a random factor in [0.5, 1] (raised
    where needed so the crop fits). Then one random horizontal flip for all.
    """
    if rng.random() < 0.5:
        side = round(size * 8 / 7)
        batch = _resize(batch, side, side)
    else:
        h, w = batch.shape[2:]
        f = max(rng.uniform(0.5, 1.0), size / min(h, w))
        hs, ws = max(size, round(h * f)), max(size, round(w * f))
        if (hs, ws) != (h, w):
            batch = _resize(batch, hs, ws)
    top = int(rng.integers(0, batch.shape[2] - size + 1))
    left = int(rng.integers(0, batch.shape[3] - size + 1))
    batch = batch[:, :, top : top + size, left : left + size]
    return batch.flip(-1) if rng.random() < 0.5 else batch


class SyntheticRanking(torch.utils.data.Dataset):
    """Groups of one pristine photo and ``per_group`` distortions of it, all seen through one view.

    Item ``i`` of epoch ``e`` uses source ``paths[(e * len(self) + i) % len(paths)]``, so that
    epochs shorter than the source list still visit every source in turn. Each group holds
    distinct random families at random levels, plus one extra member repeating a family at a
    different level so that "milder above stronger" pairs exist. The view (shared by the group) is, with probability
    1/2, the whole image resized to 256x256 (for size 224; ``round(size * 8 / 7)`` in general)
    then a random ``size`` crop; else a ``size`` crop of the distorted long-side image scaled
    by a random factor in [0.5, 1] (raised where needed so the crop fits). One random
    horizontal flip for all. Deterministic for (seed, epoch, i).

    With probability ``compound``, a group is compound: its first image is not the pristine photo
    but a noisy version of it (a family of ``COMPOUND_BASES`` at level 1..``COMPOUND_LEVELS``), and
    the distortions are applied on top of that, drawn from every family but the smoothing ones. They
    teach that tone, colour and detail changes do not make a noisy photo better (a scorer that has
    only seen clean anchors can prefer a noisy photo with crushed shadows and boosted contrast).

    With probability ``denoised`` (drawn beside ``compound``; the two shares add up to at most 1), a
    group is denoised: a noisy copy of the photo (a family of ``COMPOUND_BASES`` at one of
    ``DENOISED_LEVELS``) after `nima.data.distortions.denoise` is its anchor, and its members are
    the noisy copy and tone or colour edits (distinct families of ``DENOISED_EDITS``, levels
    1..``denoised_edit_levels``) of the noisy or, by a coin flip each, the denoised copy. They teach
    that removing noise beats keeping it or hiding it under a tone change (a scorer without them
    rates a darkened or flattened noisy photo above a denoised one, and the tuner follows it).

    ``families`` restricts the draws to those names of ``FAMILIES`` (None: all of them); the draws
    from the first N families are the same as those of a set that had only N.

    Items: images (1+per_group, 3, size, size) float32 in [0,1], the anchor (pristine, the noisy
    base of a compound group or the denoised copy of a denoised group) first; level (1+per_group,)
    long, 0 for the anchor; family (1+per_group,) long, index into ``FAMILIES``, -1 for the anchor.
    """

    def __init__(
        self,
        paths: Sequence[str],
        per_group: int = 6,
        size: int = 224,
        long_side: int = 512,
        seed: int = 0,
        groups_per_epoch: int | None = None,
        compound: float = 0.0,
        families: Sequence[str] | None = None,
        denoised: float = 0.0,
        denoised_edit_levels: int = DENOISED_EDIT_LEVELS,
    ) -> None:
        if not paths:
            raise ValueError("no source images")
        unknown = sorted(set(families or ()) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}; expected names from {FAMILIES}")
        chosen = FAMILIES if families is None else [f for f in FAMILIES if f in families]
        if not 2 <= per_group <= len(chosen) + 1:
            raise ValueError(f"per_group must be in 2..{len(chosen) + 1} for {len(chosen)} families, got {per_group}")
        if not 0 <= compound <= 1:
            raise ValueError(f"compound must be in [0,1], got {compound}")
        self.allowed = np.array([FAMILIES.index(f) for f in chosen])
        self.on_noisy = np.array([FAMILIES.index(f) for f in chosen if f not in SMOOTHING])
        if compound and per_group > len(self.on_noisy) + 1:
            raise ValueError(f"per_group must be at most {len(self.on_noisy) + 1} with compound groups, got {per_group}")
        if not 0 <= denoised <= 1 - compound:
            raise ValueError(f"denoised must be in [0, 1 - compound] = [0,{1 - compound:g}], got {denoised}")
        if not 1 <= denoised_edit_levels <= LEVELS:
            raise ValueError(f"denoised_edit_levels must be in 1..{LEVELS}, got {denoised_edit_levels}")
        self.edits = np.array([FAMILIES.index(f) for f in DENOISED_EDITS if f in chosen])
        if denoised and per_group > len(self.edits) + 1:
            raise ValueError(f"per_group must be at most {len(self.edits) + 1} with denoised groups, got {per_group}")
        self.compound = compound
        self.denoised = denoised
        self.denoised_edit_levels = denoised_edit_levels
        self.paths = list(paths)
        self.per_group = per_group
        self.size = size
        self.seed = seed
        self.groups_per_epoch = groups_per_epoch
        self.epoch = 0
        self._pristine = PhotoCache(long_side)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; items differ between epochs."""
        self.epoch = epoch

    def settings(self) -> dict[str, object]:
        """Everything its groups depend on beside the view size, for a cache's key."""
        return dict(sources=self.paths, seed=self.seed, per_group=self.per_group, n=len(self),
                    families=[FAMILIES[i] for i in self.allowed], compound=self.compound, denoised=self.denoised,
                    denoised_edit_levels=self.denoised_edit_levels)

    def __len__(self) -> int:
        return self.groups_per_epoch if self.groups_per_epoch is not None else len(self.paths) * 4

    def _members(self, rng: np.random.Generator, allowed: np.ndarray) -> list[tuple[int, int]]:
        """(family index, level) for each distortion: a same-family pair plus distinct others,
        from ``allowed`` family indices."""
        fams = rng.choice(allowed, size=self.per_group - 1, replace=False)
        pair_levels = rng.choice(LEVELS, size=2, replace=False) + 1
        members = [(int(fams[0]), int(pair_levels[0])), (int(fams[0]), int(pair_levels[1]))]
        members += [(int(f), int(rng.integers(1, LEVELS + 1))) for f in fams[1:]]
        return [members[j] for j in rng.permutation(len(members))]

    def _distorted_group(
        self, anchor: Tensor, rng: np.random.Generator, allowed: np.ndarray
    ) -> tuple[list[Tensor], list[tuple[int, int]]]:
        """The images of a group of distortions of ``anchor`` from ``allowed`` families (anchor
        first) and its members' (family index, level)."""
        members = self._members(rng, allowed)
        seeds = rng.integers(0, 2**31, size=len(members))
        return [anchor] + [distort(anchor, FAMILIES[f], k, int(s)) for (f, k), s in zip(members, seeds)], members

    def _denoised_group(self, photo: Tensor, rng: np.random.Generator) -> tuple[list[Tensor], list[tuple[int, int]]]:
        """The images of a denoised group (anchor first) and its members' (family index, level)."""
        base, level = COMPOUND_BASES[int(rng.integers(len(COMPOUND_BASES)))], int(rng.choice(DENOISED_LEVELS))
        noisy = distort(photo, base, level, int(rng.integers(0, 2**31)))
        clean = denoise(noisy, *DENOISE_AMOUNTS, max(1, round(DENOISE_RADIUS * min(noisy.shape[-2:]))))
        images, members = [clean, noisy], [(FAMILIES.index(base), level)]
        for f in rng.choice(self.edits, size=self.per_group - 1, replace=False):
            on = noisy if rng.random() < 0.5 else clean
            k = int(rng.integers(1, self.denoised_edit_levels + 1))
            images.append(distort(on, FAMILIES[f], k, int(rng.integers(0, 2**31))))
            members.append((int(f), k))
        return images, members

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        anchor = self._pristine(self.paths[(self.epoch * len(self) + i) % len(self.paths)])
        kind = rng.random() if self.compound or self.denoised else 1.0
        if kind < self.compound:
            base, base_level = COMPOUND_BASES[int(rng.integers(len(COMPOUND_BASES)))], int(rng.integers(1, COMPOUND_LEVELS + 1))
            noisy = distort(anchor, base, base_level, int(rng.integers(0, 2**31)))
            images, members = self._distorted_group(noisy, rng, self.on_noisy)
        elif kind < self.compound + self.denoised:
            images, members = self._denoised_group(anchor, rng)
        else:
            images, members = self._distorted_group(anchor, rng, self.allowed)
        view = shared_view(torch.stack(images), rng, self.size).contiguous()
        level = torch.tensor([0] + [k for _, k in members], dtype=torch.long)
        family = torch.tensor([-1] + [f for f, _ in members], dtype=torch.long)
        return view, level, family


def eval_pairs(
    paths: Sequence[str], seed: int = 0, size: int = 224, long_side: int = 512
) -> Iterator[tuple[str, str, int, Tensor]]:
    """Yield (source stem, family, level, image) for every family and level of every source.

    Each source starts with (stem, "pristine", 0, image). Distortions are made at the
    ``long_side`` version, then the whole image is resized (antialiased) to (3, size, size).
    Deterministic in (paths, seed).
    """
    for path in paths:
        name = Path(path).stem
        pristine = load_pristine(path, long_side)
        yield name, "pristine", 0, _resize(pristine, size, size)
        for family in FAMILIES:
            for level in range(1, LEVELS + 1):
                image = distort(pristine, family, level, seed)
                yield name, family, level, _resize(image, size, size)
