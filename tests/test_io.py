"""enhance.io: every format, bit depth, mode and metadata path, on files the tests write into tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, ImageOps

from enhance import io as eio
from enhance.io import ImageError, Photo, atomic_path, is_image_path, read, write, write_json, write_pixels

RNG = np.random.default_rng(0)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path: Path, **kwargs: int) -> Photo:
    """read() that also checks the input is untouched and the result is well-formed."""
    before = digest(path)
    photo = read(path, **kwargs)
    assert digest(path) == before, "read modified its input"
    h, w = photo.image.shape[-2:]
    assert photo.image.shape == (1, 3, h, w) and photo.image.dtype == torch.float32
    assert photo.image.is_contiguous() and torch.isfinite(photo.image).all()
    assert photo.image.min() >= 0 and (photo.linear or photo.image.max() <= 1)
    if photo.alpha is not None:
        assert photo.alpha.shape == (1, 1, h, w) and photo.alpha.dtype == torch.float32
        assert photo.alpha.is_contiguous() and 0 <= photo.alpha.min() <= photo.alpha.max() <= 1
    assert photo.path == str(path)
    return photo


def hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy()


def rgb8(h: int = 6, w: int = 10, c: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, c), dtype=np.uint8)


def rgb16(h: int = 6, w: int = 10, c: int = 3) -> np.ndarray:
    return RNG.integers(0, 65536, (h, w, c), dtype=np.uint16)


def smooth(h: int = 48, w: int = 64) -> torch.Tensor:
    """A gradient image that lossy codecs keep well, (1,3,H,W) in [0,1]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([x, y, (x + y) / 2])[None]


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x0112] = orientation
    exif[0x8769] = {0x9003: "2021:02:03 04:05:06"}
    return exif


def cv2_module():
    return pytest.importorskip("cv2")


def write_png16(path: Path, pixels: np.ndarray) -> None:
    cv2 = cv2_module()
    order = [2, 1, 0, 3][: pixels.shape[2]] if pixels.ndim == 3 else slice(None)
    assert cv2.imwrite(str(path), pixels[..., order] if pixels.ndim == 3 else pixels)


# ------------------------------------------------------------------------------------------ 8-bit formats


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_read_lossless_8bit_is_exact(tmp_path: Path, suffix: str) -> None:
    pixels = rgb8()
    path = tmp_path / f"a{suffix}"
    Image.fromarray(pixels).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    photo = load(path)
    assert (photo.bit_depth, photo.linear, photo.alpha) == (8, False, None)
    assert photo.format == {".png": "PNG", ".tif": "TIFF", ".webp": "WEBP"}[suffix]
    np.testing.assert_array_equal(hwc(photo.image), pixels / np.float32(255))


def test_read_jpeg_matches_pillow(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(rgb8(16, 16)).save(path, quality=90)
    photo = load(path)
    assert photo.format == "JPEG" and photo.bit_depth == 8
    with Image.open(path) as im:
        np.testing.assert_array_equal(hwc(photo.image), np.asarray(im) / np.float32(255))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_write_lossless_8bit_round_trip(tmp_path: Path, suffix: str) -> None:
    image = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(1))
    write(tmp_path / f"o{suffix}", image)
    back = load(tmp_path / f"o{suffix}")
    assert back.bit_depth == 8
    assert (back.image - image).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_write_lossy_round_trip(tmp_path: Path, suffix: str) -> None:
    image = smooth()
    write(tmp_path / f"o{suffix}", image, quality=95)
    back = load(tmp_path / f"o{suffix}")
    assert back.image.shape == image.shape and back.bit_depth == 8
    assert (back.image - image).abs().mean() < 0.01


