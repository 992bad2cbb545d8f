"""The tuning proxy straight from a JPEG's DCT coefficients, without decoding the full image.

A JPEG decoder can scale by 1/2, 1/4 or 1/8 while it decodes (Pillow's ``Image.draft``): it then
skips most of the work of a full decode. `read_proxy` asks for the smallest such scale that still
covers the proxy, applies the EXIF orientation as ``enhance.io.read`` does, and resizes the rest of
the way the tuner does (`enhance.render.resize_long`). Other files, and JPEGs a draft cannot scale
(CMYK), are decoded in full by ``enhance.io.read`` and resized.
"""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from enhance.io import MAX_BYTES, ImageError, read
from enhance.render import resize_long


DRAFT_MARGIN = 2  # the draft is at least this many times the proxy


def draft_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The size to ask ``Image.draft`` for: twice the proxy (long side ``2 * long_side``), so that
    the tuner's antialiased resize, not the decoder's block averaging, does most of the shrinking."""
    scale = min(DRAFT_MARGIN * long_side / max(width, height), 1.0)
    return max(math.ceil(width * scale), 1), max(math.ceil(height * scale), 1)


def proxy_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) of the proxy of a ``height`` x ``width`` photo, rounded as `enhance.render.resize_long` rounds."""
    scale = min(long_side / max(height, width), 1.0)
    return max(round(height * scale), 1), max(round(width * scale), 1)


def read_proxy(path: str | os.PathLike[str], long_side: int, *, max_pixels: int = 200_000_000) -> torch.Tensor:
    """(1,3,h,w) sRGB float32 in [0,1], the shape ``resize_long(read(path).image, long_side)`` has:
    the photo at ``path`` as the tuner's proxy, EXIF orientation applied. Raises ``ImageError``
    naming the file for anything ``enhance.io.read`` would refuse (``max_pixels`` as there); other
    formats than JPEG are read in full."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
        readable = stat.S_ISREG(info.st_mode) and info.st_size <= MAX_BYTES
    except OSError:
        readable = False
    if not readable:  # a FIFO would block Image.open: io.read refuses it (and the rest) in one line
        return resize_long(read(name, max_pixels=max_pixels).image, long_side)
    try:
        with Image.open(name) as im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L"):
                raise _NotDraftable
            width, height = im.size
            if width * height > max_pixels:
                raise ImageError(name, f"image too large ({width * height} pixels > limit {max_pixels})")
            im.draft("RGB", draft_size(width, height, long_side))
            drafted = im.size
            upright = _upright(im)
            pixels = np.asarray(upright.convert("RGB"))
    except (_NotDraftable, OSError, ValueError, Image.DecompressionBombError):
        return resize_long(read(name, max_pixels=max_pixels).image, long_side)  # io.read names any problem
    if upright.size != drafted:  # orientations 5 to 8 swap the axes
        width, height = height, width
    image = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float()[None] / 255
    size = proxy_shape(height, width, long_side)
    if image.shape[-2:] == size:
        return image
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)


class _NotDraftable(Exception):
    """A file a JPEG draft cannot decode: it goes through ``enhance.io.read``."""


def _upright(im: Image.Image) -> Image.Image:
    """``im`` turned by its EXIF orientation, as ``enhance.io.read`` does; a malformed EXIF means none."""
    try:
        return ImageOps.exif_transpose(im) or im
    except Exception:  # a malformed EXIF never stops the pixels from being read (as in io.read)
        return im
