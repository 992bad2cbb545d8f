"""Tests for nima/data/synthetic.py: graded two-sided distortions and the ranking dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nima.data.synthetic import (
    FAMILIES,
    LEVELS,
    SyntheticRanking,
    _s_curve,
    distort,
    eval_pairs,
    linear_to_srgb,
    load_pristine,
    srgb_to_linear,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KODAK = SHARED / "kodak" / "kodim23.png"


def _photo(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """A small photo-like (3,h,w) image in (0,1): smooth colour gradients, an edge and texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.6 - 0.3 * xx * yy])
    base = base + 0.25 * (xx > 0.5).float() * torch.tensor([0.3, -0.2, 0.1]).view(3, 1, 1)
    return (base + 0.04 * torch.randn(3, h, w, generator=g)).clamp(0.02, 0.98)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def _hf_energy(x: torch.Tensor) -> float:
    """Mean squared horizontal plus vertical first difference."""
    return float((x.diff(dim=-1) ** 2).mean() + (x.diff(dim=-2) ** 2).mean())


def _chroma(x: torch.Tensor) -> float:
    return float((x - x.mean(0, keepdim=True)).abs().mean())


def _write_pngs(folder: Path, n: int, h: int = 60, w: int = 90) -> list[str]:
    paths = []
    for k in range(n):
        arr = (_photo(h, w, seed=k).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        p = folder / f"src{k}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def kodak() -> torch.Tensor:
    if not KODAK.exists():
        pytest.skip("../shared/data not present")
    return load_pristine(KODAK)


# --- distort ------------------------------------------------------------------------------


def test_families_and_levels() -> None:
    assert LEVELS == 5
    assert len(FAMILIES) == len(set(FAMILIES)) == 22
    assert FAMILIES[0] == "exposure_under" and "oversmooth" in FAMILIES


def test_grain_has_no_colour() -> None:
    """noise_luma adds the same value to R, G and B: away from clipping, R-G and B-G are untouched."""
    x = torch.rand(3, 48, 64) * 0.6 + 0.2
    y = distort(x, "noise_luma", 3, seed=1)
    change = y - x
    assert change.abs().mean() > 5 / 255  # sigma ~10/255 at level 3
    assert torch.allclose(change[0], change[1], atol=1e-6) and torch.allclose(change[2], change[1], atol=1e-6)


def test_tone_mix_is_a_seeded_joint_edit_that_grows_with_level() -> None:
    """Different seeds, different directions; along one direction every level moves further; the
    S-curve inside keeps black, mid-grey and white and stays monotone near its bound."""
    x = _photo()
    assert not torch.equal(distort(x, "tone_mix", 3, seed=0), distort(x, "tone_mix", 3, seed=1))
    for seed in range(6):
        psnr = [_psnr(distort(x, "tone_mix", k, seed), x) for k in range(1, LEVELS + 1)]
        assert all(a > b for a, b in zip(psnr, psnr[1:])) and psnr[0] < 45, psnr
    ramp = torch.linspace(0, 1, 1001)
    for a in (-0.99, 0.99):
        curve = _s_curve(ramp, a)
        assert (curve.diff() > 0).all()
        assert torch.allclose(curve[[0, 500, 1000]], torch.tensor([0.0, 0.5, 1.0]), atol=1e-6)


def test_shadows_crushed_darkens_the_deepest_shadows_most() -> None:
    """Along a grey ramp: black stays black, white stays near white, the curve stays monotone, and
    the darkening (in EV) is strongest at the bottom, close to the level's EV there."""
    ramp = torch.linspace(0, 1, 256).expand(3, 4, 256).clone()
    for level, ev_at_black in zip(range(1, LEVELS + 1), (0.4, 0.8, 1.2, 1.6, 2.0)):
        row = distort(ramp, "shadows_crushed", level)[0, 0]
        assert float(row[0]) == 0 and float(row[-1]) > 0.95
        assert (row.diff() >= 0).all()
        ev = torch.log2(srgb_to_linear(row[1:]) / srgb_to_linear(ramp[0, 0, 1:]))
        assert (ev <= 1e-6).all()
        assert float(ev[0]) == pytest.approx(-ev_at_black, rel=0.01)  # w = 0.994 at 1/255
        assert float(ev[:32].mean()) < float(ev[128:].mean()) < 0


@pytest.mark.parametrize("family", FAMILIES)
def test_outputs_finite_in_range_same_shape(family: str) -> None:
    images = [_photo(), torch.zeros(3, 20, 24), torch.ones(3, 20, 24)]
    for x in images:
        for level in range(1, LEVELS + 1):
            y = distort(x, family, level, seed=3)
            assert y.shape == x.shape and y.dtype == torch.float32
            assert torch.isfinite(y).all()
            assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic(family: str) -> None:
    x = _photo()
    assert torch.equal(distort(x, family, 3, seed=5), distort(x, family, 3, seed=5))


@pytest.mark.parametrize("family", ["noise_gaussian", "noise_realistic"])
def test_seed_changes_noise(family: str) -> None:
    x = _photo()
    assert not torch.equal(distort(x, family, 3, seed=0), distort(x, family, 3, seed=1))


def test_rejects_bad_arguments() -> None:
    x = _photo()
    with pytest.raises(ValueError):
        distort(x, "vignette", 1)
    with pytest.raises(ValueError):
        distort(x, "blur", 0)
    with pytest.raises(ValueError):
        distort(x, "blur", LEVELS + 1)
    with pytest.raises(ValueError):
        distort(x[:1], "blur", 1)


def test_srgb_round_trip() -> None:
    x = torch.linspace(0, 1, 1001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    assert abs(float(srgb_to_linear(torch.tensor(0.5))) - 0.21404) < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_psnr_strictly_decreases_with_level(family: str, kodak: torch.Tensor) -> None:
    psnr = [_psnr(distort(kodak, family, k), kodak) for k in range(1, LEVELS + 1)]
    assert all(a > b for a, b in zip(psnr, psnr[1:])), psnr
    assert psnr[0] < 42, f"level 1 is not a visible distortion: {psnr[0]:.1f} dB"


def _mean(x: torch.Tensor) -> float:
    return float(x.mean())


def _std(x: torch.Tensor) -> float:
    return float(x.std())


def _red_blue(x: torch.Tensor) -> float:
    return float(x[0].mean() - x[2].mean())


def _green(x: torch.Tensor) -> float:
    return float(x[1].mean() - (x[0].mean() + x[2].mean()) / 2)


# (family lowering the statistic, family raising it, statistic), at every level
TWO_SIDED = [
    ("exposure_under", "exposure_over", _mean),
    ("contrast_low", "contrast_high", _std),
    ("saturation_low", "saturation_high", _chroma),
    ("gamma_dark", "gamma_bright", _mean),
    ("cast_cool", "cast_warm", _red_blue),
    ("cast_magenta", "cast_green", _green),
    ("oversmooth", "oversharpen", _hf_energy),
]


@pytest.mark.parametrize(("low", "high", "stat"), TWO_SIDED, ids=[t[0] for t in TWO_SIDED])
def test_two_sided_pairs_move_in_opposite_directions(low: str, high: str, stat) -> None:
    x = _photo(96, 128)
    ref = stat(x)
    for level in range(1, LEVELS + 1):
        lowered, raised = stat(distort(x, low, level)), stat(distort(x, high, level))
        assert lowered < ref < raised, (level, lowered, ref, raised)
    # and further at the strongest level than at the mildest
    assert stat(distort(x, low, LEVELS)) < stat(distort(x, low, 1))
    assert stat(distort(x, high, LEVELS)) > stat(distort(x, high, 1))


def test_one_sided_families_move_the_expected_way() -> None:
    x = _photo(96, 128)
    assert _std(distort(x, "haze", 3)) < _std(x) and _mean(distort(x, "haze", 3)) > _mean(x)
    assert _hf_energy(distort(x, "blur", 3)) < _hf_energy(x)
    for family in ("noise_gaussian", "noise_realistic"):
        assert _hf_energy(distort(x, family, 3)) > _hf_energy(x)


def test_exposure_is_exact_in_linear_light() -> None:
    x = torch.full((3, 4, 4), 0.5)
    y = distort(x, "exposure_under", 1)  # -0.5 EV
    assert torch.allclose(srgb_to_linear(y), srgb_to_linear(x) * 2**-0.5, atol=1e-6)


def test_oversmooth_keeps_strong_edges() -> None:
    x = torch.full((3, 64, 64), 0.2)
    x[:, :, 32:] = 0.8
    x = x + 0.03 * torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(0))
    y = distort(x, "oversmooth", 3)
    assert float(y[:, :, :28].std()) < 0.5 * float(x[:, :, :28].std())  # texture flattened
    assert float(y[:, :, 33].mean() - y[:, :, 30].mean()) > 0.5  # edge still a step


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
