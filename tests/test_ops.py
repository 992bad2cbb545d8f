"""Tests for enhance.ops: exact identities, ranges, batching, gradients, tiling, scale and behaviour."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from enhance import ops
from enhance.ops import Operator, ParamSpec
from enhance.ops.color import linear_to_srgb, srgb_to_linear
from enhance.recipe import Recipe

NAMES = ["contrast", "denoise", "exposure", "levels", "sharpen", "tonemap", "tonemap_local", "white_balance"]


def _image(seed: int = 0, shape: tuple[int, ...] = (2, 3, 48, 64)) -> Tensor:
    """Random image with exact 0 and 1 pixels (black, white, and single clipped channels)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    x[:, :, :6, :6] = 0.0
    x[:, :, -6:, -6:] = 1.0
    x[:, 0, 10:14, 20:30] = 1.0
    x[:, 2, 30:34, 20:30] = 0.0
    return x


def _smooth(seed: int = 0, size: tuple[int, int] = (96, 128)) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, 6, 8, generator=g), size=size, mode="bilinear", align_corners=False)


def _params(op: Operator, u: Tensor) -> dict[str, Tensor]:
    """u (len(op.params), B) unconstrained -> {name: (B,)} in human units."""
    return {p.name: p.bounded(u[i]) for i, p in enumerate(op.params)}


