"""Files in, files out: tune or re-apply one photo and write it with its JSON sidecar.

The sidecar sits beside the output under the output's name plus ``.json``
(``photo.enhanced.jpg`` -> ``photo.enhanced.jpg.json``) and records what was done.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from enhance import lut
from enhance.io import WRITE_EXTENSIONS, Photo, read, write, write_json, write_pixels
from enhance.outputs import check_image_name, check_writes
from enhance.recipe import Recipe
from enhance.params import params_from_values
from enhance.render import Source, check_hdr, render
from enhance.result import sidecar_record
from enhance.tune import full_render, predicted_records, tune_sources
from enhance.views import DETAIL
from nima import Scorer

if TYPE_CHECKING:
    from enhance.predict import Predictor


def default_output(path: str | Path) -> Path:
    """``photo.jpg`` -> ``photo.enhanced.jpg`` beside it; an input in a format that cannot be
    written (Radiance ``.hdr``/``.pic``, OpenEXR) gets a PNG, 16-bit unless ``--depth 8``."""
    p = Path(path)
    suffix = p.suffix if p.suffix.lower() in WRITE_EXTENSIONS else ".png"
    return p.with_name(f"{p.stem}.enhanced{suffix}")


def sidecar_path(out: str | Path) -> Path:
    return Path(f"{out}.json")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_tune(src: str | Path, out: str | Path, *, force: bool = False, report: str | Path | None = None,
               inputs: Sequence[str | Path] = ()) -> None:
    """Refuse, before any work, a tune run that may not write ``out``, its sidecar and ``report``
    (see :mod:`enhance.outputs`): ``src`` and ``inputs`` (recipe, weights) are never written, an
    existing file only with ``force`` (a report ``enhance`` wrote may always be replaced)."""
    check_image_name(out)
    planned = [out, sidecar_path(out), *([report] if report is not None else [])]
    check_writes(planned, [src, *inputs], force=force, owned=lambda p: _own_report(p, report))


def _own_report(path: Path, report: str | Path | None) -> bool:
    from enhance.report import is_report

    return report is not None and path == Path(report) and is_report(path)


def tune_file(
    src: str | Path, out: str | Path, recipe: Recipe, scorer: Scorer, *, force: bool = False,
    seed: int = 0, steps: int | None = None, strength: float | None = None, optimizer: str = "adam",
    on_step: Callable[[int, float], None] | None = None, bit_depth: int | None = None,
    report: str | Path | None = None, inputs: Sequence[str | Path] = (), predictor: Predictor | None = None,
) -> dict[str, Any]:
    """Tune ``src`` with ``recipe``, write the result to ``out`` and its sidecar, and an HTML
    ``report`` when given; return the sidecar's record. ``bit_depth`` (8 or 16, PNG and TIFF)
    overrides the depth :func:`write` picks from the input. ``inputs``: other files the run
    reads (a recipe file, weights), never written. ``predictor``: start from its prediction (see
    :func:`enhance.tune.tune`). Raises OutputError (see :func:`check_tune`) before reading,
    ImageError for unreadable input, TuneError when tuning fails; nothing is written in those cases.

    A JPEG is tuned on its draft decoding at the size the tuner's views need
    (:func:`enhance.proxy.read_proxy`) while the full image is decoded in a thread; the full
    render looks the pointwise operators up in tables (:mod:`enhance.lut`); the image is encoded
    in a thread while the input is hashed for the sidecar. A JPEG started from a prediction,
    with pointwise operators only and an 8-bit output, stays in 8-bit codes at full resolution:
    decoded, looked up in the photo's colour table (:func:`enhance.lut.render_8bit`, the values
    the sidecar records) and encoded, never converted to float.
    """
    check_tune(src, out, force=force, report=report, inputs=inputs)
    device = scorer.device
    jpeg = Path(src).suffix.lower() in (".jpg", ".jpeg")
    # A JPEG started from a prediction is checked at detail scale only (enhance.tune.finish_predicted);
    # when the operators it may keep are pointwise and the output holds 8 bits, its full resolution is
    # never float: the decoded codes go through the 8-bit tables and straight to the encoder. A
    # select = "best" recipe keeps one operator: only when that one is spatial is the photo made float.
    pointwise = [lut.is_pointwise(stage) for stage in recipe.stages]
    in_codes = (jpeg and predictor is not None and bit_depth in (None, 8)
                and (all(pointwise) or (recipe.select == "best" and any(pointwise))))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(1, "decode") as pool:
        photo_read = pool.submit(read, src)
        full = None if in_codes else pool.submit(lambda: photo_source(photo_read.result(), device))
        palette = (pool.submit(lambda: lut.Palette.of(_codes(photo_read.result())))  # while the parameters are found
                   if in_codes and not all(stage.op.name in lut.PER_CHANNEL for stage in recipe.stages) else None)
        if jpeg:
            from enhance.proxy import read_proxy

            try:
                small = Source.of(read_proxy(src, max(DETAIL, recipe.proxy)).to(device), levels=256)
            except BaseException:
                if full is not None:
                    full.cancel()
                photo_read.result()  # a file both decoders refuse: the full decoder's message
                raise
        else:
            assert full is not None
            small = full.result()
            if small.linear:
                check_hdr(recipe)
        t_read = time.perf_counter() - t0
        climbing: dict[str, Any] = dict(steps=steps, strength=strength, optimizer=optimizer, on_step=on_step)
        if in_codes:  # the engine renders nothing at full resolution: the codes are looked up below
            assert predictor is not None
            result = predicted_records([small], recipe, scorer, predictor, crops=2, seed=seed, **climbing)[0]
        else:
            assert full is not None  # decoded in the thread whenever the codes are not looked up
            output, result = tune_sources([small], recipe, scorer, crops=2, seed=seed, predictor=predictor,
                                          full=[full], **climbing)[0]
        photo = photo_read.result()
    t1 = time.perf_counter()
    pixels = None
    if in_codes:
        values = [o["params"] for o in result.ops]
        params = params_from_values(recipe, values, torch.device("cpu"))
        if result.kept_input:
            pixels = _codes(photo)
        elif any(segment.kind == "spatial" for segment in lut.plan(recipe, params)):  # select = "best" kept one
            output = full_render(photo_source(photo, device), recipe, params_from_values(recipe, values, device))
        else:
            pixels = lut.render_8bit(_codes(photo), recipe, params, palette.result() if palette is not None else None)
        result.seconds["render"] = round(result.seconds["render"] + time.perf_counter() - t1, 3)
    # What tuning and rendering do not account for: waiting for the full decode (and the HDR gain)
    t_wait = max(time.perf_counter() - t0 - t_read - sum(result.seconds.values()), 0.0)
    t1 = time.perf_counter()
    with ThreadPoolExecutor(1, "encode") as pool:
        written = (pool.submit(write_pixels, out, pixels, like=photo) if pixels is not None else
                   pool.submit(write, out, output.cpu(), like=photo, bit_depth=bit_depth))
        src_sha = file_sha256(src)
        written.result()
    t_write = time.perf_counter() - t1
    record = sidecar_record(src, src_sha, out, recipe, result, scorer,
                            {"read": round(t_read, 3), "wait": round(t_wait, 3), **result.seconds,
                             "write": round(t_write, 3)})
    write_json(sidecar_path(out), record)
    if report is not None:
        from enhance.report import file_item, write_report

        write_report(report, [file_item(src, out, record)], title=f"enhance tune {src}")
    return record


def photo_source(photo: Photo, device: torch.device) -> Source:
    """``photo`` as the engine takes it, with its code values' count when it holds 8 or 16 bits."""
    return Source.of(photo.image.to(device), photo.linear, levels=_levels(photo))