def test_write_clamps_out_of_range_and_rejects_nan(tmp_path: Path) -> None:
    image = smooth(4, 4) * 3 - 1
    write(tmp_path / "c.png", image)
    np.testing.assert_allclose(hwc(load(tmp_path / "c.png").image), hwc(image.clamp(0, 1)), atol=0.5 / 255 + 1e-6)
    image[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        write(tmp_path / "n.png", image)
    assert not (tmp_path / "n.png").exists()


# ----------------------------------------------------------------------------------------------- 16-bit


def test_16bit_png_and_tiff_round_trip_exactly(tmp_path: Path) -> None:
    pixels = rgb16(9, 13)
    write_png16(tmp_path / "a.png", pixels)
    tifffile.imwrite(tmp_path / "a.tif", pixels, photometric="rgb")
    cv2 = cv2_module()
    for src, out in [("a.png", "b.png"), ("a.tif", "b.tif"), ("a.png", "c.tif"), ("a.tif", "c.png")]:
        photo = load(tmp_path / src)
        assert photo.bit_depth == 16 and photo.alpha is None
        write(tmp_path / out, photo.image, like=photo)
        if out.endswith(".png"):
            written = cv2.imread(str(tmp_path / out), cv2.IMREAD_UNCHANGED)[..., ::-1]
        else:
            written = tifffile.imread(tmp_path / out)
        assert written.dtype == np.uint16
        np.testing.assert_array_equal(written, pixels, err_msg=f"{src} -> {out}")


def test_16bit_png_rgba_keeps_alpha_exactly(tmp_path: Path) -> None:
    pixels = rgb16(5, 6, 4)
    write_png16(tmp_path / "a.png", pixels)
    photo = load(tmp_path / "a.png")
    assert photo.alpha is not None
    np.testing.assert_array_equal(np.round(hwc(photo.alpha)[..., 0] * 65535), pixels[..., 3])
    write(tmp_path / "b.png", photo.image, like=photo)
    cv2 = cv2_module()
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]], pixels)


def test_16bit_greyscale_png_and_tiff(tmp_path: Path) -> None:
    grey = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")  # Pillow mode I;16
    tifffile.imwrite(tmp_path / "g.tif", grey, photometric="minisblack")
    for name in ("g.png", "g.tif"):
        photo = load(tmp_path / name)
        assert photo.bit_depth == 16
        for c in range(3):
            np.testing.assert_array_equal(np.round(photo.image[0, c].numpy() * 65535), grey, err_msg=name)


def test_explicit_bit_depth(tmp_path: Path) -> None:
    write(tmp_path / "a.png", smooth(4, 4), bit_depth=16)
    assert load(tmp_path / "a.png").bit_depth == 16
    with pytest.raises(ImageError, match="JPEG cannot hold 16-bit"):
        write(tmp_path / "a.jpg", smooth(4, 4), bit_depth=16)


# ----------------------------------------------------------------------------------------- modes and alpha


def test_alpha_carried_through_png_and_webp_dropped_for_jpeg(tmp_path: Path) -> None:
    pixels = rgb8(8, 8, 4)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    photo = load(tmp_path / "a.png")
    assert photo.alpha is not None
    np.testing.assert_array_equal(hwc(photo.alpha)[..., 0], pixels[..., 3] / np.float32(255))
    write(tmp_path / "b.png", photo.image, like=photo)
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), pixels)
    write(tmp_path / "b.tif", photo.image, like=photo)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), pixels)
    write(tmp_path / "b.webp", photo.image, like=photo)
    assert load(tmp_path / "b.webp").alpha is not None
    write(tmp_path / "b.jpg", photo.image, like=photo)
    with Image.open(tmp_path / "b.jpg") as im:
        assert im.mode == "RGB"


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cmyk = np.zeros((8, 16, 4), np.uint8)
    cmyk[:, :8, 0] = 255  # cyan on the left, white on the right
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=100)
    photo = load(tmp_path / "c.jpg")
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK"
        expected = np.asarray(im.convert("RGB")) / np.float32(255)
    np.testing.assert_array_equal(hwc(photo.image), expected)
    left, right = photo.image[0, :, :, :4].mean((1, 2)), photo.image[0, :, :, 12:].mean((1, 2))
    assert left[0] < 0.1 and left[1] > 0.9 and left[2] > 0.9  # cyan
    assert right.min() > 0.9  # white