def _random_params(op: Operator, batch: int, seed: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return _params(op, 2 * torch.randn(len(op.params), batch, generator=g))


def _tiled(op: Operator, params: dict[str, Tensor], image: Tensor, tiles: int = 2) -> Tensor:
    """Render ``image`` in tiles x tiles pieces, each read with op.halo pixels of overlap."""
    h, w = image.shape[-2:]
    ref = min(h, w)
    halo = op.halo(params, ref)
    out = torch.empty_like(image)
    ys = [round(i * h / tiles) for i in range(tiles + 1)]
    xs = [round(i * w / tiles) for i in range(tiles + 1)]
    for y0, y1 in zip(ys, ys[1:]):
        for x0, x1 in zip(xs, xs[1:]):
            a, b = max(y0 - halo, 0), max(x0 - halo, 0)
            tile = op.fn(image[..., a : min(y1 + halo, h), b : min(x1 + halo, w)], params, ref_size=ref)
            out[..., y0:y1, x0:x1] = tile[..., y0 - a : y1 - a, x0 - b : x1 - b]
    return out


def test_registry_holds_every_operator() -> None:
    assert ops.names() == NAMES
    assert all(ops.get(n).name == n and ops.REGISTRY[n] is ops.get(n) for n in NAMES)
    with pytest.raises(ValueError, match="known: contrast"):
        ops.get("nope")


def test_an_unknown_name_gets_the_close_matches() -> None:
    with pytest.raises(ValueError, match=r"unknown operator 'tonemapp'; did you mean 'tonemap' or 'tonemap_local'\?"):
        ops.get("tonemapp")
    with pytest.raises(ValueError, match=r"did you mean 'sharpen'\?"):
        Recipe.from_ops(["exposure", "sharpn"])


def test_register_operator_registers_the_function_at_its_definition() -> None:
    spec = ParamSpec("gain", 0.5, 2.0, 1.0, "x", "brightness gain")
    try:
        @ops.register_operator(params=(spec,), doc="A gain.", name="test_gain")
        def gain(image: torch.Tensor, params: dict[str, torch.Tensor], *, ref_size: int | None = None) -> torch.Tensor:
            return (image * params["gain"].reshape(-1, 1, 1, 1)).clamp(0, 1)

        op = ops.get("test_gain")
        assert op.fn is gain and op.params == (spec,) and op.doc == "A gain." and not op.hdr
        assert op.halo({"gain": torch.ones(1)}, 100) == 0
    finally:
        ops.REGISTRY.pop("test_gain", None)


def test_register_rejects_duplicates_and_bad_identity() -> None:
    with pytest.raises(ValueError, match="already registered"):
        ops.register(ops.get("exposure"))
    bad = Operator("bad", ops.exposure, (ParamSpec("ev", 0.0, 1.0, 2.0, "EV", ""),), "")
    with pytest.raises(ValueError, match="identity"):
        ops.register(bad)
    assert "bad" not in ops.REGISTRY


@pytest.mark.parametrize("name", NAMES)
def test_identity_is_exact(name: str) -> None:
    op = ops.get(name)
    x = _image()
    assert torch.equal(op.fn(x, op.identity_params(2)), x)
    assert torch.equal(op.fn(x, op.identity_params(2), ref_size=1000), x)


@pytest.mark.parametrize("name", NAMES)
def test_output_in_range_and_not_identity(name: str) -> None:
    op = ops.get(name)
    x = _image()
    change = 0.0
    for seed in range(3):
        y = op.fn(x, _random_params(op, 2, seed))
        assert y.shape == x.shape and y.dtype == x.dtype
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        change = max(change, float((y - x).abs().max()))
    assert change > 1e-2


@pytest.mark.parametrize("name", NAMES)
def test_batched_params_match_single_calls(name: str) -> None:
    op = ops.get(name)
    x = _image()
    p = _random_params(op, 2, seed=1)
    both = op.fn(x, p)
    for i in range(2):
        one = op.fn(x[i : i + 1], {k: v[i : i + 1] for k, v in p.items()})
        torch.testing.assert_close(both[i : i + 1], one, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("u0", [-30.0, 0.5, 30.0])
def test_gradients_are_finite(name: str, u0: float) -> None:
    op = ops.get(name)
    x = _image(shape=(1, 3, 48, 64)).requires_grad_()
    u = torch.full((len(op.params), 1), u0, requires_grad=True)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    (op.fn(x, _params(op, u)) * weight).sum().backward()
    assert u.grad is not None and x.grad is not None
    assert torch.isfinite(u.grad).all() and torch.isfinite(x.grad).all()
    if u0 == 0.5:  # mid-range: every parameter moves the output
        assert (u.grad.abs() > 0).all(), u.grad


def test_gradient_at_identity_is_nonzero() -> None:
    """The optimiser starts at identity, so the strength parameters must have gradient there."""
    x = _image(shape=(1, 3, 48, 64))
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    for name, strength in [("exposure", "ev"), ("white_balance", "tint"), ("tonemap", "highlights"),
                           ("tonemap_local", "compression"), ("contrast", "amount"),
                           ("denoise", "luma"), ("sharpen", "amount")]:
        op = ops.get(name)
        p = op.identity_params(1)
        p[strength].requires_grad_()
        (op.fn(x, p, ref_size=500) * weight).sum().backward()  # as on a 500-px proxy
        grad = p[strength].grad
        assert grad is not None and grad.abs().item() > 0, name


@pytest.mark.parametrize("name", NAMES)
def test_tiled_render_matches_whole(name: str) -> None:
    op = ops.get(name)
    x = _image(seed=3, shape=(1, 3, 72, 96))
    g = torch.Generator().manual_seed(4)
    u = torch.randn(len(op.params), 1, generator=g) + 1.5  # strong, wide settings
    p = _params(op, u)
    assert (_tiled(op, p, x) - op.fn(x, p)).abs().max() < 1e-4
    if name in ("tonemap_local", "denoise", "sharpen"):
        assert op.halo(p, 72) > 0


@pytest.mark.parametrize("name", NAMES)
def test_proxy_matches_full_resolution(name: str) -> None:
    op = ops.get(name)
    full = _smooth(seed=5)
    p = _params(op, torch.full((len(op.params), 1), 1.0))
    small = op.fn(F.avg_pool2d(full, 2), p)
    assert (small - F.avg_pool2d(op.fn(full, p), 2)).abs().mean() < 0.02


def _p(name: str, **values: float) -> dict[str, Tensor]:
    p = ops.get(name).identity_params(1)
    p.update({k: torch.tensor([v]) for k, v in values.items()})
    return p


def test_exposure_raises_mean_by_the_gain() -> None:
    x = _smooth() * 0.4
    y = ops.exposure(x, _p("exposure", ev=1.0))
    assert y.mean() > x.mean()
    torch.testing.assert_close(srgb_to_linear(y), 2 * srgb_to_linear(x), atol=1e-5, rtol=0)
    assert ops.exposure(x, _p("exposure", ev=-1.0)).mean() < x.mean()


def test_srgb_round_trip() -> None:
    x = torch.linspace(0, 1, 1002).view(1, 3, 334, 1)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6, rtol=0)


def test_white_balance_warms_and_keeps_grey_luminance() -> None:
    grey = torch.full((1, 3, 4, 4), 0.5)
    y = ops.white_balance(grey, _p("white_balance", temperature=1.0, tint=0.3))
    lin = srgb_to_linear(y)[0, :, 0, 0]
    assert lin[0] > lin[2]
    luma = (lin * torch.tensor([0.2126, 0.7152, 0.0722])).sum()
    torch.testing.assert_close(luma, srgb_to_linear(torch.full((1, 3, 1, 1), 0.5))[0, 0, 0, 0], atol=1e-4, rtol=0)


def test_contrast_raises_std_and_fixes_black_and_white() -> None:
    x = _smooth()
    up = ops.contrast(x, _p("contrast", amount=0.8))
    down = ops.contrast(x, _p("contrast", amount=-0.8))
    assert up.std() > x.std() > down.std()
    ends = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    for amount, mid in [(1.0, 0.2), (-1.0, 0.8), (0.5, 0.5)]:
        assert torch.equal(ops.contrast(ends, _p("contrast", amount=amount, midpoint=mid)), ends)


@pytest.mark.parametrize("amount,mid", [(1.0, 0.2), (1.0, 0.8), (-1.0, 0.2), (-1.0, 0.8)])
def test_contrast_curve_is_monotone(amount: float, mid: float) -> None:
    ramp = torch.linspace(0, 1, 513).view(1, 1, 1, -1).expand(1, 3, 1, -1)
    y = ops.contrast(ramp, _p("contrast", amount=amount, midpoint=mid))
    assert (y.diff(dim=-1) > 0).all()


def test_saturation_zero_is_grey() -> None:
    y = ops.contrast(_smooth(), _p("contrast", saturation=0.0))
    assert (y.max(1).values - y.min(1).values).max() < 1e-6


def test_denoise_reduces_noise_on_a_flat_patch() -> None:
    g = torch.Generator().manual_seed(0)
    noisy = (torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1) + 0.04 * torch.randn(1, 3, 64, 64, generator=g))
    y = ops.denoise(noisy, _p("denoise", luma=1.0, chroma=1.0, radius=0.01))
    assert y.var(dim=(2, 3)).max() < 0.3 * noisy.var(dim=(2, 3)).min()
    torch.testing.assert_close(y.mean(dim=(2, 3)), noisy.mean(dim=(2, 3)), atol=5e-3, rtol=0)


