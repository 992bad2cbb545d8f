"""Dataset readers, targets, splits and the image Dataset, on small fixtures in the real file formats."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from nima.data import (
    ImageRatings, Sample, Scale, gaussian_buckets, load_image, load_split, open_dataset, read_ava,
    read_clive, read_csv, read_koniq, read_tid2013, save_split, split_groups, to_unit, votes_to_buckets,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCORES = np.arange(1, 11)


def write_image(path: Path, w: int = 12, h: int = 8, seed: int = 0) -> Path:
    """A small random RGB image; the format follows the suffix (JPEG for .jpg/.jpeg, whatever the case)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return path


# ---- targets -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mean,std", [(5.5, 1.0), (4.2, 1.3), (6.8, 0.9), (3.0, 0.5), (5.5, 0.0)])
def test_gaussian_buckets_sum_to_one_and_keep_the_mean(mean: float, std: float) -> None:
    p = gaussian_buckets(mean, std)
    assert p.shape == (10,) and p.dtype == np.float32
    assert p.sum() == pytest.approx(1.0, abs=1e-6) and (p >= 0).all()
    # Only the tails folded into buckets 1 and 10 move the mean (by 0.002 at 4.2 +- 1.3).
    assert (p * SCORES).sum() == pytest.approx(mean, abs=0.005)


def test_gaussian_buckets_by_hand() -> None:
    # std 1 around 5.5: bucket 5 is [4.5, 5.5], so it holds Phi(0) - Phi(-1) = 0.5 - 0.158655.
    p = gaussian_buckets(5.5, 1.0)
    assert p[4] == pytest.approx(0.5 - 0.158655, abs=1e-5)
    assert p[0] == pytest.approx(0.5 * (1 + torch.erf(torch.tensor(-4.0 / 2**0.5)).item()), abs=1e-6)  # tail folded
    np.testing.assert_allclose(gaussian_buckets(5.5 + 1.7, 1.2), gaussian_buckets(5.5 - 1.7, 1.2)[::-1], atol=1e-6)
    # A zero std is floored: still a valid spread distribution, centred on the mean.
    assert gaussian_buckets(3.0, 0.0).max() < 1.0 and gaussian_buckets(3.0, 0.0).argmax() == 2
    # Far outside the range, everything folds into the end bucket.
    assert gaussian_buckets(20.0, 1.0)[-1] == pytest.approx(1.0)


def test_to_unit_and_vote_resampling() -> None:
    assert to_unit(0.0, Scale("0-9", 0, 9)) == 1.0 and to_unit(9.0, Scale("0-9", 0, 9)) == 10.0
    assert to_unit(3.0, Scale("1-5", 1, 5)) == 5.5
    # Five buckets, all votes on 3 (the middle): resampled mean 5.5, zero std floored.
    p = votes_to_buckets([0, 0, 7, 0, 0])
    assert (p * SCORES).sum() == pytest.approx(5.5, abs=1e-5) and p[4] == p[5]
    # Votes on 1 and 5 equally: mean 3 -> 5.5, std 2 -> 4.5, on 1..10.
    np.testing.assert_allclose(votes_to_buckets([1, 0, 0, 0, 1]), gaussian_buckets(5.5, 4.5), atol=1e-7)
    with pytest.raises(ValueError):
        votes_to_buckets([0, 0, 0])


# ---- AVA -----------------------------------------------------------------------------------------------

def test_ava_reads_votes_exactly_and_skips_missing(tmp_path: Path) -> None:
    (tmp_path / "AVA.txt").write_text(
        "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n"
        "2 953958 10 0 0 0 0 0 0 0 0 0 0 0 1396\n"
        "3 954184 0 0 0 0 0 0 0 0 0 5 0 0 1396\n"
        "4 111111 0 0 0 0 1 0 0 0 0 0 0 0 1396\n"  # image missing
        "\n"
        "5 222222 0 0 0 0 1 0 0 0 0 0 0 0 1396\n"  # image empty (broken download)
    )
    write_image(tmp_path / "images" / "953619.jpg")
    write_image(tmp_path / "images" / "953958.jpg")
    write_image(tmp_path / "954184.jpg")  # also found at the root
    (tmp_path / "images" / "222222.jpg").touch()
    r = read_ava(str(tmp_path))
    assert (r.kind, r.scale, r.skipped, len(r.samples)) == ("ava", Scale("AVA 1-10", 1, 10), 2, 3)
    first = r.samples[0]
    votes = np.array([0, 1, 5, 17, 38, 36, 15, 6, 5, 1])
    np.testing.assert_array_equal(first.dist, (votes / 124).astype(np.float32))
    assert first.mean == pytest.approx(699 / 124) and first.group == "953619"
    assert first.path == str(tmp_path / "images" / "953619.jpg")
    assert r.samples[1].mean == 1.0 and r.samples[2].path == str(tmp_path / "954184.jpg")