def _codes(photo: Photo) -> np.ndarray:
    """(H,W,3) uint8: an 8-bit photo's samples (its decoded codes where it kept them)."""
    return photo.codes if photo.codes is not None else lut.to_codes(photo.image[0].permute(1, 2, 0))


def _levels(photo: Photo) -> int | None:
    """How many code values each sample of a display-referred 8- or 16-bit photo has (None otherwise)."""
    return None if photo.linear else {8: 256, 16: 65536}.get(photo.bit_depth)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def apply_file(src: str | Path, out: str | Path, params_file: str | Path, *, force: bool = False,
               bit_depth: int | None = None) -> dict[str, Any]:
    """Re-apply the operators and parameters recorded in a sidecar to ``src`` (any size of the
    same photo) without tuning; returns the operators applied. ``bit_depth`` as in
    :func:`tune_file`. ``out`` is checked like every output (see :mod:`enhance.outputs`; the
    sidecar is an input) and the sidecar's values before ``src`` is read. HDR input is first multiplied by the recorded ``hdr_scale`` (by
    :func:`hdr_scale` of ``src`` when the record has none)."""
    import json

    check_image_name(out)
    check_writes([out], [src, params_file], force=force)
    try:
        record = json.loads(Path(params_file).read_text(encoding="utf-8"))
        names = [o["name"] for o in record["ops"]]
        values = [o["params"] for o in record["ops"]]
        recipe = Recipe.from_ops(names)
        for stage, v in zip(recipe.stages, values):
            for spec in stage.specs:
                if spec.name not in v or not spec.lo <= float(v[spec.name]) <= spec.hi:
                    raise ValueError(f"{stage.op.name}.{spec.name} missing or outside [{spec.lo}, {spec.hi}]")
        scale = record.get("hdr_scale")
    except RecursionError:
        raise ValueError(f"{params_file}: not a sidecar (JSON nested too deeply)") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{params_file}: not a sidecar (not UTF-8 text: {exc.reason})") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise ValueError(f"{params_file}: not a sidecar with recorded operators ({_one_line(exc)})") from None
    if scale is not None and not (isinstance(scale, (int, float)) and 0 < scale < float("inf")):
        raise ValueError(f"{params_file}: hdr_scale must be a positive number, got {scale!r}")
    photo = read(src)
    if photo.linear:
        check_hdr(recipe)
    source = Source.of(photo.image, photo.linear, None if scale is None else float(scale), levels=_levels(photo))
    if record.get("kept_input", False):
        image = source.plain
    else:  # 8- and 16-bit photos: pointwise operators through enhance.lut's tables
        image = (lut.render(source.image, recipe, params_from_values(recipe, values), levels=source.levels)
                 if source.levels else
                 render(source.image, recipe, params_from_values(recipe, values), linear=source.linear)).clamp_(0, 1)
    if not torch.isfinite(image).all():
        raise ValueError(f"{params_file}: its values overflow on {src} (the result holds NaN/Inf)")
    write(out, image, like=photo, bit_depth=bit_depth)
    return {"input": str(src), "output": str(out), "ops": record["ops"]}
