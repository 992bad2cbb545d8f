"""Scoring and ranking files: the paper's image-ranking use."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

from enhance.io import ImageError, is_image_path, read
from enhance.render import Source
from enhance.views import whole
from nima import Scorer, mean_score, std_score


@dataclass(frozen=True)
class FileScore:
    """Predicted opinion of one file: mean and std on 1..10, and the 10-bucket distribution."""

    path: str
    mean: float
    std: float
    dist: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def find_images(inputs: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Files named directly plus image files found recursively in folders (sorted per folder),
    each once, and the inputs that do not exist. A named file is kept whatever its extension,
    so that a bad file gets its own error rather than being skipped."""
    found: dict[Path, Path] = {}  # resolved -> as named; a file reached twice is listed once
    missing: list[Path] = []
    for entry in map(Path, inputs):
        if entry.is_dir():
            for p in sorted(p for p in entry.rglob("*") if p.is_file() and is_image_path(p)):
                found.setdefault(p.resolve(), p)
        elif entry.exists():
            found.setdefault(entry.resolve(), entry)
        else:
            missing.append(entry)
    return list(found.values()), missing


@torch.no_grad()
def score_files(
    paths: Sequence[str | Path], scorer: Scorer, batch_size: int = 16
) -> Iterator[FileScore | ImageError]:
    """Score files in order, ``batch_size`` at a time; a file that cannot be read yields its
    ImageError in its place and the others are still scored.

    Images are decoded, resized whole to the scorer's input on the CPU (:func:`enhance.views.whole`:
    the headline score ``tune`` and ``batch`` record too; HDR radiance is scored in the plain display
    encoding ``tune`` starts from), then scored in batches.
    """
    device = scorer.device
    pending: list[tuple[str, torch.Tensor]] = []

    def flush() -> Iterator[FileScore]:
        if not pending:
            return
        dist = scorer(torch.cat([t for _, t in pending]).to(device)).float().cpu()
        for (path, _), d, m, s in zip(pending, dist, mean_score(dist), std_score(dist)):
            yield FileScore(path, float(m), float(s), [round(float(v), 6) for v in d])
        pending.clear()

    for path in paths:
        try:
            photo = read(path)
        except ImageError as exc:
            yield from flush()
            yield exc
            continue
        shown = Source.of(photo.image, photo.linear).plain  # HDR: as the tuner displays its input
        pending.append((str(path), whole(shown, scorer.input_size)))
        if len(pending) == batch_size:
            yield from flush()
    yield from flush()


def rank_files(paths: Sequence[str | Path], scorer: Scorer) -> tuple[list[FileScore], list[ImageError]]:
    """Files sorted by predicted mean score, best first, and the errors of unreadable ones."""
    scores: list[FileScore] = []
    errors: list[ImageError] = []
    for result in score_files(paths, scorer):
        (errors if isinstance(result, ImageError) else scores).append(result)  # type: ignore[arg-type]
    return sorted(scores, key=lambda s: -s.mean), errors
