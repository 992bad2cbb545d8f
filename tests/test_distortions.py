"""Tests for nima/data/distortions.py: graded two-sided distortions, numerically the same as the
goldens recorded before the move to kornia's filters."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import KODAK, needs_kodak
from distortion_goldens import GOLDENS, SEED, golden_image, statistics

from nima.data.distortions import (
    FAMILIES,
    LEVELS,
    cast,
    contrast,
    crush_shadows,
    denoise,
    distort,
    exposure,
    gamma,
    gaussian_blur,
    guided_smooth,
    haze,
    linear_to_srgb,
    s_curve,
    saturation,
    srgb_to_linear,
    unsharp,
)
from nima.data.synthetic import load_pristine


def photo(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
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


@pytest.fixture(scope="module")
def kodak() -> torch.Tensor:
    return load_pristine(KODAK / "kodim23.png")


# Statistics of the goldens move by at most ~5e-7 when only float rounding differs (kornia's
# filters against the ones they replaced); an eps 1% larger in oversmooth moves them by 6e-5, one
# channel of one pixel changed by one 8-bit level by 8e-5.
GOLDEN_TOL = 5e-6


def _deviation(got: dict[str, list[float]], want: dict[str, list[float]]) -> float:
    return max(abs(a - b) for name in want for a, b in zip(got[name], want[name], strict=True))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_level_matches_the_goldens(family: str) -> None:
    goldens = json.loads(GOLDENS.read_text())
    x = golden_image()
    for level in range(1, LEVELS + 1):
        got = statistics(distort(x, family, level, SEED))
        assert _deviation(got, goldens[f"{family}/{level}"]) < GOLDEN_TOL, (family, level)


def test_the_golden_comparison_catches_one_pixel_one_level() -> None:
    goldens = json.loads(GOLDENS.read_text())
    y = distort(golden_image(), "blur", 1, SEED)
    assert _deviation(statistics(y), goldens["blur/1"]) < GOLDEN_TOL
    y[0, 30, 40] += 1 / 255
    assert _deviation(statistics(y), goldens["blur/1"]) > GOLDEN_TOL


def test_the_pure_functions_take_a_batch() -> None:
    """(B,3,H,W) in gives each image's own (3,H,W) result."""
    batch = torch.stack([photo(seed=0), photo(seed=1)])
    functions = [
        lambda x: exposure(x, -1.0), lambda x: contrast(x, 1.5), lambda x: saturation(x, 0.5),
        lambda x: gamma(x, 1.5), lambda x: s_curve(x, 0.5), lambda x: cast(x, (1.0, 0.0, -1.0), 0.2),
        lambda x: crush_shadows(x, 1.0), lambda x: haze(x, 0.3), lambda x: gaussian_blur(x, 1.5),
        lambda x: unsharp(x, 2.0, 1.5), lambda x: guided_smooth(x, 3, 0.01),
    ]
    for fn in functions:
        assert torch.allclose(fn(batch), torch.stack([fn(x) for x in batch]), atol=1e-6)


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
    x = photo()
    assert not torch.equal(distort(x, "tone_mix", 3, seed=0), distort(x, "tone_mix", 3, seed=1))
    for seed in range(6):
        psnr = [_psnr(distort(x, "tone_mix", k, seed), x) for k in range(1, LEVELS + 1)]
        assert all(a > b for a, b in zip(psnr, psnr[1:])) and psnr[0] < 45, psnr
    ramp = torch.linspace(0, 1, 1001)
    for a in (-0.99, 0.99):
        curve = s_curve(ramp, a)
        assert (curve.diff() > 0).all()
        assert torch.allclose(curve[[0, 500, 1000]], torch.tensor([0.0, 0.5, 1.0]), atol=1e-6)


def test_shadows_crushed_darkens_the_deepest_shadows_most() -> None:
    """Along a grey ramp: black stays black, white stays near white, the curve stays monotone, and
    the darkening (in EV) is strongest at the bottom, close to the level's EV there."""
    ramp = torch.linspace(0, 1, 256).expand(3, 4, 256).clone()
    for level, ev_at_black in zip(range(1, LEVELS + 1), (0.4, 0.8, 1.2, 1.6, 2.0)):
        out = distort(ramp, "shadows_crushed", level)
        row = out[0, 0]
        assert float(row[0]) == 0 and float(row[-1]) > 0.95
        assert (row.diff() >= 0).all()
        ev = torch.log2(srgb_to_linear(out)[0, 0, 1:] / srgb_to_linear(ramp)[0, 0, 1:])
        assert (ev <= 1e-6).all()
        assert float(ev[0]) == pytest.approx(-ev_at_black, rel=0.01)  # w = 0.994 at 1/255
        assert float(ev[:32].mean()) < float(ev[128:].mean()) < 0