def test_ava_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "AVA.txt").write_text("1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n2 953958 1 2 3\n")
    with pytest.raises(ValueError, match=r"AVA\.txt:2"):
        read_ava(str(tmp_path))


# ---- TID2013 -------------------------------------------------------------------------------------------

def make_tid(root: Path) -> None:
    (root / "mos_with_names.txt").write_text(
        "5.51429 I01_01_1.bmp\n4.5 i01_01_2.bmp\n3.0 I01_11_1.BMP\n6.0 i02_01_1.bmp\n2.0 i03_01_1.bmp\n"
    )
    (root / "mos_std.txt").write_text("0.9\n1.2\n0.0\n0.8\n1.0\n")
    images = root / "distorted_images"
    for name in ("i01_01_1.bmp", "I01_01_2.BMP", "i01_11_1.bmp", "I02_01_1.bmp"):  # i03 missing
        write_image(images / name)


def test_tid2013_matches_names_case_insensitively_and_groups_by_reference(tmp_path: Path) -> None:
    make_tid(tmp_path)
    r = read_tid2013(str(tmp_path))
    assert r.skipped == 1 and len(r.samples) == 4
    assert [Path(s.path).name for s in r.samples] == ["i01_01_1.bmp", "I01_01_2.BMP", "i01_11_1.bmp", "I02_01_1.bmp"]
    assert [s.group for s in r.samples] == ["i01", "i01", "i01", "i02"]
    assert r.samples[0].mean == pytest.approx(5.51429)
    # MOS and std 0..9 -> 1..10: the same Gaussian buckets.
    np.testing.assert_allclose(r.samples[1].dist, gaussian_buckets(5.5, 1.2), atol=1e-7)
    assert (r.samples[0].dist * SCORES).sum() == pytest.approx(to_unit(5.51429, r.scale), abs=1e-3)


def test_tid2013_std_count_mismatch_is_an_error(tmp_path: Path) -> None:
    make_tid(tmp_path)
    (tmp_path / "mos_std.txt").write_text("0.9\n")
    with pytest.raises(ValueError, match="mos_std.txt"):
        read_tid2013(str(tmp_path))


# ---- CLIVE ---------------------------------------------------------------------------------------------

def make_clive(root: Path, names: list[str], mos: list[float], std: list[float]) -> None:
    """The release layout: a (N,1) cell of names and (1,N) doubles, as loadmat shows the real files."""
    (root / "Data").mkdir(parents=True)
    cell = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cell[i, 0] = name
    scipy.io.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([mos], dtype=np.float64)})
    scipy.io.savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.array([std], dtype=np.float64)})


def test_clive_fixture(tmp_path: Path) -> None:
    make_clive(tmp_path, ["t1.png", "10.png", "1002.JPG", "9.png"], [63.9, 25.3, 50.0, 40.0], [18.4, 13.7, 10.0, 5.0])
    write_image(tmp_path / "Images" / "trainingImages" / "t1.png")
    write_image(tmp_path / "Images" / "10.png")
    write_image(tmp_path / "Images" / "1002.JPG")
    r = read_clive(str(tmp_path))
    assert r.skipped == 1 and [s.group for s in r.samples] == ["t1.png", "10.png", "1002.JPG"]
    assert r.samples[0].path == str(tmp_path / "Images" / "trainingImages" / "t1.png")
    assert r.samples[0].mean == pytest.approx(63.9)
    np.testing.assert_allclose(r.samples[2].dist, gaussian_buckets(5.5, 0.9), atol=1e-7)


@pytest.mark.skipif(not (SHARED / "clive").exists(), reason="../shared/data not present")
def test_clive_real_copy() -> None:
    r = open_dataset(f"clive:{SHARED / 'clive'}")
    assert len(r.samples) == 936 and r.skipped == 0
    means = np.array([s.mean for s in r.samples])
    assert 0 <= means.min() < 10 and 90 < means.max() <= 100
    assert all(os.path.isfile(s.path) for s in r.samples)
    assert sum("trainingImages" in s.path for s in r.samples) == 7
    dists = np.stack([s.dist for s in r.samples])
    np.testing.assert_allclose(dists.sum(1), 1.0, atol=1e-5)
    # The 1..10 bucket means track the MOS mapped to 1..10 (exactly but for tails folded at the ends).
    assert np.corrcoef(dists @ SCORES, means)[0, 1] > 0.99


