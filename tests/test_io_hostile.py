"""enhance.io.read on hostile files: anything but ImageError or a well-formed Photo is a bug."""

from __future__ import annotations

import io
import struct
import time
import zlib
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from enhance.io import ImageError, Photo, read

try:
    import OpenEXR
except ImportError:  # the optional extra 'hdr' (in the test extra): only the .exr cases are left out
    OpenEXR = None
needs_openexr = pytest.mark.skipif(OpenEXR is None, reason="OpenEXR not installed (the optional extra 'hdr')")

HOSTILE = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def encode_pil(fmt: str, mode: str = "RGB", **options: object) -> bytes:
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def encode_cv2(suffix: str, pixels: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(suffix, pixels)
    assert ok
    return buf.tobytes()


def encode_tiff(pixels: np.ndarray, **options: object) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, pixels, photometric="rgb", **options)
    return buf.getvalue()


def encode_exr(pixels: np.ndarray) -> bytes:
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    buf = io.BytesIO()
    OpenEXR.File(header, {"RGBA": pixels}).write(buf)
    return buf.getvalue()


def rotated_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


@cache
def valid_files() -> dict[str, bytes]:
    """One small valid file per decoder path, keyed by a name with the right extension."""
    rng = np.random.default_rng(2)
    files = {
        "rgb.png": encode_pil("PNG"),
        "palette.png": encode_pil("PNG", "P", transparency=0),
        "rgba.png": encode_pil("PNG", "RGBA"),
        "rgb16.png": encode_cv2(".png", rng.integers(0, 65536, (16, 12, 3), dtype=np.uint16)),
        "rotated.jpg": encode_pil("JPEG", exif=rotated_exif()),
        "progressive.jpg": encode_pil("JPEG", progressive=True),
        "cmyk.jpg": encode_pil("JPEG", "CMYK"),
        "rgb.webp": encode_pil("WEBP"),
        "lossless.webp": encode_pil("WEBP", "RGBA", lossless=True),
        "rgb.tif": encode_pil("TIFF", compression="tiff_lzw"),
        "rgb16.tif": encode_tiff(rng.integers(0, 65536, (16, 12, 3), dtype=np.uint16), compression="zlib"),
        "float.tif": encode_tiff(rng.random((16, 12, 3), dtype=np.float32)),
        "rgb.hdr": encode_cv2(".hdr", (rng.random((16, 12, 3)) * 4).astype(np.float32)),
    }
    if OpenEXR is not None:
        files["rgba.exr"] = encode_exr(rng.random((16, 12, 4)).astype(np.float16))
    return files


def check(path: Path, data: bytes) -> Photo | None:
    """Write ``data`` to ``path`` and read it: a valid Photo, or an ImageError naming the file."""
    path.write_bytes(data)
    try:
        photo = read(path)
    except ImageError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e)
        return None
    h, w = photo.image.shape[-2:]
    assert photo.image.shape == (1, 3, h, w) and h > 0 and w > 0
    assert photo.image.dtype == torch.float32 and photo.image.is_contiguous()
    assert torch.isfinite(photo.image).all() and photo.image.min() >= 0
    if photo.alpha is not None:
        assert photo.alpha.shape == (1, 1, h, w) and torch.isfinite(photo.alpha).all()
    assert photo.bit_depth in (8, 16, 32)
    return photo


def test_the_valid_files_are_valid(tmp_path: Path) -> None:
    for name, data in valid_files().items():
        assert check(tmp_path / name, data) is not None, name


MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"II*\x00", b"MM\x00*",
          b"#?RADIANCE\n", b"\x76\x2f\x31\x01"]


@HOSTILE
@given(magic=st.sampled_from(MAGICS), tail=st.binary(max_size=600))
def test_arbitrary_bytes(tmp_path: Path, magic: bytes, tail: bytes) -> None:
    check(tmp_path / "x.png", magic + tail)


@pytest.mark.parametrize("name", sorted(valid_files()))
def test_truncation_at_many_offsets(tmp_path: Path, name: str) -> None:
    data = valid_files()[name]
    for end in sorted({*range(0, min(len(data), 64)), *range(64, len(data), max(1, len(data) // 40))}):
        check(tmp_path / name, data[:end])


@HOSTILE
@given(name=st.sampled_from(sorted(valid_files())), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4))
def test_truncated_or_corrupted_valid_files(tmp_path: Path, name: str, cut: float, flips: list[tuple[float, int]]) -> None:
    data = bytearray(valid_files()[name])
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    check(tmp_path / name, bytes(data[: max(1, int(cut * len(data)))]))


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def jpeg_with_size(width: int, height: int) -> bytes:
    data = bytearray(encode_pil("JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def tiff_with_size(width: int, height: int) -> bytes:
    data = bytearray(encode_tiff(np.zeros((4, 4, 3), np.uint16)))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tags = tif.pages.first.tags
        offsets = {code: tags[code].valueoffset for code in (256, 257)}
        kinds = {code: tags[code].dtype for code in (256, 257)}
    for code, value in ((256, width), (257, height)):
        fmt = "<H" if kinds[code] == 3 else "<I"
        data[offsets[code] : offsets[code] + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(data)


def exr_with_size(width: int, height: int) -> bytes:
    data = bytearray(valid_files()["rgba.exr"])
    at = data.index(b"dataWindow\x00box2i\x00") + len(b"dataWindow\x00box2i\x00") + 4
    data[at : at + 16] = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    return bytes(data)


def hdr_with_size(width: int, height: int) -> bytes:
    return f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode() + b"\x02\x02\x00\x10" * 8


HUGE = [("png", png_header), ("jpg", jpeg_with_size), ("tif", tiff_with_size),
        pytest.param("exr", exr_with_size, marks=needs_openexr), ("hdr", hdr_with_size)]


@pytest.mark.parametrize(("suffix", "make"), HUGE)
def test_huge_declared_size_is_refused_quickly(tmp_path: Path, suffix: str, make) -> None:
    width, height = (60000, 60000) if suffix == "jpg" else (100000, 100000)
    path = tmp_path / f"huge.{suffix}"
    path.write_bytes(make(width, height))
    start = time.perf_counter()
    with pytest.raises(ImageError, match="image too large"):
        read(path)
    assert time.perf_counter() - start < 1.0


def test_just_over_the_limit_names_both_numbers(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_header(20001, 10000))
    with pytest.raises(ImageError, match=r"image too large \(200010000 pixels > limit 200000000\)"):
        read(path, max_pixels=200_000_000)


@pytest.mark.parametrize(("suffix", "make"), [("png", png_header), ("tif", tiff_with_size), ("hdr", hdr_with_size)])
def test_zero_size_is_refused(tmp_path: Path, suffix: str, make) -> None:
    path = tmp_path / f"empty.{suffix}"
    path.write_bytes(make(0, 5))
    with pytest.raises(ImageError):
        read(path)
