"""HDR tone mapping end to end: scene-referred files through `enhance tune` / `enhance apply`, and the
linear paths of `tonemap` and `tonemap_local` (range, gradients, monotonicity, hue, tiling)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

import cli
from enhance import ops
from enhance.io import read
from enhance.ops.color import luminance, srgb_to_linear
from enhance.recipe import Recipe
from enhance.render import apply_pipeline, hdr_scale, render
from enhance.tune import tune

H, W = 64, 96


def scene(seed: int = 0) -> np.ndarray:
    """(H,W,3) float32 linear radiance: smooth colours over ~16 EV, a sun at ~50 and exact black."""
    g = torch.Generator().manual_seed(seed)
    colour = F.interpolate(torch.rand(1, 3, 4, 6, generator=g) * 0.8 + 0.2, size=(H, W), mode="bilinear")
    ev = F.interpolate(torch.rand(1, 1, 3, 4, generator=g) * 14 - 10, size=(H, W), mode="bicubic")
    x = (colour * torch.exp2(ev))[0].permute(1, 2, 0).numpy().copy()
    x[4:10, 70:80] = 50.0
    x[-4:, :4] = 0.0
    return x.astype(np.float32)


def write_hdr(path: Path, rgb: np.ndarray) -> None:
    import cv2

    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    openexr = pytest.importorskip("OpenEXR", reason="OpenEXR not installed (the optional extra 'hdr')")
    header = {"compression": openexr.ZIP_COMPRESSION, "type": openexr.scanlineimage}
    openexr.File(header, {k: np.ascontiguousarray(v) for k, v in channels.items()}).write(str(path))


def write_float_tiff(path: Path, rgb: np.ndarray) -> None:
    tifffile.imwrite(path, rgb.astype(np.float32), photometric="rgb")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-weights scorer checkpoint for the command line."""
    from nima import NIMA, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random.pt"
    save_checkpoint(path, NIMA(pretrained=False))
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, list(args))
    return result.exit_code, result.output


def tune_cli(src: Path, out: Path, weights: str, op: str = "tonemap") -> tuple[int, str]:
    return run("tune", str(src), "--op", op, "-o", str(out), "--steps", "3", "--weights", weights)


# --- end to end -------------------------------------------------------------------------------


def check_tuned(src: Path, out: Path, depth: int = 8) -> dict:
    """``out`` is a display image of the scene's size and bit depth; its sidecar records the pre-scale."""
    photo = read(out)
    assert photo.image.shape == (1, 3, H, W) and not photo.linear and photo.bit_depth == depth
    record = json.loads(Path(f"{out}.json").read_text())
    assert record["hdr_scale"] == pytest.approx(hdr_scale(read(src).image), rel=1e-6)
    return record


@pytest.mark.parametrize("op", ["tonemap", "tonemap_local"])
def test_tune_radiance_hdr_to_jpeg(tmp_path: Path, weights: str, op: str) -> None:
    write_hdr(tmp_path / "scene.hdr", scene())
    code, output = tune_cli(tmp_path / "scene.hdr", tmp_path / "out.jpg", weights, op)
    assert code == 0, output
    check_tuned(tmp_path / "scene.hdr", tmp_path / "out.jpg")