def test_denoise_keeps_a_strong_edge() -> None:
    x = torch.zeros(1, 3, 32, 32)
    x[..., 16:] = 0.9
    y = ops.denoise(x, _p("denoise", luma=1.0, chroma=1.0, radius=0.02))
    assert (y - x).abs().max() < 0.02


def _high_frequency_energy(x: Tensor) -> Tensor:
    return (x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)).square().mean()


def test_sharpen_raises_high_frequency_energy() -> None:
    noise = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    x = _smooth(size=(48, 64)) * 0.6 + 0.2 + 0.02 * noise
    y = ops.sharpen(x, _p("sharpen", amount=1.5, radius=0.01))
    assert _high_frequency_energy(y) > 1.5 * _high_frequency_energy(x)


def test_tonemap_keeps_hue_and_is_monotone() -> None:
    pixel = torch.tensor([0.5, 0.35, 0.2]).view(1, 3, 1, 1)
    cases: list[dict[str, float]] = [
        dict(exposure=0.5), dict(shadows=0.8), dict(highlights=-1.0), dict(exposure=-1, shadows=-1)
    ]
    for values in cases:
        lin = srgb_to_linear(ops.tonemap(pixel, _p("tonemap", **values)))
        ratio = lin / srgb_to_linear(pixel)
        assert (ratio.max() - ratio.min()) / ratio.mean() < 1e-4, values
        assert not torch.allclose(ratio, torch.ones(3), atol=1e-3)
    grey = torch.linspace(0, 1, 257).view(1, 1, 1, -1).expand(1, 3, 1, -1)
    for s in (-1.0, 1.0):
        for h in (-1.0, 1.0):
            y = ops.tonemap(grey, _p("tonemap", shadows=s, highlights=h))[0, 0, 0]
            assert (y.diff() > -1e-6).all() and y[0] == 0  # float rounding at the clip