def test_palette_with_transparency_gives_alpha(tmp_path: Path) -> None:
    index = RNG.integers(0, 4, (6, 6), dtype=np.uint8)
    im = Image.fromarray(index, "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    im.save(tmp_path / "p.png", transparency=3)
    photo = load(tmp_path / "p.png")
    assert photo.alpha is not None and photo.bit_depth == 8
    np.testing.assert_array_equal(photo.alpha[0, 0].numpy(), (index != 3).astype(np.float32))
    palette = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    opaque = index != 3
    np.testing.assert_array_equal(hwc(photo.image)[opaque], palette[index[opaque]])


def test_palette_without_transparency_has_no_alpha(tmp_path: Path) -> None:
    Image.fromarray(rgb8(6, 6)).convert("P").save(tmp_path / "p.png")
    assert load(tmp_path / "p.png").alpha is None


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_one_bit(tmp_path: Path, suffix: str) -> None:
    bits = RNG.integers(0, 2, (5, 9)).astype(bool)
    Image.fromarray(bits).save(tmp_path / f"b{suffix}")
    photo = load(tmp_path / f"b{suffix}")
    for c in range(3):
        np.testing.assert_array_equal(photo.image[0, c].numpy(), bits.astype(np.float32))


def test_greyscale_and_grey_alpha_8bit(tmp_path: Path) -> None:
    la = rgb8(4, 5, 2)
    Image.fromarray(la[..., 0], "L").save(tmp_path / "l.png")
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    grey = load(tmp_path / "l.png")
    assert grey.alpha is None
    np.testing.assert_array_equal(grey.image[0, 1].numpy(), la[..., 0] / np.float32(255))
    with_alpha = load(tmp_path / "la.png")
    assert with_alpha.alpha is not None
    np.testing.assert_array_equal(with_alpha.alpha[0, 0].numpy(), la[..., 1] / np.float32(255))


# ------------------------------------------------------------------------------------ orientation and metadata


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_reset(tmp_path: Path, orientation: int) -> None:
    pixels = rgb8(3, 5)  # asymmetric: every transpose gives a different array
    path = tmp_path / "o.png"
    Image.fromarray(pixels).save(path, exif=camera_exif(orientation))
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im)) / np.float32(255)
    photo = load(path)
    np.testing.assert_array_equal(hwc(photo.image), expected)
    assert photo.exif is not None
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "TestCam"


