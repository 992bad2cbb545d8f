"""Goldens for the synthetic distortions: summary statistics of every family at every level on one
fixed, seeded image, written to tests/data/distortion_goldens.json.

The shipped scorer's held-out figures are computed on these distortions, so a refactor must leave
them numerically unchanged; tests/test_distortions.py recomputes the statistics and compares them
with the file. Rewrite the file (``python tests/distortion_goldens.py``) only when a change to a
distortion is intended, and say so in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nima.data.distortions import FAMILIES, LEVELS, distort

GOLDENS = Path(__file__).resolve().parent / "data" / "distortion_goldens.json"
SEED = 7  # the noise seed passed to every family
FRAME = 4  # width in px of the border frame whose mean is recorded (catches border-mode changes)
PROJECTIONS = 4


def golden_image(h: int = 64, w: int = 96) -> torch.Tensor:
    """A (3,h,w) float32 photo-like image in [0,1]: colour gradients, a vertical edge, texture, and a
    pure black and a pure white patch (so clipping and the sRGB toe are exercised)."""
    g = torch.Generator().manual_seed(2024)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.15 + 0.6 * xx, 0.25 + 0.5 * yy, 0.7 - 0.5 * xx * yy])
    base = base + 0.2 * (xx > 0.6).float() * torch.tensor([0.4, -0.3, 0.2]).view(3, 1, 1)
    x = (base + 0.05 * torch.randn(3, h, w, generator=g)).clamp(0.0, 1.0)
    x[:, 4:14, 4:16] = 0.0
    x[:, h - 14 : h - 4, w - 16 : w - 4] = 1.0
    return x


def statistics(y: torch.Tensor) -> dict[str, list[float]]:
    """(3,H,W) image -> per-channel means, std, mean of the border frame, mean squared neighbour
    difference, and projections on fixed seeded Gaussian weights (each of the order of the
    pixel values' spread; a change anywhere in the image moves them). Computed in float64."""
    y = y.double()
    weights = torch.randn(PROJECTIONS, *y.shape, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    inner = torch.zeros_like(y, dtype=torch.bool)
    inner[:, FRAME:-FRAME, FRAME:-FRAME] = True
    return {
        "mean": y.mean((1, 2)).tolist(),
        "std": [float(y.std())],
        "frame": [float(y[~inner].mean())],
        "hf": [float((y.diff(dim=-1) ** 2).mean() + (y.diff(dim=-2) ** 2).mean())],
        "projection": ((weights * y).sum((1, 2, 3)) / y.numel() ** 0.5).tolist(),
    }


def compute() -> dict[str, dict[str, list[float]]]:
    """"family/level" -> statistics of ``distort(golden_image(), family, level, SEED)``."""
    x = golden_image()
    return {
        f"{family}/{level}": statistics(distort(x, family, level, SEED))
        for family in FAMILIES
        for level in range(1, LEVELS + 1)
    }


if __name__ == "__main__":
    GOLDENS.parent.mkdir(exist_ok=True)
    rows = [f"{json.dumps(key)}: {json.dumps(stats)}" for key, stats in compute().items()]
    GOLDENS.write_text("{\n" + ",\n".join(rows) + "\n}\n")
    print(f"wrote {GOLDENS}")