# ---- KonIQ and CSV -------------------------------------------------------------------------------------

def test_koniq(tmp_path: Path) -> None:
    with open(tmp_path / "koniq10k_distributions_sets.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "set"])
        w.writerow(["10004473376.jpg", 0, 0, 25, 73, 7, 105, 3.828571, 0.527278, "training"])
        w.writerow(["10007357496.jpg", 0, 3, 45, 47, 6, 101, 3.554455, 0.611066, "test"])
        w.writerow(["10007903636.jpg", 1, 0, 25, 72, 2, 100, 3.77, 0.529094, "validation"])
    write_image(tmp_path / "1024x768" / "10004473376.jpg")
    write_image(tmp_path / "512x384" / "10007357496.jpg")
    r = read_koniq(str(tmp_path))
    assert r.skipped == 1 and r.samples[1].path == str(tmp_path / "512x384" / "10007357496.jpg")
    np.testing.assert_allclose(r.samples[0].dist, gaussian_buckets(1 + 2.828571 * 9 / 4, 0.527278 * 9 / 4), atol=1e-7)
    assert r.official_split == {r.samples[0].path: "training", r.samples[1].path: "test"}


def test_csv_mean_and_votes(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "sub" / "b.jpg")
    (tmp_path / "means.csv").write_text("path,mean,std\na.png,75,10\nsub/b.jpg,50,\nnope.png,1,1\n")
    r = read_csv(str(tmp_path / "means.csv"), scale=Scale("0-100", 0, 100))
    assert r.skipped == 1 and r.samples[1].path == str(tmp_path / "sub" / "b.jpg") and r.samples[1].group == "sub/b.jpg"
    np.testing.assert_allclose(r.samples[0].dist, gaussian_buckets(7.75, 0.9), atol=1e-7)
    (tmp_path / "votes.csv").write_text("path,c1,c2,c3,c4,c5\na.png,0,0,7,0,0\n")
    v = read_csv(str(tmp_path / "votes.csv"))
    assert v.scale == Scale("votes 1-5", 1, 5) and v.samples[0].mean == 3.0
    (tmp_path / "votes10.csv").write_text("path," + ",".join(f"c{k}" for k in range(1, 11)) + "\na.png,0,0,0,1,3,0,0,0,0,0\n")
    np.testing.assert_allclose(read_csv(str(tmp_path / "votes10.csv")).samples[0].dist, [0, 0, 0, .25, .75, 0, 0, 0, 0, 0])
    (tmp_path / "bad.csv").write_text("file,score\na.png,3\n")
    with pytest.raises(ValueError, match="bad.csv"):
        read_csv(str(tmp_path / "bad.csv"))


# ---- open_dataset --------------------------------------------------------------------------------------

def test_open_dataset_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KIND one of ava, tid2013, clive, koniq, csv"):
        open_dataset(f"flickr:{tmp_path}")
    with pytest.raises(ValueError, match="KIND:PATH"):
        open_dataset(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        open_dataset(f"ava:{tmp_path / 'absent'}")
    with pytest.raises(ValueError, match=r"missing rating file: .*AVA\.txt"):
        open_dataset(f"ava:{tmp_path}")
    with pytest.raises(ValueError, match=r"AllImages_release\.mat"):
        open_dataset(f"CLIVE:{tmp_path}")
    make_tid(tmp_path)
    assert open_dataset(f"tid2013:{tmp_path}").kind == "tid2013"


# ---- splits --------------------------------------------------------------------------------------------

def fake_samples(n_groups: int = 30, per_group: int = 4) -> list[Sample]:
    dist = gaussian_buckets(5.0, 1.0)
    return [Sample(f"/data/g{g:02d}_{i}.png", dist, 5.0, f"g{g:02d}") for g in range(n_groups) for i in range(per_group)]


def test_split_keeps_groups_whole_deterministic_and_disjoint() -> None:
    samples = fake_samples()
    train, val = split_groups(samples, 0.2, seed=1)
    assert len(train) + len(val) == len(samples) and len(val) == 24
    assert not {s.path for s in train} & {s.path for s in val}
    assert not {s.group for s in train} & {s.group for s in val}
    shuffled = [samples[i] for i in np.random.default_rng(0).permutation(len(samples))]
    assert split_groups(shuffled, 0.2, seed=1) == (train, val)
    other = split_groups(samples, 0.2, seed=2)[1]
    assert {s.group for s in other} != {s.group for s in val}
    assert split_groups(samples, 0.0, seed=1) == (sorted(samples, key=lambda s: s.path), [])
    with pytest.raises(ValueError):
        split_groups(samples, 1.0, seed=1)


def test_split_with_uneven_groups_reaches_the_fraction() -> None:
    samples = fake_samples(10, 1) + fake_samples(3, 20)[20:]  # ten singletons plus two groups of 20
    _, val = split_groups(samples, 0.25, seed=0)
    assert len(val) >= round(0.25 * len(samples)) and len({s.group for s in val}) >= 1


def test_save_and_load_split_relative_to_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    samples = [Sample(str(root / f"{i}.png"), gaussian_buckets(5, 1), 5.0, str(i)) for i in range(6)]
    outside = Sample("/elsewhere/x.png", gaussian_buckets(5, 1), 5.0, "x")
    train, val = split_groups(samples, 0.5, seed=0)
    save_split(str(tmp_path / "split.json"), train + [outside], val, root=str(root))
    stored = json.loads((tmp_path / "split.json").read_text())
    assert stored["val"] == [Path(s.path).name for s in val] and stored["train"][-1] == "/elsewhere/x.png"
    assert load_split(str(tmp_path / "split.json")) == stored
    loaded = load_split(str(tmp_path / "split.json"), root=str(root))
    assert loaded == {"train": [s.path for s in train] + [outside.path], "val": [s.path for s in val]}


# ---- images --------------------------------------------------------------------------------------------

def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (16, 8), (200, 10, 10)).save(path, exif=exif)
    image = load_image(str(path))
    assert image.shape == (3, 16, 8) and image.dtype == torch.float32
    assert 0.7 < image[0].mean() < 0.85 and image[1].mean() < 0.1
    grey = tmp_path / "grey.png"
    Image.new("L", (5, 4), 255).save(grey)
    assert torch.equal(load_image(str(grey)), torch.ones(3, 4, 5))


def test_image_ratings_shapes_ranges_and_modes(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / "a.png", 40, 30, 1), write_image(tmp_path / "b.jpg", 300, 200, 2)]
    samples = [Sample(str(p), gaussian_buckets(4.0 + i, 1.0), 4.0 + i, p.name) for i, p in enumerate(paths)]
    ev = ImageRatings(samples, train=False, size=32)
    assert len(ev) == 2
    for i in range(2):
        image, dist = ev[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and dist.shape == (10,)
        assert 0 <= image.min() and image.max() <= 1
        assert torch.equal(dist, torch.from_numpy(samples[i].dist))
        assert torch.equal(image, ev[i][0])  # eval is deterministic
    # A white image stays within [0, 1] (antialiased resizing alone overshoots 1 by float rounding).
    white = tmp_path / "white.png"
    Image.new("RGB", (517, 333), (255, 255, 255)).save(white)
    for train in (False, True):
        assert ImageRatings([Sample(str(white), samples[0].dist, 4.0, "w")], train=train, size=224)[0][0].max() == 1.0
    # Eval: an upscaled solid image stays solid.
    solid = tmp_path / "solid.png"
    Image.new("RGB", (7, 5), (51, 102, 153)).save(solid)
    image, _ = ImageRatings([Sample(str(solid), samples[0].dist, 4.0, "s")], train=False, size=16)[0]
    torch.testing.assert_close(image, torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1).expand(3, 16, 16))

    tr = ImageRatings(samples, train=True, size=32)
    torch.manual_seed(0)
    views = [tr[1][0] for _ in range(6)]
    assert all(v.shape == (3, 32, 32) and 0 <= v.min() and v.max() <= 1 for v in views)
    assert any(not torch.equal(views[0], v) for v in views[1:])  # random crops and flips
    torch.manual_seed(0)
    assert torch.equal(tr[1][0], views[0])  # reproducible from the torch seed
    batch = next(iter(torch.utils.data.DataLoader(tr, batch_size=2)))
    assert batch[0].shape == (2, 3, 32, 32) and batch[1].shape == (2, 10)
