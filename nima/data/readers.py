"""Readers for rated image datasets: AVA, TID2013, LIVE In the Wild (CLIVE), KonIQ-10k and a plain CSV.

Each returns Ratings: one Sample per image found on disk, with a (10,) target distribution over the
scores 1..10 and the human mean on the dataset's own scale. Images that are missing or empty (a broken
download) are counted in Ratings.skipped and left out, never fatal; a missing or malformed rating file
raises ValueError naming it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.io import loadmat

from nima.data.targets import UNIT, Scale, gaussian_buckets, std_to_unit, to_unit, votes_to_buckets

# Spread given to CSV rows that carry a mean and no std, in 1..10 units (about AVA's median std).
DEFAULT_STD = 1.4


@dataclass(frozen=True, eq=False)
class Sample:
    """One rated image.

    path: absolute image path. dist: (10,) float32 summing to 1, the probability of scores 1..10.
    mean: the human mean on the dataset's own scale. group: the unit a train/val split keeps whole
    (the image's name, or TID2013's reference image id).
    """

    path: str
    dist: npt.NDArray[np.float32]
    mean: float
    group: str


@dataclass
class Ratings:
    """A dataset as read: its samples, its score scale and how many listed images were skipped.

    official_split: image path -> the dataset's own set name ("training", "validation", "test"), where the
    dataset ships one (KonIQ-10k); empty otherwise. unusable: one line per skipped row naming the row and
    its image and saying why (the CSV reader fills it).
    """

    kind: str
    root: str
    scale: Scale
    samples: list[Sample]
    skipped: int
    official_split: dict[str, str] = field(default_factory=dict)
    unusable: list[str] = field(default_factory=list)


Row = tuple[str, npt.NDArray[np.float32], float, str]  # image name, dist, mean, group


def _need(path: str) -> str:
    if not os.path.isfile(path):
        raise ValueError(f"missing rating file: {path}")
    return path


def _usable(path: str) -> bool:
    return os.path.isfile(path) and os.path.getsize(path) > 0


def _index(*folders: str) -> dict[str, str]:
    """Lower-cased file name -> path of each file directly inside folders; the first folder wins."""
    found: dict[str, str] = {}
    for folder in folders:
        if os.path.isdir(folder):
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_file():
                        found.setdefault(entry.name.lower(), entry.path)
    return found


def _ratings(kind: str, root: str, scale: Scale, rows: Iterable[Row], find: Callable[[str], str | None]) -> Ratings:
    """Samples for the rows whose image find(name) locates and is not empty; the others are counted."""
    samples, skipped = [], 0
    for name, dist, mean, group in rows:
        path = find(name)
        if path is None or not _usable(path):
            skipped += 1
            continue
        samples.append(Sample(path, dist, mean, group))
    return Ratings(kind, root, scale, samples, skipped)


def read_ava(root: str) -> Ratings:
    """AVA: AVA.txt lines `index id v1 .. v10 tag1 tag2 challenge`; images <root>/images/<id>.jpg or
    <root>/<id>.jpg. Target: the normalised vote histogram; mean on 1..10. Lines without votes are skipped."""
    root = os.path.abspath(root)
    file = _need(os.path.join(root, "AVA.txt"))
    scores = np.arange(1, 11)
    rows: list[Row] = []
    skipped = 0
    with open(file, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 15:
                    raise ValueError(f"expected 15 fields, got {len(fields)}")
                votes = np.array([int(v) for v in fields[2:12]], dtype=np.float64)
            except ValueError as err:
                raise ValueError(f"{file}:{number}: {err}") from None
            if votes.sum() <= 0:
                skipped += 1
                continue
            mean = float((votes * scores).sum() / votes.sum())
            rows.append((f"{fields[1]}.jpg", votes_to_buckets(votes), mean, fields[1]))
    index = _index(os.path.join(root, "images"), root)
    ratings = _ratings("ava", root, Scale("AVA 1-10", 1, 10), rows, lambda name: index.get(name.lower()))
    ratings.skipped += skipped
    return ratings


def _lines(path: str) -> list[str]:
    with open(_need(path), encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def read_tid2013(root: str) -> Ratings:
    """TID2013: mos_with_names.txt (`MOS name`, MOS on 0..9) and mos_std.txt (one std a line, same
    order); images in <root>/distorted_images/, names matched case-insensitively. group: the reference
    id (`i01`). Target: gaussian_buckets of MOS and std mapped to 1..10."""
    root = os.path.abspath(root)
    mos_file, std_file = os.path.join(root, "mos_with_names.txt"), os.path.join(root, "mos_std.txt")
    entries, stds = _lines(mos_file), _lines(std_file)
    if len(entries) != len(stds):
        raise ValueError(f"{std_file} has {len(stds)} values but {mos_file} has {len(entries)} lines")
    scale = Scale("TID2013 MOS 0-9", 0, 9)
    rows: list[Row] = []
    for number, (entry, std_text) in enumerate(zip(entries, stds), 1):
        try:
            mos_text, name = entry.split()
            mos, std = float(mos_text), float(std_text)
        except ValueError:
            raise ValueError(f"{mos_file}:{number} or {std_file}:{number}: cannot read {entry!r}, {std_text!r}") from None
        dist = gaussian_buckets(to_unit(mos, scale), std_to_unit(std, scale))
        rows.append((name, dist, mos, name.split("_")[0].lower()))
    index = _index(os.path.join(root, "distorted_images"))
    return _ratings("tid2013", root, scale, rows, lambda name: index.get(name.lower()))


def _mat(path: str, key: str) -> np.ndarray:
    value = loadmat(_need(path)).get(key)
    if value is None:
        raise ValueError(f"{path} has no variable {key!r}")
    return np.asarray(value).ravel()


def read_clive(root: str) -> Ratings:
    """LIVE In the Wild: Data/AllImages_release.mat (cell of names), AllMOS_release.mat (MOS 0..100),
    AllStdDev_release.mat; images in <root>/Images/ or <root>/Images/trainingImages/. Target:
    gaussian_buckets of MOS and std mapped to 1..10."""
    root = os.path.abspath(root)
    data = os.path.join(root, "Data")
    names = [str(np.asarray(cell).ravel()[0]) for cell in _mat(os.path.join(data, "AllImages_release.mat"), "AllImages_release")]
    mos = _mat(os.path.join(data, "AllMOS_release.mat"), "AllMOS_release")
    std = _mat(os.path.join(data, "AllStdDev_release.mat"), "AllStdDev_release")
    if not len(names) == len(mos) == len(std):
        raise ValueError(f"{data}: {len(names)} names, {len(mos)} MOS and {len(std)} std values differ in count")
    scale = Scale("CLIVE MOS 0-100", 0, 100)
    rows: list[Row] = [
        (name, gaussian_buckets(to_unit(float(m), scale), std_to_unit(float(s), scale)), float(m), name)
        for name, m, s in zip(names, mos, std)
    ]
    images = os.path.join(root, "Images")
    index = _index(images, os.path.join(images, "trainingImages"))
    return _ratings("clive", root, scale, rows, lambda name: index.get(name.lower()))


def _csv_rows(path: str, required: set[str]) -> list[dict[str, str]]:
    with open(_need(path), encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)} (has {reader.fieldnames})")
        return list(reader)


def read_koniq(root: str) -> Ratings:
    """KonIQ-10k: koniq10k_distributions_sets.csv (image_name, c1..c5, c_total, MOS, SD, set; MOS on 1..5);
    images in <root>/1024x768/, <root>/512x384/ or <root>. Target: gaussian_buckets of MOS and SD mapped
    1..5 -> 1..10. The `set` column fills Ratings.official_split."""
    root = os.path.abspath(root)
    file = os.path.join(root, "koniq10k_distributions_sets.csv")
    table = _csv_rows(file, {"image_name", "MOS", "SD"})
    scale = Scale("KonIQ MOS 1-5", 1, 5)
    rows: list[Row] = []
    for number, row in enumerate(table, 2):
        try:
            mos, sd = float(row["MOS"]), float(row["SD"])
        except ValueError:
            raise ValueError(f"{file}:{number}: cannot read MOS {row['MOS']!r}, SD {row['SD']!r}") from None
        name = row["image_name"]
        rows.append((name, gaussian_buckets(to_unit(mos, scale), std_to_unit(sd, scale)), mos, name))
    index = _index(*(os.path.join(root, sub) for sub in ("1024x768", "512x384", "")))
    ratings = _ratings("koniq", root, scale, rows, lambda name: index.get(name.lower()))
    sets = {row["image_name"]: row["set"] for row in table if row.get("set")}
    ratings.official_split = {s.path: sets[s.group] for s in ratings.samples if s.group in sets}
    return ratings


def read_biq2021(root: str) -> Ratings:
    """BIQ2021: `Train (Images and MOS).csv` and `Test (Images and MOS).csv` (header `Image Name,MOS`,
    some rows with trailing empty fields; MOS on 0..1, the mean of 30 ratings on 1..5 rescaled); images
    in <root>/Images/. The file a row comes from fills Ratings.official_split ("train" or "test").
    Target: gaussian_buckets of MOS mapped 0..1 -> 1..10 with DEFAULT_STD (no per-image std is
    published). group: the image name."""
    root = os.path.abspath(root)
    scale = Scale("BIQ2021 MOS 0-1", 0, 1)
    rows: list[Row] = []
    sets: dict[str, str] = {}
    for part, file_name in (("train", "Train (Images and MOS).csv"), ("test", "Test (Images and MOS).csv")):
        file = _need(os.path.join(root, file_name))
        with open(file, encoding="utf-8-sig", newline="") as fh:
            table = list(csv.reader(fh))
        if not table or [c.strip() for c in table[0][:2]] != ["Image Name", "MOS"]:
            raise ValueError(f"{file}: header must start `Image Name,MOS`, got {','.join(table[0]) if table else 'nothing'!r}")
        for number, fields in enumerate(table[1:], 2):
            if not any(f.strip() for f in fields):
                continue
            if len(fields) < 2 or any(f.strip() for f in fields[2:]):
                raise ValueError(f"{file}:{number}: expected `name,MOS`, got {','.join(fields)!r}")
            name = fields[0].strip()
            try:
                mos = float(fields[1])
            except ValueError:
                raise ValueError(f"{file}:{number}: cannot read MOS {fields[1]!r}") from None
            if name in sets:
                raise ValueError(f"{file}:{number}: {name!r} is listed twice")
            sets[name] = part
            rows.append((name, gaussian_buckets(to_unit(mos, scale), DEFAULT_STD), mos, name))
    index = _index(os.path.join(root, "Images"))
    ratings = _ratings("biq2021", root, scale, rows, lambda name: index.get(name.lower()))
    ratings.official_split = {s.path: sets[s.group] for s in ratings.samples}
    return ratings


def read_csv(path: str, scale: Scale = UNIT, default_std: float = DEFAULT_STD) -> Ratings:
    """A CSV with header `path,mean[,std]` (scores on scale; std on scale too, else default_std in 1..10
    units) or `path,c1,..,cN` (vote counts over the scores 1..N; the scale becomes 1..N). Image paths are
    relative to the CSV's folder (or absolute). group: the path as written.

    A row with the wrong number of fields, an empty path, or a score that is not a finite number on the
    scale (a std or vote count below 0, no votes) raises ValueError naming the file and line, as does a CSV
    without rows. A row whose image is missing, empty or not an image is skipped and named in
    Ratings.unusable."""
    path = os.path.abspath(path)
    root = os.path.dirname(path)
    try:
        with open(_need(path), encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason})") from None
    columns = header[1:] if header[:1] == ["path"] else None
    votes = columns is not None and len(columns) >= 2 and columns == [f"c{k}" for k in range(1, len(columns) + 1)]
    if columns is None or not (votes or columns in (["mean"], ["mean", "std"])):
        raise ValueError(f"{path}: header must be `path,mean[,std]` or `path,c1,..,cN`, got {','.join(header)!r}")
    if votes:
        scale = Scale(f"votes 1-{len(columns)}", 1, len(columns))
    rows: list[Row] = []
    unusable: list[str] = []
    table = _csv_rows(path, {"path"})
    if not table:
        raise ValueError(f"{path}: no rows after the header")
    for number, row in enumerate(table, 2):
        where = f"{path}:{number}"
        extra = row.pop(None, None)  # type: ignore[call-overload]  # DictReader's key for surplus fields
        if extra or None in row.values():
            got = sum(v is not None for v in row.values()) + len(extra or [])
            raise ValueError(f"{where}: expected {len(header)} fields, got {got}")
        if not row["path"].strip():
            raise ValueError(f"{where}: empty image path")
        try:
            if votes:
                counts = np.array([float(row[c]) for c in columns])
                if not (np.isfinite(counts).all() and (counts >= 0).all() and counts.sum() > 0):
                    raise ValueError(f"vote counts must be finite, at least 0 and not all 0, got {counts.tolist()}")
                dist = votes_to_buckets(counts)
                mean = float((counts * np.arange(1, counts.size + 1)).sum() / counts.sum())
            else:
                mean = float(row["mean"])
                if not (np.isfinite(mean) and scale.lo <= mean <= scale.hi):
                    raise ValueError(f"mean {row['mean']!r} is not a number on the scale {scale.lo:g}..{scale.hi:g}")
                std = float(row["std"]) if row.get("std") else None
                if std is not None and not (np.isfinite(std) and std >= 0):
                    raise ValueError(f"std {row['std']!r} is not a finite number at least 0")
                dist = gaussian_buckets(to_unit(mean, scale), std_to_unit(std, scale) if std is not None else default_std)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        image = os.path.normpath(os.path.join(root, row["path"]))
        problem = image_problem(image)
        if problem:
            unusable.append(f"{where}: {row['path']}: {problem}")
            continue
        rows.append((row["path"], dist, mean, row["path"]))
    ratings = _ratings("csv", root, scale, rows, lambda name: os.path.normpath(os.path.join(root, name)))
    ratings.skipped += len(unusable)
    ratings.unusable = unusable
    return ratings


def image_problem(path: str) -> str | None:
    """Why the image file at ``path`` cannot be used (missing, empty, not an image), or None."""
    from PIL import Image

    if not os.path.isfile(path):
        return "no such file"
    if os.path.getsize(path) == 0:
        return "empty file"
    try:
        with Image.open(path):  # reads the header only
            return None
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify is no image to score
        return "not an image"


READERS: dict[str, Callable[[str], Ratings]] = {
    "ava": read_ava, "tid2013": read_tid2013, "clive": read_clive, "koniq": read_koniq, "csv": read_csv,
    "biq2021": read_biq2021,
}


def open_dataset(spec: str) -> Ratings:
    """Read a dataset named `KIND:PATH`, KIND one of ava, tid2013, clive, koniq (PATH: the dataset's
    folder) or csv (PATH: the CSV file). Raises ValueError for an unknown kind or a missing path or file."""
    kind, sep, path = spec.partition(":")
    reader = READERS.get(kind.strip().lower())
    if not sep or not path or reader is None:
        raise ValueError(f"dataset {spec!r}: expected KIND:PATH with KIND one of {', '.join(READERS)}")
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise ValueError(f"dataset {spec!r}: {path} does not exist")
    return reader(path)