def test_hdr_input_climbs_the_recipes_steps_where_a_predictor_is_trained(tmp_path: Path, weights: str) -> None:
    """No predictor is trained on HDR input, so without --steps its climb has the recipe's budget,
    not the refining steps a predicted photo gets; in a batch as in `enhance tune`."""
    from enhance.predict import find_predictor
    from enhance.recipe import load_recipe

    recipe = tmp_path / "seven.toml"
    recipe.write_text('steps = 7\n[[op]]\nname = "tonemap"\n')
    predictor = find_predictor(load_recipe(str(recipe)))
    assert predictor is not None and predictor.refine_steps != 7
    (tmp_path / "in").mkdir()
    write_hdr(tmp_path / "in" / "scene.hdr", scene())
    code, output = run("tune", str(tmp_path / "in" / "scene.hdr"), "--recipe", str(recipe), "-o",
                       str(tmp_path / "out.jpg"), "--weights", weights)
    assert code == 0, output
    assert check_tuned(tmp_path / "in" / "scene.hdr", tmp_path / "out.jpg")["steps"] == 7
    code, output = run("batch", str(tmp_path / "in"), "-o", str(tmp_path / "batch"), "--recipe", str(recipe),
                       "--weights", weights, "--quiet")
    assert code == 0, output
    assert json.loads((tmp_path / "batch" / "scene.png.json").read_text())["steps"] == 7


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_tune_exr_half_and_float(tmp_path: Path, weights: str, dtype: type) -> None:
    rgb = scene(1).astype(dtype)
    write_exr(tmp_path / "scene.exr", {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2]})
    code, output = tune_cli(tmp_path / "scene.exr", tmp_path / "out.png", weights)
    assert code == 0, output
    check_tuned(tmp_path / "scene.exr", tmp_path / "out.png", depth=16)  # PNG from HDR input: 16-bit
    code, output = run("tune", str(tmp_path / "scene.exr"), "--op", "tonemap", "-o", str(tmp_path / "out8.png"),
                       "--steps", "3", "--weights", weights, "--depth", "8")
    assert code == 0, output
    check_tuned(tmp_path / "scene.exr", tmp_path / "out8.png", depth=8)


def test_tune_float_tiff_with_negatives_to_16_bit_tiff(tmp_path: Path, weights: str) -> None:
    rgb = scene(2)
    rgb[20:24, 20:24] = -0.5  # e.g. from a raw developer's colour matrix: io clips negatives to 0
    write_float_tiff(tmp_path / "scene.tif", rgb)
    photo = read(tmp_path / "scene.tif")
    assert photo.linear and float(photo.image.min()) == 0.0 and float(photo.image.max()) == 50.0
    code, output = tune_cli(tmp_path / "scene.tif", tmp_path / "out.tif", weights)
    assert code == 0, output
    check_tuned(tmp_path / "scene.tif", tmp_path / "out.tif", depth=16)  # TIFF from HDR input: 16-bit


def test_16_bit_tiff_is_display_referred(tmp_path: Path, weights: str) -> None:
    """io reads integer TIFF as sRGB-encoded (only float TIFF is linear): no pre-scale, display path."""
    pixels = (np.clip(scene(3), 0, 1) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "photo.tif", pixels, photometric="rgb")
    assert not read(tmp_path / "photo.tif").linear
    code, output = tune_cli(tmp_path / "photo.tif", tmp_path / "out.tif", weights)
    assert code == 0, output
    assert read(tmp_path / "out.tif").bit_depth == 16
    assert json.loads((tmp_path / "out.tif.json").read_text())["hdr_scale"] is None


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_inf_is_a_one_line_error_and_writes_nothing(tmp_path: Path, weights: str, bad: float) -> None:
    rgb = scene()
    rgb[5, 5, 1] = bad
    write_float_tiff(tmp_path / "bad.tif", rgb)
    code, output = tune_cli(tmp_path / "bad.tif", tmp_path / "out.jpg", weights)
    assert code == 2
    assert output.strip().splitlines() == [f"enhance: {tmp_path / 'bad.tif'}: contains NaN/Inf values"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tif"]


def test_exr_with_nan_is_refused(tmp_path: Path, weights: str) -> None:
    rgb = scene().astype(np.float16)
    rgb[0, 0, 0] = np.nan
    write_exr(tmp_path / "bad.exr", {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2]})
    code, output = tune_cli(tmp_path / "bad.exr", tmp_path / "out.jpg", weights)
    assert code == 2 and "contains NaN/Inf values" in output
    assert not (tmp_path / "out.jpg").exists() and not (tmp_path / "out.jpg.json").exists()


def test_exr_without_rgb_channels_is_a_clear_error(tmp_path: Path, weights: str) -> None:
    write_exr(tmp_path / "depth.exr", {"Z": scene()[..., 0]})
    code, output = tune_cli(tmp_path / "depth.exr", tmp_path / "out.jpg", weights)
    assert code == 2
    assert output.strip() == f"enhance: {tmp_path / 'depth.exr'}: EXR has no R, G, B channels (has Z)"
    assert not (tmp_path / "out.jpg").exists()


