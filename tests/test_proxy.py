"""The proxy decoded from a JPEG's DCT coefficients (enhance.proxy) against the full decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from enhance.io import ImageError, read
from enhance.proxy import draft_size, read_proxy
from enhance.render import resize_long

# Tolerance (8-bit levels) between the draft proxy and the resized full decode. The draft is at
# least twice the proxy, so the antialiased resize does most of the shrinking; what is left of the
# decoder's block averaging shows at hard edges (measured: mean <= 0.6, 99th percentile <= 4.1 on
# scikit-image's photos enlarged 4x, at 200 to 512 px; a Kodak photo enlarged to 12 MP: 0.1 and 0.7).
MEAN_LEVELS, P99_LEVELS = 1.0, 5.0


def photo(name: str) -> np.ndarray:
    """(H,W,3) uint8: a photo that ships with scikit-image, enlarged 4x (a camera-sized file)."""
    data = pytest.importorskip("skimage.data")
    pixels = getattr(data, name)()
    h, w = pixels.shape[:2]
    return np.asarray(Image.fromarray(pixels).resize((4 * w, 4 * h), Image.Resampling.BICUBIC))


def structured(h: int, w: int) -> np.ndarray:
    """(h,w,3) uint8 smooth colour fields, for the cases where the content does not matter."""
    x = F.interpolate(torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0)), size=(h, w),
                      mode="bicubic", align_corners=False)[0]
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_jpeg(path: Path, pixels: np.ndarray, orientation: int = 1) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())
    return path


def levels_apart(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = (a - b).abs().flatten() * 255
    return float(d.mean()), float(d.quantile(0.99))


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
@pytest.mark.parametrize("long_side", [200, 512])
def test_draft_proxy_matches_resized_full_decode(tmp_path: Path, name: str, long_side: int) -> None:
    path = save_jpeg(tmp_path / "photo.jpg", photo(name))
    with Image.open(path) as im:
        size = im.size
        im.draft("RGB", draft_size(*size, long_side))
        assert max(im.size) < max(size)  # the decoder really scaled
    proxy = read_proxy(path, long_side)
    full = resize_long(read(path).image, long_side)
    assert proxy.shape == full.shape and max(proxy.shape[-2:]) == long_side
    mean, p99 = levels_apart(proxy, full)
    assert mean <= MEAN_LEVELS and p99 <= P99_LEVELS


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "turned.jpg", photo("chelsea"), orientation=6)  # 1804 x 1200, turned
    proxy = read_proxy(path, 300)
    full = resize_long(read(path).image, 300)
    assert proxy.shape == full.shape == (1, 3, 300, 200)
    mean, p99 = levels_apart(proxy, full)
    assert mean <= MEAN_LEVELS and p99 <= P99_LEVELS


def test_other_formats_and_small_photos_take_the_full_decode(tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    Image.fromarray(structured(h=300, w=400)).save(png)
    assert torch.equal(read_proxy(png, 128), resize_long(read(png).image, 128))
    small = save_jpeg(tmp_path / "small.jpg", structured(h=120, w=160))
    assert torch.equal(read_proxy(small, 512), read(small).image)  # never enlarged


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    with pytest.raises(ImageError, match="broken.jpg"):
        read_proxy(bad, 256)
    with pytest.raises(ImageError, match="too large"):
        read_proxy(save_jpeg(tmp_path / "big.jpg", structured(h=300, w=400)), 256, max_pixels=1000)
    with pytest.raises(ImageError, match="no such file"):
        read_proxy(tmp_path / "missing.jpg", 256)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Image.open would block on a FIFO until something writes to it: io.read's refusal instead."""
    import os

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        read_proxy(fifo, 512)
