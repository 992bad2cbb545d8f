"""Pristine photos for the synthetic ranking term, named by file, folder, scikit-image name or list."""

from __future__ import annotations

import csv
import os
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def pristine_paths(entries: list[str], root: str = ".") -> list[str]:
    """Image files named by ``entries``, in the order given.

    An entry is an image file or a folder (its images sorted by name), relative to ``root`` unless
    absolute; ``skimage:NAME``, a photo that ships with scikit-image (the public-domain or CC0
    ones: astronaut.png, chelsea.png, coffee.png, rocket.jpg); or a ``.csv`` file (relative to the
    working directory, as it ships beside the run configurations) whose ``path`` column lists
    images relative to ``root``, in its order. ValueError names an entry or listed file that is
    missing.
    """
    out: list[str] = []
    for entry in entries:
        if entry.startswith("skimage:"):
            out.append(str(_skimage_photo(entry)))
        elif entry.endswith(".csv"):
            out += _listed(entry, root)
        else:
            p = Path(root, entry)
            if p.is_dir():
                out += [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
            elif p.is_file():
                out.append(str(p))
            else:
                raise ValueError(f"{p}: no such file or folder of pristine photos")
    return out


def _listed(file: str, root: str) -> list[str]:
    try:
        with open(file, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ValueError(f"{file}: cannot read the list of pristine photos ({exc.strerror})") from None
    if not rows or "path" not in rows[0]:
        raise ValueError(f"{file}: expected a CSV with a `path` column and at least one row")
    paths = [os.path.join(root, row["path"]) for row in rows]
    for number, path in enumerate(paths, 2):
        if not os.path.isfile(path):
            raise ValueError(f"{file}:{number}: {path} is not a file (is the data root right?)")
    return paths


def _skimage_photo(entry: str) -> Path:
    try:
        import skimage.data
    except ImportError:
        raise ValueError(f"{entry}: needs scikit-image (pip install 'enhance[train]')") from None
    path = Path(skimage.data.__file__).parent / entry.split(":", 1)[1]
    if not path.is_file():
        raise ValueError(f"{entry}: no such photo in scikit-image")
    return path