def test_hdr_input_needs_a_tone_mapping_operator_first(tmp_path: Path, weights: str) -> None:
    write_hdr(tmp_path / "scene.hdr", scene())
    code, output = tune_cli(tmp_path / "scene.hdr", tmp_path / "out.jpg", weights, op="contrast")
    assert code == 2 and "HDR input needs a tone-mapping operator first (tonemap, tonemap_local)" in output


def test_apply_reuses_the_recorded_pre_scale(tmp_path: Path, weights: str) -> None:
    write_hdr(tmp_path / "scene.hdr", scene())
    code, output = tune_cli(tmp_path / "scene.hdr", tmp_path / "out.png", weights, op="tonemap_local")
    assert code == 0, output
    sidecar = tmp_path / "out.png.json"
    code, output = run("apply", str(tmp_path / "scene.hdr"), "--params", str(sidecar), "-o", str(tmp_path / "again.png"))
    assert code == 0, output
    first, again = (np.asarray(Image.open(tmp_path / n)) for n in ("out.png", "again.png"))
    assert np.array_equal(first, again)
    # the same scene 4 EV brighter, re-applied with the recorded scale, is brighter
    write_hdr(tmp_path / "bright.hdr", scene() * 16)
    code, output = run("apply", str(tmp_path / "bright.hdr"), "--params", str(sidecar), "-o", str(tmp_path / "b.png"))
    assert code == 0, output
    assert np.asarray(Image.open(tmp_path / "b.png")).mean() > first.mean() + 10
    record = json.loads(sidecar.read_text())
    record["hdr_scale"] = -1.0
    sidecar.write_text(json.dumps(record))
    code, output = run("apply", str(tmp_path / "scene.hdr"), "--params", str(sidecar), "-o", str(tmp_path / "c.png"))
    assert code == 2 and "hdr_scale must be a positive number" in output


def test_tune_does_not_depend_on_the_absolute_scale(tiny_scorer) -> None:
    """The pre-scale makes the tuned result the same for the scene at any exposure."""
    x = torch.from_numpy(scene(4)).permute(2, 0, 1)[None].contiguous()
    recipe = Recipe.from_ops(["tonemap"])
    out, res = tune(x, recipe, tiny_scorer, steps=2, linear=True)
    out_bright, res_bright = tune(x * 1000, recipe, tiny_scorer, steps=2, linear=True)
    assert res.hdr_scale == pytest.approx(1000 * res_bright.hdr_scale, rel=1e-5)
    assert (out - out_bright).abs().max() < 1e-4


def test_hdr_scale_brings_the_log_average_to_middle_grey() -> None:
    x = torch.from_numpy(scene(5)).permute(2, 0, 1)[None].contiguous()
    y = luminance(x * hdr_scale(x))
    y = y[y > 0]
    assert float(torch.log2(y).mean()) == pytest.approx(math.log2(0.18), abs=1e-4)
    assert hdr_scale(torch.zeros(1, 3, 4, 4)) == 1.0


# --- the operators' linear paths ---------------------------------------------------------------

HDR_OPS = ["tonemap", "tonemap_local"]


def radiance(seed: int = 0) -> torch.Tensor:
    """(2,3,H,W) radiance with exact zeros, values up to 1e4 and a grey ramp over 30 EV."""
    x = torch.from_numpy(np.stack([scene(seed), scene(seed + 1)])).permute(0, 3, 1, 2).contiguous()
    x[:, :, :2] = torch.logspace(-6, 4, W).view(1, 1, 1, W)
    x[:, :, -3:, -3:] = 1e4
    return x


