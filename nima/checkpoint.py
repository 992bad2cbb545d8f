"""The weights file: a small, self-describing checkpoint loadable with ``weights_only=True``.

Layout: ``{"format": "nima", "version": 1, "backbone", "buckets", "input_size", "mean", "std",
"meta": {...training data, command, metrics...}, "state_dict": {name: fp16 tensor}}``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from nima.model import NIMA

FORMAT, VERSION = "nima", 1


def save_checkpoint(path: str | os.PathLike, model: NIMA, meta: dict[str, Any] | None = None) -> None:
    """Write ``model`` (weights in fp16) and ``meta`` atomically to ``path``. ValueError for a model
    whose batch norms were folded for scoring (:func:`nima.load_scorer`'s): its weights no longer
    have a checkpoint's keys."""
    if getattr(model.features, "folded", False):
        raise ValueError("this model's batch norms are folded for scoring (load_scorer); "
                         "save the model load_checkpoint returns instead")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    blob = {
        "format": FORMAT, "version": VERSION, "backbone": model.spec.name,
        "buckets": model.head.out_features, "input_size": model.input_size,
        "mean": list(model.spec.mean), "std": list(model.spec.std),
        "meta": meta or {}, "state_dict": state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(blob, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | os.PathLike) -> tuple[NIMA, dict[str, Any]]:
    """Build the model a weights file describes and load it (float32). ValueError on a file
    that is missing, corrupt or not a NIMA checkpoint, naming the file."""
    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: weights file not found") from None
    except Exception as exc:  # torch raises several types for corrupt files
        raise ValueError(f"{path}: not a readable weights file ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a NIMA weights file (no 'format': 'nima' entry)")
    if blob.get("version") != VERSION:
        raise ValueError(f"{path}: weights format version {blob.get('version')} is not supported")
    model = NIMA(blob["backbone"], pretrained=False, buckets=int(blob["buckets"]), input_size=blob.get("input_size"))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match backbone {blob['backbone']!r}: {str(exc).splitlines()[0]}") from None
    return model, dict(blob.get("meta", {}))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, for records that name the weights used."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