def test_tonemap_shadows_lift_darks_more_than_brights() -> None:
    ramp = torch.tensor([0.05, 0.2, 0.9]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    gain = srgb_to_linear(ops.tonemap(ramp, _p("tonemap", shadows=1.0))) / srgb_to_linear(ramp)
    assert gain[0, 0, 0, 0] > gain[0, 0, 0, 1] > gain[0, 0, 0, 2] > 1
    recovered = ops.tonemap(ramp, _p("tonemap", exposure=1.0, highlights=-1.0))
    assert recovered[0, 0, 0, 2] < 0.99  # pushed 1 EV, then recovered below white


def test_tonemap_local_compresses_large_scale_and_boosts_detail() -> None:
    x = torch.full((1, 3, 64, 64), 0.1)
    x[..., 32:] = 0.9  # a big step: large-scale contrast

    def spread(img: Tensor) -> Tensor:  # log2 luminance, bright side minus dark side
        log_lum = torch.log2(srgb_to_linear(img).mean(1) + 1e-4)
        return log_lum[0, 48, 48] - log_lum[0, 16, 16]

    y = ops.tonemap_local(x, _p("tonemap_local", compression=1.0, radius=0.05))
    assert spread(y) < 0.5 * spread(x)
    tex = _smooth(size=(64, 64)) * 0.3 + 0.35
    tex = tex + 0.05 * torch.sin(torch.arange(64.0) * 1.5)
    boosted = ops.tonemap_local(tex, _p("tonemap_local", detail=2.0, radius=0.05))
    assert _high_frequency_energy(boosted) > 1.5 * _high_frequency_energy(tex)


# ParamSpec

SPECS = [p for n in NAMES for p in ops.get(n).params]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_paramspec_bounds_are_finite(spec: ParamSpec) -> None:
    v = torch.tensor([spec.lo, spec.hi, spec.lo - 1, spec.hi + 1, spec.identity])
    u = spec.unbounded(v)
    assert torch.isfinite(u).all()
    b = spec.bounded(torch.tensor([-30.0, 30.0, -1e4, 1e4]))
    assert torch.isfinite(b).all() and b.min() >= spec.lo and b.max() <= spec.hi
    back = float(spec.bounded(spec.unbounded(torch.tensor(spec.identity))))
    assert abs(back - spec.identity) < 1e-4 * (spec.hi - spec.lo)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(SPECS), st.floats(0.001, 0.999))
def test_paramspec_round_trip(spec: ParamSpec, t: float) -> None:
    v = torch.tensor(spec.lo + t * (spec.hi - spec.lo), dtype=torch.float64)
    back = float(spec.bounded(spec.unbounded(v)))
    assert math.isclose(back, float(v), abs_tol=1e-9 * (spec.hi - spec.lo))


def test_paramspec_narrowed() -> None:
    spec = ops.get("exposure").params[0]
    n = spec.narrowed(hi=1.0)
    assert (n.lo, n.hi, n.identity, n.name) == (-3.0, 1.0, 0.0, "ev")
    assert spec.narrowed(0.5, 1.0).identity == 0.0  # the operator's identity, outside the range
    for lo, hi in [(-4.0, None), (None, 3.5), (1.0, 1.0), (2.0, 1.0), (float("nan"), None), (None, math.inf)]:
        with pytest.raises(ValueError):
            spec.narrowed(lo, hi)
    with pytest.raises(ValueError):
        ParamSpec("x", 1.0, 0.0, 0.5, "", "")


@pytest.mark.parametrize("name", ops.names())
def test_every_identity_lies_strictly_inside_its_bounds(name: str) -> None:
    # The tuner starts at the identity through a sigmoid: at a bound its slope would vanish.
    for spec in ops.get(name).params:
        assert spec.lo < spec.identity < spec.hi, spec


def test_levels_undoes_a_known_haze_and_gamma() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    hazy = 0.6 * x + 0.4
    p = {"black": torch.tensor([0.4]), "white": torch.tensor([1.0]), "gamma": torch.tensor([1.0])}
    assert torch.allclose(ops.levels(hazy, p), x, atol=1e-6)
    dark = x**2
    p = {"black": torch.tensor([0.0]), "white": torch.tensor([1.0]), "gamma": torch.tensor([2.0])}
    assert torch.allclose(ops.levels(dark, p), x, atol=1e-3)


def test_replicate_pad_matches_f_pad() -> None:
    from enhance.ops.filters import replicate_pad

    x = torch.rand(2, 3, 7, 5)
    for k in (0, 1, 4, 9):
        assert torch.equal(replicate_pad(x, k), F.pad(x, (k,) * 4, mode="replicate"))


def test_srgb_transfer_functions_are_kornias() -> None:
    """Written out to keep kornia's import off the pointwise path: the same values as kornia's,
    bit for bit, at the thresholds, black and white included, and finite gradients there."""
    from kornia.color import linear_rgb_to_rgb, rgb_to_linear_rgb

    from enhance.ops.color import linear_to_srgb, srgb_to_linear

    edges = torch.tensor([0.0, 0.0031308, 0.04045, 1.0, -0.5, 1.5]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    x = torch.cat([torch.rand(1, 3, 1, 6, generator=torch.Generator().manual_seed(0)), edges], 2)
    assert torch.equal(srgb_to_linear(x), rgb_to_linear_rgb(x.clamp(0, 1)))
    assert torch.equal(linear_to_srgb(x), linear_rgb_to_rgb(x.clamp(0, 1)))
    x = x.clone().requires_grad_(True)
    linear_to_srgb(srgb_to_linear(x)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