def test_orientation_six_rotates_clockwise_in_every_decoder(tmp_path: Path) -> None:
    pixels8, pixels16 = rgb8(3, 5), rgb16(3, 5)
    Image.fromarray(pixels8).save(tmp_path / "o.jpg", exif=camera_exif(6), quality=100)
    with Image.open(tmp_path / "o.jpg") as im:
        expected = np.rot90(np.asarray(im), k=-1) / np.float32(255)
    np.testing.assert_array_equal(hwc(load(tmp_path / "o.jpg").image), expected)
    upright = torch.from_numpy(pixels16.transpose(2, 0, 1) / np.float32(65535))[None]
    like = Photo(upright, None, 16, "PNG", None, camera_exif(6).tobytes(), False, str(tmp_path / "none.png"))
    write(tmp_path / "o16.png", upright, like=like)  # 16-bit PNG with an eXIf chunk
    tifffile.imwrite(tmp_path / "o16.tif", pixels16, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    for name in ("o16.png", "o16.tif"):
        photo = load(tmp_path / name)
        assert photo.bit_depth == 16
        np.testing.assert_array_equal(np.round(hwc(photo.image) * 65535), np.rot90(pixels16, k=-1), err_msg=name)


def test_icc_and_exif_carried_to_jpeg_webp_png16_and_tiff(tmp_path: Path) -> None:
    icc = srgb_icc()
    Image.fromarray(rgb8(4, 6)).save(tmp_path / "in.jpg", icc_profile=icc, exif=camera_exif(3))
    photo = load(tmp_path / "in.jpg")
    assert photo.icc == icc
    for name in ("out.jpg", "out.webp", "out.png"):
        write(tmp_path / name, photo.image, like=photo)
        with Image.open(tmp_path / name) as im:
            assert im.info.get("icc_profile") == icc, name
            exif = im.getexif()
            assert exif[0x010F] == "TestCam" and exif[0x0112] == 1, name
            assert exif.get_ifd(0x8769)[0x9003] == "2021:02:03 04:05:06", name
    write(tmp_path / "out16.png", photo.image, like=photo, bit_depth=16)
    out16 = load(tmp_path / "out16.png")
    assert out16.bit_depth == 16 and out16.icc == icc
    assert out16.exif is not None and b"TestCam" in out16.exif
    write(tmp_path / "out.tif", photo.image, like=photo)
    assert load(tmp_path / "out.tif").icc == icc


def test_tiff_exif_keeps_description_not_layout(tmp_path: Path) -> None:
    Image.fromarray(rgb8(4, 6)).save(tmp_path / "a.tif", exif=camera_exif(1).tobytes())
    photo = load(tmp_path / "a.tif")
    assert photo.exif is not None
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[0x010F] == "TestCam" and 0x0111 not in exif  # StripOffsets stay with the TIFF


def test_grey_icc_profile_is_not_carried_to_rgb(tmp_path: Path) -> None:
    grey_icc = bytearray(srgb_icc())
    grey_icc[16:20] = b"GRAY"
    Image.fromarray(rgb8(4, 4)[..., 0], "L").save(tmp_path / "g.png", icc_profile=bytes(grey_icc))
    assert load(tmp_path / "g.png").icc is None


# ------------------------------------------------------------------------------------------- HDR and EXR


def radiance(h: int = 6, w: int = 8) -> np.ndarray:
    return (RNG.random((h, w, 3)) * 6).astype(np.float32)


def test_radiance_hdr_is_linear(tmp_path: Path) -> None:
    cv2 = cv2_module()
    values = radiance()
    assert cv2.imwrite(str(tmp_path / "a.hdr"), values[..., ::-1])
    photo = load(tmp_path / "a.hdr")
    assert (photo.linear, photo.bit_depth, photo.format, photo.alpha) == (True, 32, "HDR", None)
    assert photo.image.max() > 1
    np.testing.assert_allclose(hwc(photo.image), values, rtol=0.02, atol=0.02)


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    openexr = pytest.importorskip("OpenEXR")
    header = {"compression": openexr.ZIP_COMPRESSION, "type": openexr.scanlineimage}
    contiguous = {name: np.ascontiguousarray(c) for name, c in channels.items()}  # OpenEXR ignores strides
    openexr.File(header, contiguous).write(str(path))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_exr_half_and_float(tmp_path: Path, dtype: type) -> None:
    values = (radiance() - 0.5).astype(dtype)  # some negatives, some above 1
    alpha = RNG.random(values.shape[:2]).astype(dtype)
    write_exr(tmp_path / "a.exr", {"R": values[..., 0], "G": values[..., 1], "B": values[..., 2], "A": alpha})
    photo = load(tmp_path / "a.exr")
    assert (photo.linear, photo.bit_depth, photo.format) == (True, 32, "EXR")
    np.testing.assert_array_equal(hwc(photo.image), np.maximum(values.astype(np.float32), 0))
    assert photo.alpha is not None
    np.testing.assert_array_equal(photo.alpha[0, 0].numpy(), alpha.astype(np.float32))


def test_exr_with_nan_is_refused(tmp_path: Path) -> None:
    values = radiance()
    values[2, 3, 1] = np.nan
    write_exr(tmp_path / "nan.exr", {"RGB": values})
    with pytest.raises(ImageError, match=r"nan\.exr: contains NaN/Inf values"):
        read(tmp_path / "nan.exr")


def test_exr_without_rgb_channels_is_refused(tmp_path: Path) -> None:
    write_exr(tmp_path / "z.exr", {"Z": radiance()[..., 0]})
    with pytest.raises(ImageError, match=r"z\.exr: EXR has no R, G, B channels \(has Z\)"):
        read(tmp_path / "z.exr")


def test_float_tiff_is_linear_and_inf_is_refused(tmp_path: Path) -> None:
    values = radiance() - 0.5
    tifffile.imwrite(tmp_path / "f.tif", values, photometric="rgb")
    photo = load(tmp_path / "f.tif")
    assert (photo.linear, photo.bit_depth, photo.format) == (True, 32, "TIFF")
    np.testing.assert_array_equal(hwc(photo.image), np.maximum(values, 0))
    values[0, 0, 0] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", values, photometric="rgb")
    with pytest.raises(ImageError, match="contains NaN/Inf"):
        read(tmp_path / "inf.tif")


def test_linear_input_output_depths_and_no_icc(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tif", radiance(), photometric="rgb", iccprofile=srgb_icc())
    photo = load(tmp_path / "f.tif")
    display = photo.image.clamp(0, 1)
    write(tmp_path / "o.tif", display, like=photo)
    write(tmp_path / "o.png", display, like=photo)
    write(tmp_path / "o.jpg", display, like=photo)
    assert [load(tmp_path / n).bit_depth for n in ("o.tif", "o.png", "o.jpg")] == [16, 16, 8]
    assert load(tmp_path / "o.tif").icc is None  # the input's profile described linear data


# ------------------------------------------------------------------------------------------------ errors


def test_error_messages_are_one_line_with_path(tmp_path: Path) -> None:
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello\nworld\n")
    Image.fromarray(rgb8(4, 4)).save(tmp_path / "anim.gif")
    Image.fromarray(rgb8(64, 64)).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:-200])
    cases = {
        "zero.png": "zero-byte file",
        "text.jpg": "not an image (cannot identify format)",
        "anim.gif": "unsupported format 'GIF'",
        "missing.png": "no such file",
        "cut.png": "truncated file",
    }
    for name, problem in cases.items():
        with pytest.raises(ImageError) as info:
            read(tmp_path / name)
        assert str(info.value) == f"{tmp_path / name}: {problem}"
        assert "\n" not in str(info.value)


