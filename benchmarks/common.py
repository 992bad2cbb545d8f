"""Shared pieces of the benchmarks: the data beside the repository, held-out sources, images."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
KODAK = SHARED / "kodak"


def need(path: Path) -> None:
    """Exit with a clear message when the data a benchmark needs is absent."""
    if not path.exists():
        sys.exit(f"{path} is not present: this benchmark needs ../shared/data beside the repository")


def heldout_sources(meta: dict) -> list[Path]:
    """The Kodak photos the scorer's ranking term never saw (recorded in the weights' meta)."""
    need(KODAK)
    names = meta.get("pristine_holdout") or []
    if not names:
        sys.exit("these weights record no held-out pristine sources")
    return [KODAK / n for n in names]


def load_rgb(path: Path) -> np.ndarray:
    """(H,W,3) float64 in [0,1]."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def quantise(x: np.ndarray) -> np.ndarray:
    """Round to 8 bits, as a file would hold it: (H,W,3) float64 in [0,1]."""
    return np.round(np.clip(x, 0, 1) * 255) / 255


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """(H,W,3) in [0,1] -> (1,3,H,W) float32."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float()[None]


def to_array(t: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) -> (H,W,3) float64."""
    return t[0].permute(1, 2, 0).double().cpu().numpy()


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, 0, 1)
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)


def save_json(path: str | None, obj: Any) -> None:
    """Write a benchmark's figures as JSON when a path was given (folders made as needed)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(obj, indent=1) + "\n")


def predictor_for(recipe: Any, path: str | None) -> Any:
    """The predictor in ``path``, else the shipped one trained for ``recipe``; SystemExit when there is none."""
    from enhance.predict import find_predictor, load_predictor

    predictor = load_predictor(path) if path else find_predictor(recipe)
    if predictor is None:
        raise SystemExit(f"no parameter predictor ships for {recipe.name!r}; give --predictor FILE")
    return predictor
