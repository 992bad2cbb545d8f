"""The BIQ2021 reader on a fixture the test writes, and on the real database where it is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nima.data import open_dataset
from nima.data.readers import read_biq2021

REAL = Path("/work/data/biq2021")


def write_biq2021(root: Path, train: dict[str, float], test: dict[str, float], missing: tuple[str, ...] = ()) -> Path:
    """A BIQ2021 folder: Images/ and the two CSV files, Train's rows with trailing commas as published."""
    (root / "Images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [*train, *test]:
        if name not in missing:
            Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(root / "Images" / name)
    rows = "".join(f"{name},{mos:.4f},,\n" for name, mos in train.items())
    (root / "Train (Images and MOS).csv").write_text("Image Name,MOS,,\n" + rows)
    rows = "".join(f"{name},{mos:.4f}\n" for name, mos in test.items())
    (root / "Test (Images and MOS).csv").write_text("Image Name,MOS\n" + rows)
    return root


def test_reader_keeps_the_official_split_and_maps_mos_to_1_10(tmp_path: Path) -> None:
    root = write_biq2021(tmp_path / "biq", {"ss01 (1).jpg": 0.2, "ss03 (7).jpg": 0.9, "ss02 (3).jpg": 0.5},
                         {"ss03 (2).jpg": 0.7}, missing=("ss02 (3).jpg",))
    ratings = open_dataset(f"biq2021:{root}")
    assert ratings.kind == "biq2021" and ratings.skipped == 1  # a listed image that is absent
    by_name = {Path(s.path).name: s for s in ratings.samples}
    assert set(by_name) == {"ss01 (1).jpg", "ss03 (7).jpg", "ss03 (2).jpg"}
    assert {Path(p).name: part for p, part in ratings.official_split.items()} == {
        "ss01 (1).jpg": "train", "ss03 (7).jpg": "train", "ss03 (2).jpg": "test"}
    assert by_name["ss03 (7).jpg"].mean == pytest.approx(0.9)
    means = {n: float(s.dist @ np.arange(1, 11)) for n, s in by_name.items()}
    assert means["ss01 (1).jpg"] < means["ss03 (2).jpg"] < means["ss03 (7).jpg"]
    assert all(abs(float(s.dist.sum()) - 1) < 1e-5 for s in ratings.samples)


@pytest.mark.parametrize("text, problem", [
    ("Name,Score\nss01 (1).jpg,0.5\n", "header must start `Image Name,MOS`"),
    ("Image Name,MOS\nss01 (1).jpg,good\n", ":2: cannot read MOS 'good'"),
    ("Image Name,MOS\nss01 (1).jpg,0.5,0.7\n", ":2: expected `name,MOS`"),
])
def test_malformed_rating_file_is_named_with_its_line(tmp_path: Path, text: str, problem: str) -> None:
    root = write_biq2021(tmp_path / "biq", {"ss01 (1).jpg": 0.5}, {"ss01 (2).jpg": 0.5})
    (root / "Test (Images and MOS).csv").write_text(text)
    with pytest.raises(ValueError, match=r"Test \(Images and MOS\)\.csv" + ".*" + problem.replace("(", r"\(").replace(")", r"\)")):
        read_biq2021(str(root))


def test_an_image_listed_in_both_splits_is_refused(tmp_path: Path) -> None:
    root = write_biq2021(tmp_path / "biq", {"ss01 (1).jpg": 0.5}, {"ss01 (1).jpg": 0.6})
    with pytest.raises(ValueError, match="listed twice"):
        read_biq2021(str(root))


@pytest.mark.skipif(not REAL.is_dir(), reason="/work/data/biq2021 not present (BIQ2021 is not redistributed)")
def test_real_database_has_its_published_split() -> None:
    ratings = read_biq2021(str(REAL))
    parts = list(ratings.official_split.values())
    assert ratings.skipped == 0 and (parts.count("train"), parts.count("test")) == (10_000, 2_000)


def test_eval_test_split_is_the_official_one(tmp_path: Path) -> None:
    from nima.evaluate import select_split

    root = write_biq2021(tmp_path / "biq", {"ss01 (1).jpg": 0.2, "ss03 (7).jpg": 0.9}, {"ss03 (2).jpg": 0.7})
    ratings = open_dataset(f"biq2021:{root}")
    chosen = select_split(ratings.samples, ratings.root, {}, "test", ratings.official_split)
    assert [Path(s.path).name for s in chosen] == ["ss03 (2).jpg"]
    with pytest.raises(ValueError, match="has no official test split"):
        select_split(ratings.samples, ratings.root, {}, "test", {})