def random_params(op: str, seed: int, batch: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {p.name: p.bounded(2 * torch.randn(batch, generator=g)) for p in ops.get(op).params}


def test_hdr_ops_are_flagged() -> None:
    assert [n for n in ops.names() if ops.get(n).hdr] == HDR_OPS


@pytest.mark.parametrize("name", HDR_OPS)
def test_linear_output_in_range_and_finite_gradients_at_0_and_1e4(name: str) -> None:
    op = ops.get(name)
    at_bounds = [{p.name: torch.full((2,), bound(p)) for p in op.params} for bound in (lambda p: p.lo, lambda p: p.hi)]
    for i, params in enumerate((op.identity_params(2), random_params(name, 0), random_params(name, 1), *at_bounds)):
        x = radiance().requires_grad_()
        u = {k: v.clone().requires_grad_() for k, v in params.items()}
        y = op.fn(x, u, linear=True)
        assert y.shape == x.shape and torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        assert y[:, :, -2:, :2].max() == 0  # black stays black
        if i == 0:  # the default curve shows 1e4 (~16 EV over the scene's grey) as white
            assert y[:, :, -3:, -3:].min() > 0.99
        weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
        (y * weight).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in u.values())
        if i in (1, 2):  # away from identity every parameter moves the output (at it, tonemap_local's radius does not)
            assert all(t.grad.abs().min() > 0 for t in u.values())


@pytest.mark.parametrize("name", HDR_OPS)
def test_linear_is_monotone_in_radiance(name: str) -> None:
    """Flat images (one per batch element) from 1e-8 to 1e5: brighter scenes never show darker."""
    op = ops.get(name)
    levels = torch.logspace(-8, 5, 500)
    for tint in ((1.0, 1.0, 1.0), (1.0, 0.6, 0.3)):
        x = (levels.view(-1, 1, 1, 1) * torch.tensor(tint).view(1, 3, 1, 1)).expand(-1, 3, 4, 4)
        for seed in range(4):
            p = {k: v[:1].expand(len(levels)) for k, v in random_params(name, seed).items()}
            y = op.fn(x, p, linear=True)[:, :, 0, 0]
            assert (y.diff(dim=0) > -1e-6).all(), (name, seed)  # float rounding at white
            assert y[-1].min() > y[0].max() + 0.5


@pytest.mark.parametrize("name", HDR_OPS)
def test_linear_keeps_hue_below_clipping(name: str) -> None:
    op = ops.get(name)
    levels = torch.logspace(-4, 2, 16).view(1, 1, 4, 4)
    x = (levels * torch.tensor([0.3, 0.2, 0.1]).view(1, 3, 1, 1)).expand(3, 3, 4, 4)
    lin = srgb_to_linear(op.fn(x, random_params(name, 0, batch=3), linear=True))
    kept = lin.amax(1) < 0.999  # no channel clipped
    assert kept.sum() > 20
    ratio = (lin / x).permute(0, 2, 3, 1)[kept]
    assert ((ratio.amax(1) - ratio.amin(1)) / ratio.mean(1)).max() < 1e-3


def extended_reinhard(y: torch.Tensor, white: float) -> torch.Tensor:
    """L (1 + L / W**2) / (1 + L), 1 from L = W on: Reinhard et al. 2002, eq. 4."""
    return torch.where(y < white, y * (1 + y / white**2) / (1 + y), torch.ones_like(y))


def greys(levels: torch.Tensor) -> torch.Tensor:
    """(1,3,1,N) neutral radiance at the given luminances."""
    return levels.view(1, 1, 1, -1).expand(1, 3, 1, -1)


def test_identity_is_global_reinhard() -> None:
    """At their identity parameters both ops are extended Reinhard with white 2**3.5 on the pre-scaled
    luminance (key 0.18); highlights = -1 moves the white to 128, +1 to 1 (linear up to white)."""
    x = radiance()
    curve = ops.tonemap(x, ops.get("tonemap").identity_params(2), linear=True)
    local = ops.tonemap_local(x, ops.get("tonemap_local").identity_params(2), linear=True)
    assert (curve - local).abs().max() < 1e-5
    levels = 0.18 * torch.exp2(torch.linspace(-10, 10, 41))
    for highlights, white in ((0.0, 2**3.5), (-1.0, 128.0), (1.0, 1.0)):
        p = ops.get("tonemap").identity_params(1)
        p["highlights"] = torch.tensor([highlights])
        shown = srgb_to_linear(ops.tonemap(greys(levels), p, linear=True))[0, 1, 0]
        torch.testing.assert_close(shown, extended_reinhard(levels, white), atol=2e-5, rtol=1e-4)