def test_max_pixels_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(rgb8(20, 30)).save(tmp_path / "a.png")
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded a refused image"))
    with pytest.raises(ImageError, match=r"a\.png: image too large \(600 pixels > limit 599\)"):
        read(tmp_path / "a.png", max_pixels=599)


def test_max_pixels_for_tiff_hdr_and_exr(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "a.tif", rgb16(10, 10), photometric="rgb")
    cv2_module().imwrite(str(tmp_path / "a.hdr"), radiance(10, 10))
    write_exr(tmp_path / "a.exr", {"RGB": radiance(10, 10)})
    for name in ("a.tif", "a.hdr", "a.exr"):
        with pytest.raises(ImageError, match="image too large"):
            read(tmp_path / name, max_pixels=99)
        assert load(tmp_path / name, max_pixels=100).image.shape == (1, 3, 10, 10)


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"cannot write '\.bmp' files"):
        write(tmp_path / "a.bmp", smooth(4, 4))
    with pytest.raises(ImageError, match="cannot write"):
        write(tmp_path / "no" / "such" / "dir.png", smooth(4, 4))
    with pytest.raises(ValueError, match=r"\(1,3,H,W\)"):
        write(tmp_path / "a.png", torch.zeros(3, 4, 4))


# ------------------------------------------------------------------------------------------- atomic writes


def test_refuses_to_overwrite_the_input(tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    Image.fromarray(rgb8()).save(path)
    photo = load(path)
    before = digest(path)
    (tmp_path / "link.png").symlink_to(path)
    for target in (path, tmp_path / "." / "in.png", tmp_path / "link.png"):
        with pytest.raises(ImageError, match="refusing to overwrite the input"):
            write(target, photo.image, like=photo)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "link.png"]


def test_failed_write_leaves_no_temp_and_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous")

    def broken(f, *args):  # writes half a file, then fails
        f.write(b"\x89PNG partial")
        raise RuntimeError("encoder exploded")

    monkeypatch.setitem(eio._ENCODERS, "PNG", broken)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        write(target, smooth(4, 4))
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_path_replaces_on_success_only(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target and not is_image_path(tmp)
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    with pytest.raises(KeyError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyError
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]
    assert (target.stat().st_mode & 0o777) == (0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_json(tmp_path: Path) -> None:
    obj = {"b": [1, 2.5], "a": {"é": None}}
    write_json(tmp_path / "s.json", obj)
    text = (tmp_path / "s.json").read_text()
    assert text.endswith("}\n") and text == json.dumps(obj, indent=2) + "\n"
    assert json.loads(text) == obj
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_is_image_path() -> None:
    assert all(is_image_path(f"a{e}") for e in (".jpg", ".JPEG", ".png", ".webp", ".tif", ".TIFF", ".hdr", ".exr"))
    assert not any(is_image_path(p) for p in ("a.txt", "a.json", "png", ".a.png.1234.tmp", "a.gif"))
    assert eio.IMAGE_EXTENSIONS >= {".jpg", ".png", ".tif", ".exr"}


def test_image_error_is_one_line() -> None:
    assert str(ImageError("a.png", "cannot decode (x\n  y)")) == "a.png: cannot decode (x y)"


def test_an_8bit_rgb_photo_keeps_its_codes_and_makes_its_image_from_them(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "rgba.png")
    photo = read(tmp_path / "rgb.png")
    assert photo.codes is not None and np.array_equal(photo.codes, rgb)
    assert torch.equal(photo.image, torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None])
    assert read(tmp_path / "rgba.png").codes is None  # alpha: float image only


def test_write_pixels_writes_what_write_writes(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    photo = read(tmp_path / "in.png")
    for name in ("a.png", "a.jpg"):
        write_pixels(tmp_path / f"codes-{name}", rgb, like=photo)
        write(tmp_path / f"float-{name}", photo.image, like=photo)
        assert (tmp_path / f"codes-{name}").read_bytes() == (tmp_path / f"float-{name}").read_bytes()
    with pytest.raises(ImageError, match="overwrite the input"):
        write_pixels(tmp_path / "in.png", rgb, like=photo)
    with pytest.raises(ValueError, match="uint8"):
        write_pixels(tmp_path / "b.png", rgb.astype(np.uint16))
