"""Preference pairs: two images of one scene, the first known to be better (a CSV of them)."""

from __future__ import annotations

import csv
import os

from nima.data.readers import image_problem


def read_pairs(path: str) -> list[tuple[str, str]]:
    """(better, worse) image paths from a CSV with columns ``better`` and ``worse`` (paths relative
    to the CSV's folder unless absolute; other columns are ignored). ValueError names the file and
    the problem: unreadable, a missing column, no rows, or a listed image that is missing, empty
    or not an image (checked here, before a run spends its time caching)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"better", "worse"} - set(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read the preference pairs ({exc})") from None
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)} (a pair is a 'better' and a 'worse' image)")
    if not rows:
        raise ValueError(f"{path}: no pairs")
    folder = os.path.dirname(os.path.abspath(path))
    pairs = [(os.path.join(folder, row["better"]), os.path.join(folder, row["worse"])) for row in rows]
    for line, pair in enumerate(pairs, start=2):
        for image in pair:
            problem = image_problem(image)
            if problem:
                raise ValueError(f"{path}, line {line}: {image}: {problem}")
    return pairs