def display_spread(image: torch.Tensor) -> float:
    """EV between the 5th and 95th percentiles of the lit pixels' luminance of an sRGB (1,3,H,W) image."""
    y = luminance(srgb_to_linear(image)).flatten().double()
    low, high = torch.quantile(y[y > 0], torch.tensor([0.05, 0.95], dtype=y.dtype)).tolist()
    return math.log2(high / low)


def test_a_narrow_hdr_scene_starts_from_global_reinhard_at_its_white_point(tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """HDR input whose global Reinhard rendering spans less than ``HDR_SPREAD`` is displayed (the
    baseline and the kept-input fallback) as extended Reinhard with the white at the 99.9th percentile
    of the pre-scaled luminance, `tonemap`'s climb starts there, and a recipe that sets its own
    `tonemap` start, or starts with another operator, is left alone."""
    from enhance.climb import climb
    from enhance.render import HDR_SPREAD, Source, as_displayed, hdr_start

    x = torch.from_numpy(scene()).permute(2, 0, 1)[None] ** 0.4
    source = Source.of(x, linear=True)
    y = luminance(source.image)
    white = float(torch.quantile(y.flatten(), 0.999))
    assert source.start is not None and 1 < white < 128
    assert source.start["shadows"] == 0.0 and source.start["exposure"] == 0.0
    assert source.start["highlights"] == pytest.approx(1 - math.log2(white) / 3.5, abs=1e-5)
    want = extended_reinhard(y.clamp(max=white), white) * source.image / y.clamp_min(1e-12)
    torch.testing.assert_close(srgb_to_linear(source.plain), want.clamp(0, 1), atol=2e-4, rtol=1e-3)
    assert display_spread(source.plain) < HDR_SPREAD
    torch.testing.assert_close(source.plain, as_displayed(source.image, source.start))

    start = hdr_start(Recipe.from_ops(["tonemap"]), source.start).stages[0].start
    assert start == source.start
    c = climb([source], Recipe.from_ops(["tonemap"]), tiny_scorer, steps=0)[0]
    assert c.params[0]["highlights"].item() == pytest.approx(start["highlights"], abs=1e-5)
    assert c.before.mean == pytest.approx(c.after.mean, abs=1e-5)  # the start is the input as displayed

    own = Recipe.from_ops(["tonemap"]).with_values([{"exposure": 0.0, "shadows": 0.0, "highlights": 0.5}])
    assert hdr_start(own, source.start) == own
    local = Recipe.from_ops(["tonemap_local"])
    assert hdr_start(local, source.start) == local


def test_a_wide_hdr_scene_starts_with_its_contrast_lowered_until_it_spans_hdr_spread(tiny_scorer) -> None:  # type: ignore[no-untyped-def]
    """A scene whose global Reinhard rendering spans more than ``HDR_SPREAD`` EV (5th to 95th
    percentile of luminance) starts with the least contrast lowering that brings it within that
    spread, the white point moved with it (the 99.9th percentile still renders white); a black border
    does not change the start; the climb starts there."""
    from enhance.climb import climb
    from enhance.ops.tone import hdr_start_values
    from enhance.render import HDR_SPREAD, Source, as_displayed

    x = torch.from_numpy(scene()).permute(2, 0, 1)[None]
    source = Source.of(x, linear=True)
    start = source.start
    assert start is not None and 0 < start["shadows"] < 1
    assert HDR_SPREAD - 0.3 < display_spread(source.plain) <= HDR_SPREAD + 0.01
    wider = {**start, "shadows": start["shadows"] - 0.02}
    assert display_spread(as_displayed(source.image, wider)) > HDR_SPREAD  # the least lowering that does it
    y = luminance(source.image).flatten()
    brightest = luminance(srgb_to_linear(source.plain)).flatten()[y >= torch.quantile(y, 0.999)]
    assert brightest.min() > 0.99

    bordered = torch.cat([torch.zeros(1, 3, 8, x.shape[-1]), x], dim=2)
    bordered_start = Source.of(bordered, linear=True).start
    assert bordered_start is not None and bordered_start["shadows"] == start["shadows"]
    c = climb([source], Recipe.from_ops(["tonemap"]), tiny_scorer, steps=0)[0]
    assert c.params[0]["shadows"].item() == pytest.approx(start["shadows"], abs=1e-5)
    assert hdr_start_values(0.1, 0.2, 1.0, HDR_SPREAD)["shadows"] == 0.0
    assert hdr_start_values(1e-6, 1e3, 1e3, 0.5)["shadows"] == 1.0  # as low as the power goes


def test_the_inverse_reinhard_scene_comes_back() -> None:
    """A photo's luminance pushed through L = Y / (1 - Y) (colour ratios kept) is rendered back to the
    photo by the curve with the white pushed out (highlights = -1), below the channels' clipping."""
    photo = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.9
    y = luminance(photo)
    scene_ = photo * (1 / (1 - y))
    p = ops.get("tonemap").identity_params(1)
    p["highlights"] = torch.tensor([-1.0])
    back = srgb_to_linear(ops.tonemap(scene_, p, linear=True))
    kept = photo.amax(1, keepdim=True).expand_as(photo) < 0.95
    assert (back - photo)[kept].abs().max() < 2e-3


def test_linear_parameters_do_what_they_say() -> None:
    levels = torch.tensor([0.18 / 64, 0.18, 0.18 * 16])  # the bright end below the default white

    def show(**values: float) -> torch.Tensor:
        p = ops.get("tonemap").identity_params(1)
        p.update({k: torch.tensor([v]) for k, v in values.items()})
        return ops.tonemap(greys(levels), p, linear=True)[0, 0, 0]

    base = show()
    assert (show(exposure=1.0) > base).all() and (show(exposure=-1.0) < base).all()
    # the power about the key: shadows > 0 lifts what lies below middle grey and compresses what lies
    # above it, < 0 the reverse; the key itself stays
    assert show(shadows=1.0)[0] > base[0] and show(shadows=1.0)[2] < base[2]
    assert show(shadows=-1.0)[0] < base[0] and show(shadows=-1.0)[2] > base[2]
    assert abs(float(show(shadows=1.0)[1] - base[1])) < 1e-5
    # the white point: highlights move the bright end and barely touch the shadows
    assert show(highlights=-1.0)[2] < base[2] < show(highlights=1.0)[2]
    assert abs(float(show(highlights=-1.0)[0] - base[0])) < 0.01


def test_local_compression_keeps_local_contrast() -> None:
    """A 12 EV step with fine texture on both sides: compression shrinks the step, not the texture."""
    x = torch.full((1, 3, 64, 64), 0.18 / 64)
    x[..., 32:] = 0.18 * 64
    x = x * torch.exp2(0.5 * torch.sin(torch.arange(64.0) * 1.3)).view(1, 1, 1, 64)  # +-0.5 EV

    def log_y(p: dict[str, float]) -> torch.Tensor:
        q = {k: torch.tensor([v]) for k, v in p.items()}
        return torch.log2(luminance(srgb_to_linear(ops.tonemap_local(x, q, linear=True))) + 1e-6)[0, 0]

    flat = log_y({"compression": 0.0, "detail": 1.0, "radius": 0.05})
    local = log_y({"compression": 1.0, "detail": 1.0, "radius": 0.05})
    step = lambda t: t[:, 40:56].mean() - t[:, 8:24].mean()  # noqa: E731
    texture = lambda t: t[:, 8:24].diff(dim=-1).abs().mean()  # noqa: E731
    assert step(local) < 0.5 * step(flat)
    assert texture(local) == pytest.approx(float(texture(flat)), rel=0.2)


def test_tiled_render_matches_untiled_for_local_linear() -> None:
    x = torch.from_numpy(scene(6)).permute(2, 0, 1)[None].contiguous()
    recipe = Recipe.from_ops(["tonemap_local", "contrast"])
    params = [{"compression": torch.tensor([0.8]), "detail": torch.tensor([1.5]), "radius": torch.tensor([0.1])},
              {k: torch.tensor([0.3]) for k in ("amount", "midpoint", "saturation")}]
    whole = apply_pipeline(x, recipe, params, min(H, W), linear=True)
    tiled = render(x, recipe, params, tile=24, linear=True)
    assert (tiled - whole).abs().max() < 1e-4