@pytest.mark.parametrize("family", FAMILIES)
def test_outputs_finite_in_range_same_shape(family: str) -> None:
    images = [photo(), torch.zeros(3, 20, 24), torch.ones(3, 20, 24)]
    for x in images:
        for level in range(1, LEVELS + 1):
            y = distort(x, family, level, seed=3)
            assert y.shape == x.shape and y.dtype == torch.float32
            assert torch.isfinite(y).all()
            assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic(family: str) -> None:
    x = photo()
    assert torch.equal(distort(x, family, 3, seed=5), distort(x, family, 3, seed=5))


@pytest.mark.parametrize("family", ["noise_gaussian", "noise_realistic"])
def test_seed_changes_noise(family: str) -> None:
    x = photo()
    assert not torch.equal(distort(x, family, 3, seed=0), distort(x, family, 3, seed=1))


def test_rejects_bad_arguments() -> None:
    x = photo()
    with pytest.raises(ValueError, match="unknown family 'vignette'"):
        distort(x, "vignette", 1)
    with pytest.raises(ValueError, match="did you mean 'oversharpen'"):
        distort(x, "oversharp", 1)
    with pytest.raises(ValueError):
        distort(x, "blur", 0)
    with pytest.raises(ValueError):
        distort(x, "blur", LEVELS + 1)
    with pytest.raises(ValueError):
        distort(x[:1], "blur", 1)


def test_srgb_round_trip() -> None:
    x = torch.linspace(0, 1, 1001).expand(3, 1, 1001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    assert abs(float(srgb_to_linear(torch.full((3, 1, 1), 0.5))[0]) - 0.21404) < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
@needs_kodak
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
    x = photo(96, 128)
    ref = stat(x)
    for level in range(1, LEVELS + 1):
        lowered, raised = stat(distort(x, low, level)), stat(distort(x, high, level))
        assert lowered < ref < raised, (level, lowered, ref, raised)
    # and further at the strongest level than at the mildest
    assert stat(distort(x, low, LEVELS)) < stat(distort(x, low, 1))
    assert stat(distort(x, high, LEVELS)) > stat(distort(x, high, 1))


def test_one_sided_families_move_the_expected_way() -> None:
    x = photo(96, 128)
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


def test_denoise_removes_noise_keeps_a_flat_image_and_takes_a_batch(kodak: torch.Tensor) -> None:
    """Amounts 0 keep the image; on a noisy photo the denoised copy is closer to the clean one and
    smoother; a flat grey stays put; a batch is filtered image by image."""
    noisy = distort(kodak, "noise_gaussian", 4, seed=1)
    assert torch.allclose(denoise(noisy, 0.0, 0.0, 2), noisy, atol=1e-5)
    clean = denoise(noisy, 0.6, 0.8, 2)
    assert clean.shape == noisy.shape and 0 <= float(clean.min()) and float(clean.max()) <= 1
    assert _psnr(clean, kodak) > _psnr(noisy, kodak) + 3
    assert _hf_energy(clean) < 0.5 * _hf_energy(noisy)
    grey = torch.full((3, 20, 30), 0.4)
    assert torch.allclose(denoise(grey, 1.0, 1.0, 3), grey, atol=1e-5)
    pair = torch.stack([noisy, kodak])
    assert torch.allclose(denoise(pair, 0.6, 0.8, 2)[1], denoise(kodak, 0.6, 0.8, 2), atol=1e-6)


def test_denoise_is_the_tuners_denoise_operator(kodak: torch.Tensor) -> None:
    """The ranking groups' denoised anchor is what `enhance`'s `denoise` makes at the same amounts
    (the tuner's filter takes a fractional radius, so the radii match on a short side of 400 px)."""
    from enhance.ops.denoise import denoise as tuner_denoise

    noisy = distort(torch.nn.functional.interpolate(kodak[None], size=(400, 600), mode="bilinear")[0].clamp(0, 1),
                    "noise_realistic", 4, seed=2)
    ours = denoise(noisy, 0.6, 0.8, 2)
    theirs = tuner_denoise(noisy[None], {"luma": torch.tensor([0.6]), "chroma": torch.tensor([0.8]),
                                         "radius": torch.tensor([0.005])})[0]
    inner = (ours - theirs)[:, 4:-4, 4:-4]  # the borders differ: replicated here, renormalised there
    assert float(inner.abs().max()) < 2 / 255 and _psnr(ours, theirs) > 50
