"""Files in, files out: tune or re-apply one photo and write it with its JSON sidecar.

The sidecar sits beside the output under the output's name plus ``.json``
(``photo.enhanced.jpg`` -> ``photo.enhanced.jpg.json``) and records what was done.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Callable

import torch

from enhance.io import read, write, write_json
from enhance.recipe import Recipe
from enhance.params import params_from_values
from enhance.render import check_hdr, display, hdr_scale, render
from enhance.result import sidecar_record
from enhance.tune import tune
from nima import Scorer


def default_output(path: str | Path) -> Path:
    """``photo.jpg`` -> ``photo.enhanced.jpg`` beside it."""
    p = Path(path)
    return p.with_name(f"{p.stem}.enhanced{p.suffix}")


def sidecar_path(out: str | Path) -> Path:
    return Path(f"{out}.json")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_output(src: str | Path, out: str | Path, force: bool) -> None:
    """Refuse to overwrite the input, or an existing output unless ``force``."""
    if Path(out).resolve() == Path(src).resolve():
        raise FileExistsError(f"{out}: refusing to overwrite the input")
    if Path(out).exists() and not force:
        raise FileExistsError(f"{out}: already exists (use --force to replace it)")


def tune_file(
    src: str | Path, out: str | Path, recipe: Recipe, scorer: Scorer, *, force: bool = False,
    seed: int = 0, steps: int | None = None, strength: float | None = None, optimizer: str = "adam",
    on_step: Callable[[int, float], None] | None = None, bit_depth: int | None = None,
) -> dict[str, Any]:
    """Tune ``src`` with ``recipe``, write the result to ``out`` and its sidecar; return the
    sidecar's record. ``bit_depth`` (8 or 16, PNG and TIFF) overrides the depth :func:`write`
    picks from the input. Raises ImageError for unreadable input, FileExistsError for a refused
    output, TuneError when tuning fails; nothing is written in those cases."""
    check_output(src, out, force)
    device = scorer.device
    t0 = time.perf_counter()
    photo = read(src)
    t_read = time.perf_counter() - t0
    output, result = tune(photo.image.to(device), recipe, scorer, steps=steps, strength=strength,
                          seed=seed, optimizer=optimizer, linear=photo.linear, on_step=on_step)
    t1 = time.perf_counter()
    write(out, output.cpu(), like=photo, bit_depth=bit_depth)
    t_write = time.perf_counter() - t1
    record = sidecar_record(src, file_sha256(src), out, recipe, result, scorer,
                            {"read": round(t_read, 3), **result.seconds, "write": round(t_write, 3)})
    write_json(sidecar_path(out), record)
    return record


def apply_file(src: str | Path, out: str | Path, params_file: str | Path, *, force: bool = False,
               bit_depth: int | None = None) -> dict[str, Any]:
    """Re-apply the operators and parameters recorded in a sidecar to ``src`` (any size of the
    same photo) without tuning; returns the operators applied. ``bit_depth`` as in
    :func:`tune_file`. HDR input is first multiplied by the recorded ``hdr_scale`` (by
    :func:`hdr_scale` of ``src`` when the record has none)."""
    import json

    check_output(src, out, force)
    try:
        record = json.loads(Path(params_file).read_text(encoding="utf-8"))
        names = [o["name"] for o in record["ops"]]
        values = [o["params"] for o in record["ops"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{params_file}: not a sidecar with recorded operators ({exc})") from None
    recipe = Recipe.from_ops(names)
    for stage, v in zip(recipe.stages, values):
        for spec in stage.specs:
            if spec.name not in v or not spec.lo <= float(v[spec.name]) <= spec.hi:
                raise ValueError(f"{params_file}: {stage.op.name}.{spec.name} missing or outside "
                                 f"[{spec.lo}, {spec.hi}]")
    scale = record.get("hdr_scale")
    if scale is not None and not (isinstance(scale, (int, float)) and 0 < scale < float("inf")):
        raise ValueError(f"{params_file}: hdr_scale must be a positive number, got {scale!r}")
    photo = read(src)
    image = photo.image
    if photo.linear:
        check_hdr(recipe)
        image = image * (hdr_scale(image) if scale is None else float(scale))
    if record.get("kept_input", False):
        image = display(image) if photo.linear else image
    else:
        image = render(image, recipe, params_from_values(recipe, values), linear=photo.linear).clamp_(0, 1)
    write(out, image, like=photo, bit_depth=bit_depth)
    return {"input": str(src), "output": str(out), "ops": record["ops"]}
