"""Tests for nima/data/synthetic.py: loading, the ranking dataset and the evaluation pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from test_distortions import photo

from nima.data.distortions import COMPOUND_BASES, DENOISED_EDIT_LEVELS, DENOISED_EDITS, DENOISED_LEVELS, FAMILIES, LEVELS
from nima.data.synthetic import SyntheticRanking, eval_pairs, load_pristine


def _write_pngs(folder: Path, n: int, h: int = 60, w: int = 90) -> list[str]:
    paths = []
    for k in range(n):
        arr = (photo(h, w, seed=k).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        p = folder / f"src{k}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    return paths


# --- loading and datasets ------------------------------------------------------------------


def test_load_pristine_long_side(tmp_path: Path) -> None:
    (path,) = _write_pngs(tmp_path, 1, h=60, w=90)
    x = load_pristine(path, long_side=45)
    assert x.shape == (3, 30, 45) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1


def _has_ordered_pair(level: torch.Tensor, family: torch.Tensor) -> bool:
    n = len(level)
    return any(
        family[a] == family[b] and level[a] != level[b]
        for a in range(1, n)
        for b in range(a + 1, n)
    )


def test_synthetic_ranking_items(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path, 3)
    ds = SyntheticRanking(paths, per_group=6, size=32, long_side=64, seed=1)
    assert len(ds) == 12
    assert len(SyntheticRanking(paths, groups_per_epoch=7)) == 7
    for i in range(len(ds)):
        images, level, family = ds[i]
        assert images.shape == (7, 3, 32, 32) and images.dtype == torch.float32
        assert 0 <= float(images.min()) and float(images.max()) <= 1
        assert level.dtype == family.dtype == torch.long and level.shape == family.shape == (7,)
        assert level[0] == 0 and family[0] == -1
        assert ((level[1:] >= 1) & (level[1:] <= LEVELS)).all()
        assert ((family[1:] >= 0) & (family[1:] < len(FAMILIES))).all()
        assert _has_ordered_pair(level, family)
        # members 1.. are distinct (family, level) distortions of one source
        assert len({(int(f), int(k)) for f, k in zip(family[1:], level[1:])}) == 6


def test_compound_groups_rank_on_top_of_a_noisy_anchor(tmp_path: Path) -> None:
    """compound=1: the anchor is a noisy copy of the source (it differs from the plain group's
    anchor under the same view), and no member is a smoothing family; compound=0 changes nothing."""
    paths = _write_pngs(tmp_path, 2)
    plain = SyntheticRanking(paths, size=32, long_side=64, seed=3)
    noisy = SyntheticRanking(paths, size=32, long_side=64, seed=3, compound=1.0)
    assert all(torch.equal(x, y) for x, y in zip(plain[1], SyntheticRanking(paths, size=32, long_side=64, seed=3, compound=0.0)[1]))
    smoothing = {FAMILIES.index("blur"), FAMILIES.index("oversmooth")}
    for i in range(len(noisy)):
        images, level, family = noisy[i]
        assert level[0] == 0 and family[0] == -1 and images.shape == (7, 3, 32, 32)
        assert not smoothing & {int(f) for f in family[1:]}
        assert _has_ordered_pair(level, family)
    # the anchor is rougher than the source: more energy in pixel-to-pixel differences
    rough = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean())  # noqa: E731
    assert sum(rough(noisy[i][0][0]) for i in range(8)) > sum(rough(plain[i][0][0]) for i in range(8))
    with pytest.raises(ValueError, match="compound"):
        SyntheticRanking(paths, compound=1.5)


def test_denoised_groups_put_the_denoised_noisy_copy_first(tmp_path: Path) -> None:
    """denoised=1: the anchor is smoother than the noisy member (a noise family at a level of
    DENOISED_LEVELS); the other members are distinct tone and colour edits at levels
    1..DENOISED_EDIT_LEVELS, or 1..denoised_edit_levels when given. denoised=0 changes nothing; a
    share beyond 1 - compound and edit levels outside 1..LEVELS are refused."""
    paths = _write_pngs(tmp_path, 2)
    plain = SyntheticRanking(paths, per_group=4, size=32, long_side=64, seed=3)
    same = SyntheticRanking(paths, per_group=4, size=32, long_side=64, seed=3, denoised=0.0)
    assert all(torch.equal(x, y) for x, y in zip(plain[1], same[1]))
    ds = SyntheticRanking(paths, per_group=4, size=32, long_side=64, seed=3, denoised=1.0)
    bases = {FAMILIES.index(f) for f in COMPOUND_BASES}
    edits = {FAMILIES.index(f) for f in DENOISED_EDITS}
    rough = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean())  # noqa: E731
    for i in range(len(ds)):
        images, level, family = ds[i]
        assert images.shape == (5, 3, 32, 32) and level[0] == 0 and family[0] == -1
        assert int(family[1]) in bases and int(level[1]) in DENOISED_LEVELS
        assert rough(images[0]) < rough(images[1])
        assert set(family[2:].tolist()) <= edits and len(set(family[2:].tolist())) == 3
        assert ((level[2:] >= 1) & (level[2:] <= DENOISED_EDIT_LEVELS)).all()
    strong = SyntheticRanking(paths, per_group=4, size=32, long_side=64, seed=3, denoised=1.0, denoised_edit_levels=LEVELS)
    levels = torch.cat([strong[i][1][2:] for i in range(len(strong))])
    assert levels.max() > DENOISED_EDIT_LEVELS and levels.max() <= LEVELS
    mixed = SyntheticRanking(paths, per_group=4, size=32, long_side=64, seed=3, compound=0.5, denoised=0.5)
    firsts = {int(mixed[i][2][1]) in bases and int(mixed[i][1][1]) in DENOISED_LEVELS for i in range(len(mixed))}
    assert firsts == {True, False}  # both kinds drawn
    with pytest.raises(ValueError, match=r"denoised must be in \[0, 1 - compound\]"):
        SyntheticRanking(paths, compound=0.6, denoised=0.5)
    with pytest.raises(ValueError, match="per_group must be at most 11 with denoised groups"):
        SyntheticRanking(paths, per_group=12, denoised=0.5)
    with pytest.raises(ValueError, match="denoised_edit_levels must be in 1..5"):
        SyntheticRanking(paths, denoised=0.5, denoised_edit_levels=6)


def test_families_restrict_the_draws_and_keep_the_older_sets_draws(tmp_path: Path) -> None:
    """families=all but the last: no member of the last family, and the same groups as a set
    drawing from an index array of those families (what a set without the last family drew)."""
    paths = _write_pngs(tmp_path, 2)
    older = list(FAMILIES[:-1])
    ds = SyntheticRanking(paths, size=32, long_side=64, seed=5, families=older)
    last = len(FAMILIES) - 1
    for i in range(len(ds)):
        images, level, family = ds[i]
        assert last not in family.tolist() and _has_ordered_pair(level, family)
    assert (ds.allowed == np.arange(last)).all()
    noisy = SyntheticRanking(paths, size=32, long_side=64, seed=5, families=older, compound=1.0)
    assert all(last not in noisy[i][2].tolist() for i in range(len(noisy)))
    with pytest.raises(ValueError, match="unknown families"):
        SyntheticRanking(paths, families=["exposure_under", "sepia"])
    with pytest.raises(ValueError, match="per_group"):
        SyntheticRanking(paths, families=["blur", "haze"], per_group=6)


def test_synthetic_ranking_shares_one_view(tmp_path: Path) -> None:
    """On a white-noise source, a differently cropped or flipped member would be uncorrelated."""
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(50, 200, size=(60, 90, 3), dtype=np.uint8)).save(path)
    ds = SyntheticRanking([str(path)], per_group=len(FAMILIES) + 1, size=32, long_side=64, groups_per_epoch=6)
    pointwise = ("exposure", "gamma", "contrast", "saturation", "cast", "haze")
    for i in range(6):
        images, level, family = ds[i]
        for j in range(1, len(level)):
            if FAMILIES[int(family[j])].startswith(pointwise):
                a, b = images[0].mean(0).flatten(), images[j].mean(0).flatten()
                assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.5


def test_synthetic_ranking_deterministic_and_epochs_differ(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path, 2)
    a = SyntheticRanking(paths, size=32, long_side=64, seed=0)
    b = SyntheticRanking(paths, size=32, long_side=64, seed=0)
    for i in (0, 3):
        for x, y in zip(a[i], b[i]):
            assert torch.equal(x, y)
    first = a[0]
    a.set_epoch(1)
    second = a[0]
    assert not torch.equal(first[0], second[0])
    a.set_epoch(0)
    assert all(torch.equal(x, y) for x, y in zip(first, a[0]))
    c = SyntheticRanking(paths, size=32, long_side=64, seed=1)
    assert not torch.equal(c[0][0], first[0])


def test_synthetic_ranking_rejects_bad_group_size(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path, 1)
    with pytest.raises(ValueError):
        SyntheticRanking(paths, per_group=1)
    with pytest.raises(ValueError):
        SyntheticRanking(paths, per_group=len(FAMILIES) + 2)
    with pytest.raises(ValueError):
        SyntheticRanking([])


def test_eval_pairs(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path, 2)
    items = list(eval_pairs(paths, size=32, long_side=96))
    per_source = 1 + len(FAMILIES) * LEVELS
    assert len(items) == 2 * per_source
    for s, stem in enumerate(("src0", "src1")):
        block = items[s * per_source : (s + 1) * per_source]
        assert block[0][:3] == (stem, "pristine", 0)
        assert {(f, k) for _, f, k, _ in block[1:]} == {
            (f, k) for f in FAMILIES for k in range(1, LEVELS + 1)
        }
        assert all(name == stem and img.shape == (3, 32, 32) for name, _, _, img in block)
    again = list(eval_pairs(paths[:1], size=32, long_side=96))
    assert all(torch.equal(x[3], y[3]) for x, y in zip(again, items))
