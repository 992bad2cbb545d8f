"""Read photos into float tensors and write them back, keeping what a photographer would miss.

``read`` returns a :class:`Photo`: the pixels as a (1,3,H,W) float32 tensor (sRGB-encoded in [0,1], or
linear radiance >= 0 for HDR, EXR and float TIFF), the alpha plane, bit depth, ICC profile and EXIF.
EXIF orientation is applied on read. ``write`` encodes by extension, carries the metadata of ``like`` and
replaces the target atomically. Every failure to read is an :class:`ImageError` with a one-line message.

Decoders: Pillow for 8-bit JPEG, PNG, WebP and TIFF; OpenCV for 16-bit PNG (Pillow truncates 16-bit RGB to
8 bits) and Radiance .hdr; tifffile for 16-bit and float TIFF; the ``OpenEXR`` package for .exr (optional
extra ``hdr``).
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import stat
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import tifffile
import torch
from PIL import Image, ImageCms

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".hdr", ".pic", ".exr"}
)
_WRITE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
WRITE_EXTENSIONS: frozenset[str] = frozenset(_WRITE_FORMATS)
_ORIENTATION = 0x0112
MAX_PIXELS = 200_000_000  # default limit of read(): a 16-bit RGB image this size takes 1.2 GB as uint16
MAX_BYTES = 2**31  # default limit of read() on the file's size (2 GiB)
# IFD0 tags of a TIFF that describe the photo (not the pixel layout), kept as its EXIF.
_TIFF_EXIF_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825)


class ImageError(Exception):
    """A file that cannot be read or written; ``str(e)`` is one line: ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


class Photo:
    """A decoded photo.

    ``image`` is (1,3,H,W) float32: sRGB-encoded in [0,1], or linear radiance >= 0 (may exceed 1) when
    ``linear``. ``alpha`` is (1,1,H,W) float32 in [0,1] or None. ``bit_depth`` is 8, 16 or 32 (float).
    ``exif`` has its Orientation reset to 1, since the orientation is already applied to ``image``.
    ``codes``: an 8-bit RGB photo without alpha keeps its decoded samples, (H,W,3) uint8, and makes
    ``image`` from them when first asked for it, so that a command that renders the codes through
    tables (:func:`enhance.lut.render_8bit`) and writes them (:func:`write_pixels`) never makes
    the float copy; None for every other photo.
    """

    def __init__(self, image: torch.Tensor | None, alpha: torch.Tensor | None, bit_depth: int, format: str,
                 icc: bytes | None, exif: bytes | None, linear: bool, path: str, codes: np.ndarray | None = None) -> None:
        if image is None and codes is None:
            raise ValueError("a Photo needs its image or its 8-bit codes")
        self._image, self.codes = image, codes
        self.alpha, self.bit_depth, self.format = alpha, bit_depth, format
        self.icc, self.exif, self.linear, self.path = icc, exif, linear, path

    @property
    def image(self) -> torch.Tensor:
        if self._image is None:
            assert self.codes is not None
            h, w, _ = self.codes.shape
            image = torch.empty((1, 3, h, w))
            image[0].copy_(torch.from_numpy(self.codes).permute(2, 0, 1))  # one threaded pass: cast and transpose
            self._image = image.div_(255)
        return self._image


class _Bad(Exception):
    """A problem found while decoding; ``read`` adds the path."""


class _Decoded(NamedTuple):
    pixels: np.ndarray  # (H,W,C), C in 1..4 (grey, grey+alpha, RGB, RGBA); uint8, uint16 or float
    icc: bytes | None
    exif: bytes | None  # with Orientation reset to 1
    orientation: Any  # EXIF/TIFF orientation as stored; anything but 2..8 means none
    linear: bool = False


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` has an extension ``read`` understands (for folder walks)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# ---------------------------------------------------------------------------------------------- reading


def read(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES) -> Photo:
    """Decode ``path`` into a :class:`Photo`; refuse images above ``max_pixels`` (from the header,
    before decoding) and files above ``max_bytes``.

    Raises :class:`ImageError` for anything that is not a readable JPEG, PNG, WebP, TIFF, Radiance HDR or
    OpenEXR file: a folder, FIFO or device is refused before a byte is read, as is an image whose
    header promises more pixels than its data holds. The file is read once into memory and never
    modified. The C decoders' own messages (libpng, OpenCV, OpenEXR) are kept off stderr.
    """
    name = os.fspath(path)
    data = _read_regular(name, max_bytes)
    if not data:
        raise ImageError(name, "zero-byte file")
    fmt = _sniff(data)
    decode = {"TIFF": _decode_tiff, "HDR": _decode_hdr, "EXR": _decode_exr}.get(fmt or "", _decode_pil)
    try:
        return _photo(decode(data, fmt, max_pixels), fmt or "", name)
    except _Bad as e:
        raise ImageError(name, str(e)) from None
    except Exception as e:  # decoders of hostile bytes raise anything; the caller sees one error type
        raise ImageError(name, _describe(e)) from e


def _read_regular(name: str, max_bytes: int) -> bytes:
    """The bytes of ``name`` when it is a regular file of at most ``max_bytes``. Opened without
    blocking, so that a FIFO is refused instead of waiting for a writer."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ImageError(name, "no such file") from None
    except OSError as e:
        raise ImageError(name, f"cannot open ({e.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(name, f"not a regular file ({_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise ImageError(name, f"file too large ({info.st_size} bytes > limit {max_bytes})")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ImageError(name, f"cannot read ({e.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew since fstat
        raise ImageError(name, f"file too large (over the limit of {max_bytes} bytes)")
    return data


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a file"


@contextmanager
def quiet_decoders() -> Iterator[None]:
    """Keep what a decoder prints about a damaged file off the terminal for the block: libpng,
    OpenCV and OpenEXR write to file descriptors 1 and 2 (pointed at /dev/null meanwhile) and
    OpenEXR's Python binding to ``sys.stdout`` (whose writes from this thread are dropped
    meanwhile); ``read`` raises its one-line error instead. Nested and concurrent blocks share one
    redirection. Other threads' Python output is kept when ``sys.stdout`` and ``sys.stderr``
    write to duplicates of the descriptors, as the ``enhance`` command arranges (see
    ``cli.keep_python_output``)."""
    global _quiet_depth
    me = threading.get_ident()
    with _QUIET_LOCK:
        if _quiet_depth == 0:
            null = os.open(os.devnull, os.O_WRONLY)
            for fd in (1, 2):
                _saved_fds[fd] = os.dup(fd)
                os.dup2(null, fd)
            os.close(null)
            _saved_streams.update(stdout=sys.stdout, stderr=sys.stderr)
            sys.stdout, sys.stderr = _Muted(sys.stdout), _Muted(sys.stderr)  # type: ignore[assignment]
        _quiet_depth += 1
        _muted_threads[me] = _muted_threads.get(me, 0) + 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _muted_threads[me] -= 1
            if not _muted_threads[me]:
                del _muted_threads[me]
            _quiet_depth -= 1
            if _quiet_depth == 0:
                _flush_c_stdio()  # what C++ buffered in the block goes to /dev/null, not out later
                for fd, saved in _saved_fds.items():
                    os.dup2(saved, fd)
                    os.close(saved)
                _saved_fds.clear()
                for name, stream in _saved_streams.items():
                    if isinstance(getattr(sys, name), _Muted):  # unless someone replaced it meanwhile
                        setattr(sys, name, stream)
                _saved_streams.clear()


class _Muted:
    """Stands in for ``sys.stdout``/``sys.stderr`` during :func:`quiet_decoders`: drops what the
    decoding threads write, passes everything else on to the stream it wraps."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if threading.get_ident() in _muted_threads:
            return len(text)
        return int(self._stream.write(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _flush_c_stdio() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to flush (not POSIX)
        pass


_QUIET_LOCK = threading.Lock()
_quiet_depth = 0
_saved_fds: dict[int, int] = {}
_saved_streams: dict[str, Any] = {}
_muted_threads: dict[int, int] = {}  # thread id -> depth of its quiet blocks


def _sniff(data: bytes) -> str | None:
    """The format named by the file's magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data.startswith(b"#?"):
        return "HDR"
    if data.startswith(b"\x76\x2f\x31\x01"):
        return "EXR"
    return None


def _describe(e: Exception) -> str:
    """A one-line problem for an exception raised by a decoder."""
    if isinstance(e, MemoryError):
        return "not enough memory to decode"
    text = " ".join(str(e).split())[:200] or type(e).__name__
    if isinstance(e, EOFError) or "truncated" in text.lower():
        return "truncated file"
    return f"cannot decode ({text})"


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise _Bad(f"zero-size image ({width}x{height})")
    if width * height > max_pixels:
        raise _Bad(f"image too large ({width * height} pixels > limit {max_pixels})")


def _need(module: str, problem: str) -> ModuleType:
    """Import a decoder that may be missing, or fail with ``problem`` (which says what to install)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise _Bad(problem) from None


def _decode_pil(data: bytes, fmt: str | None, max_pixels: int) -> _Decoded:
    """JPEG, PNG, WebP (and 8-bit TIFF via ``_decode_tiff``) through Pillow; 16-bit PNG pixels via OpenCV."""
    if fmt is None:
        try:
            with Image.open(io.BytesIO(data)) as im:  # only to name what it is
                other = im.format
        except Exception:
            raise _Bad("not an image (cannot identify format)") from None
        raise _Bad(f"unsupported format '{other}'")
    if fmt == "WEBP" and len(data) < int.from_bytes(data[4:8], "little") + 8:  # RIFF size
        raise _Bad("truncated file")
    with _pil_open(data, fmt) as im:
        _check_size(*im.size, max_pixels)
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            raise _Bad(f"animated {fmt} ({frames} frames); only still images are supported")
        if fmt == "PNG":
            _check_png_data(data)
        if fmt == "PNG" and data[24] == 16:  # IHDR bit depth
            pixels = _decode_png16(data)
        else:
            im.load()
            pixels = _pil_pixels(im)
        icc = im.info.get("icc_profile") or None
        if fmt == "TIFF":
            orientation, exif = im.getexif().get(_ORIENTATION, 1), _tiff_exif(im)
        else:
            orientation, exif = _reset_orientation(im.info.get("exif"))
    return _Decoded(pixels, icc, exif, orientation)


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # IHDR colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _check_png_data(data: bytes) -> None:
    """Refuse a PNG whose image data inflates to fewer bytes than its header's size needs: Pillow
    would fill the missing rows with black. Inflates in 1 MB pieces, keeping none of them; a file
    whose compressed data could not hold the size even at zlib's best ratio (about 1032:1) is
    refused without inflating."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bits = depth * _PNG_CHANNELS.get(colour, 4)
    need = 0
    for x0, y0, dx, dy in _ADAM7 if interlace == 1 else ((0, 0, 1, 1),):
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            need += h * (1 + (w * bits + 7) // 8)  # each row: a filter byte and its samples
    parts, pos, ended = [], 8, False
    while pos + 8 <= len(data) and not ended:
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            parts.append(data[pos + 8 : pos + 8 + length])
        ended = kind == b"IEND" and pos + 12 <= len(data)
        pos += 12 + length
    stream = b"".join(parts)
    got = 0
    if len(stream) * 1032 >= need:
        inflate = zlib.decompressobj()
        while got < need:
            out = inflate.decompress(stream, 1 << 20)
            stream, got = inflate.unconsumed_tail, got + len(out)
            if not out:
                break
    if got < need and not ended:
        raise _Bad("truncated file")
    if got < need:
        raise _Bad(f"missing pixel data (the header says {width}x{height}, the data holds less)")


def _pil_open(data: bytes, fmt: str) -> Image.Image:
    """Open lazily with Pillow's plugin for ``fmt``, skipping ``Image.open``'s own size limit: max_pixels rules."""
    Image.init()
    return Image.OPEN[fmt][0](io.BytesIO(data), "")


def _pil_pixels(im: Image.Image) -> np.ndarray:
    """(H,W,3|4) uint8 from any 8-bit Pillow mode; CMYK through its ICC profile when it has one."""
    if im.mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im))
    if "transparency" in im.info or im.mode in ("LA", "La", "PA", "RGBa"):
        return np.asarray(im.convert("RGBA"))
    if im.mode in ("1", "L", "P", "YCbCr"):
        return np.asarray(im.convert("RGB"))
    if im.mode in ("RGB", "RGBA"):
        return np.asarray(im)
    raise _Bad(f"unsupported mode '{im.mode}'")


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc and icc[16:20] == b"CMYK":
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
            assert out is not None
            return out
        except ImageCms.PyCMSError:
            pass  # a broken profile: fall back to the naive conversion
    return im.convert("RGB")


def _decode_png16(data: bytes) -> np.ndarray:
    """(H,W,C) uint16 RGB(A) or grey(+alpha) from a 16-bit PNG; OpenCV decodes it exactly."""
    if data.rfind(b"IEND") < 0:
        raise _Bad("truncated file")
    cv2 = _need("cv2", "reading 16-bit PNG needs OpenCV: pip install opencv-python-headless")
    with quiet_decoders():
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise _Bad("truncated or corrupt PNG")
    if pixels.ndim == 3 and pixels.shape[2] >= 3:  # BGR(A) -> RGB(A)
        pixels = pixels[..., [2, 1, 0, 3][: pixels.shape[2]]]
    return pixels


def _decode_tiff(data: bytes, fmt: str | None, max_pixels: int) -> _Decoded:
    """8-bit TIFF through Pillow; 16-bit integer and float TIFF through tifffile (float is linear light)."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not len(tif.pages):
            raise _Bad("truncated or corrupt TIFF (no readable image)")
        page = tif.pages.first
        _check_size(page.imagewidth, page.imagelength, max_pixels)
        if page.bitspersample <= 8 and page.dtype is not None and page.dtype.kind in "ub":
            return _decode_pil(data, "TIFF", max_pixels)
        if page.dtype is None or page.dtype.kind not in "uf" or (page.dtype.kind == "u" and page.bitspersample != 16):
            raise _Bad(f"unsupported TIFF samples ({page.bitspersample}-bit {page.dtype})")
        if page.photometric not in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.MINISBLACK):
            raise _Bad(f"unsupported TIFF photometric '{tifffile.PHOTOMETRIC(page.photometric).name}'")
        if page.dataoffsets and max(o + n for o, n in zip(page.dataoffsets, page.databytecounts)) > len(data):
            raise _Bad("truncated file")
        pixels = page.asarray()
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and pixels.ndim == 3:
            pixels = np.moveaxis(pixels, 0, -1)
        icc_tag, orientation_tag = page.tags.get(34675), page.tags.get(274)
        icc = bytes(icc_tag.value) if icc_tag is not None else None
        orientation = orientation_tag.value if orientation_tag is not None else 1
    try:
        with _pil_open(data, "TIFF") as im:  # Pillow holds the EXIF of 16-bit TIFFs
            exif = _tiff_exif(im)
    except Exception:  # float RGB TIFF: Pillow cannot open it, and such files rarely carry EXIF
        exif = None
    return _Decoded(pixels, icc, exif, orientation, linear=pixels.dtype.kind == "f")


def _tiff_exif(im: Image.Image) -> bytes | None:
    """EXIF of a TIFF: its descriptive IFD0 tags and the Exif and GPS sub-IFDs (not the pixel layout tags)."""
    try:
        src, out = im.getexif(), Image.Exif()
        for tag in _TIFF_EXIF_TAGS:
            if tag in src:
                out[tag] = src.get_ifd(tag) if tag in (0x8769, 0x8825) else src[tag]
        return out.tobytes() if len(out) else None
    except Exception:  # a malformed EXIF never stops the pixels from being read
        return None


def _reset_orientation(raw: bytes | None) -> tuple[int, bytes | None]:
    """(orientation, EXIF with Orientation reset to 1) from raw EXIF; a malformed EXIF is dropped."""
    if not raw:
        return 1, None
    try:
        exif = Image.Exif()
        exif.load(raw)
        orientation = exif.get(_ORIENTATION, 1)
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        return orientation, exif.tobytes()
    except Exception:  # a malformed EXIF never stops the pixels from being read
        return 1, None


def _decode_hdr(data: bytes, fmt: str | None, max_pixels: int) -> _Decoded:
    """Radiance RGBE (.hdr/.pic) through OpenCV: linear float32 RGB."""
    end = data.find(b"\n\n", 0, 65536)
    match = re.match(rb"\s*[-+]([YX]) (\d+) [-+][YX] (\d+)", data[end + 2 : end + 64]) if end >= 0 else None
    if match is None:
        raise _Bad("not a Radiance HDR file (no resolution line)")
    first, second = int(match.group(2)), int(match.group(3))
    width, height = (second, first) if match.group(1) == b"Y" else (first, second)
    _check_size(width, height, max_pixels)
    cv2 = _need("cv2", "reading .hdr needs OpenCV: pip install opencv-python-headless")
    with quiet_decoders():
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise _Bad("truncated or corrupt Radiance HDR file")
    return _Decoded(pixels[..., ::-1], None, None, 1, linear=True)


def _decode_exr(data: bytes, fmt: str | None, max_pixels: int) -> _Decoded:
    """OpenEXR (half or float; channels R, G, B and optional A of the first part): linear float."""
    exr = _need("OpenEXR", "reading .exr needs the optional extra: pip install 'enhance[hdr]'")
    with quiet_decoders():
        header = exr.File(io.BytesIO(data), header_only=True).header()
    (x0, y0), (x1, y1) = header["dataWindow"]
    _check_size(int(x1) - int(x0) + 1, int(y1) - int(y0) + 1, max_pixels)
    names = [c.name for c in header["channels"]]
    if not {"R", "G", "B"} <= set(names):
        raise _Bad(f"EXR has no R, G, B channels (has {', '.join(names) or 'none'})")
    with quiet_decoders():
        channels = exr.File(io.BytesIO(data), separate_channels=True).channels()
    pixels = np.stack([channels[c].pixels for c in "RGBA" if c in channels], axis=-1)
    return _Decoded(pixels, None, None, 1, linear=True)


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1..8 to (H,W,C) pixels, as ``PIL.ImageOps.exif_transpose`` does."""
    return {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: a.transpose(1, 0, 2)[::-1],
    }.get(orientation, lambda a: a)(pixels)


def _photo(d: _Decoded, fmt: str, path: str) -> Photo:
    """Orient, split alpha, scale to float32 (an 8-bit RGB photo: keep its codes, see :class:`Photo`) and check the values."""
    pixels = d.pixels[..., None] if d.pixels.ndim == 2 else d.pixels
    pixels = _orient(pixels, d.orientation if isinstance(d.orientation, int) else 1)
    icc = d.icc if d.icc and d.icc[16:20] == b"RGB " else None  # a grey or CMYK profile no longer applies
    if not d.linear and pixels.dtype == np.uint8 and pixels.shape[2] == 3:
        codes = np.require(pixels, requirements=["C", "W"])  # writable: torch.from_numpy shares it
        return Photo(None, None, 8, fmt, icc, d.exif, False, path, codes=codes)
    if d.linear:
        values = pixels.astype(np.float32)
        if not np.isfinite(values).all():
            raise _Bad("contains NaN/Inf values")
        bit_depth = 32
    else:
        bit_depth = 16 if pixels.dtype == np.uint16 else 8
        values = pixels.astype(np.float32) / np.float32(2**bit_depth - 1)
    colour, alpha = (values[..., :3], values[..., 3:4]) if values.shape[2] >= 3 else (values[..., :1], values[..., 1:2])
    colour = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    if d.linear:
        colour, alpha = np.maximum(colour, 0), np.clip(alpha, 0, 1)
    return Photo(_tensor(colour), _tensor(alpha) if alpha.shape[2] else None, bit_depth, fmt, icc, d.exif, d.linear, path)


def _tensor(hwc: np.ndarray) -> torch.Tensor:
    """(H,W,C) float32 -> contiguous (1,C,H,W)."""
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1), dtype=np.float32))[None]


# ---------------------------------------------------------------------------------------------- writing


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and ``os.replace`` it onto ``path``.

    On any exception the temp file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666 & ~umask, like open()
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON with a final newline, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def write(
    path: str | os.PathLike[str],
    image: torch.Tensor,
    like: Photo | None = None,
    *,
    quality: int = 95,
    bit_depth: int | None = None,
) -> None:
    """Encode ``image`` (1,3,H,W) float, sRGB-encoded in [0,1] (clamped), to ``path`` atomically.

    The format comes from the extension (.jpg/.jpeg/.png/.webp/.tif/.tiff). From ``like``: bit depth
    (PNG and TIFF are 16-bit when the input had more than 8 bits, 16-bit or float HDR; 8-bit
    otherwise; ``bit_depth`` overrides it), ICC profile (dropped for linear input, whose profile
    described linear data), EXIF (JPEG, WebP, PNG, TIFF) and alpha (PNG, WebP,
    TIFF). ``quality`` is the JPEG/WebP quality. Never overwrites ``like.path``.
    """
    target, fmt = _target(path, like)
    depth = _output_depth(fmt, like, bit_depth)
    if depth is None:
        raise ImageError(target, f"{fmt} cannot hold {bit_depth}-bit samples")
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image must be (1,3,H,W), got {tuple(image.shape)}")
    planes = [image]
    if like is not None and like.alpha is not None and fmt != "JPEG":
        if like.alpha.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"alpha {tuple(like.alpha.shape)} does not match image {tuple(image.shape)}")
        planes.append(like.alpha)
    values = planes[0] if len(planes) == 1 else torch.cat(planes, dim=1)
    values = values.detach().to("cpu", torch.float32)[0]
    if not torch.isfinite(values).all():
        raise ValueError(f"{target}: image contains NaN/Inf values")
    # torch rather than numpy: threaded, one float copy of the image (the clamp), scaled and rounded in place
    codes = values.clamp(0, 1).mul_(2**depth - 1).round_().to(torch.int32 if depth == 16 else torch.uint8)
    pixels = codes.permute(1, 2, 0).contiguous().numpy().astype(np.uint16 if depth == 16 else np.uint8, copy=False)
    _save(target, fmt, pixels, like, quality)


def write_pixels(path: str | os.PathLike[str], pixels: np.ndarray, like: Photo | None = None, *, quality: int = 95) -> None:
    """Encode (H,W,3) uint8 sRGB ``pixels`` to ``path`` atomically, as :func:`write` encodes an 8-bit
    image (format from the extension, ICC profile and EXIF from ``like``; no alpha: ``like`` may
    have none). Never overwrites ``like.path``."""
    target, fmt = _target(path, like)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be (H,W,3) uint8, got {pixels.dtype} {pixels.shape}")
    if like is not None and like.alpha is not None:
        raise ValueError(f"{like.path} has an alpha plane: write it with write()")
    _save(target, fmt, pixels, like, quality)


def _target(path: str | os.PathLike[str], like: Photo | None) -> tuple[Path, str]:
    """``path`` and the format its extension names; ImageError for an unknown extension or the input itself."""
    target = Path(path)
    fmt = _WRITE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ImageError(target, f"cannot write '{target.suffix}' files (use .jpg, .png, .webp or .tif)")
    if like is not None and _same_file(target, like.path):
        raise ImageError(target, "refusing to overwrite the input")
    return target, fmt


def _save(target: Path, fmt: str, pixels: np.ndarray, like: Photo | None, quality: int) -> None:
    """Encode (H,W,C) samples with ``like``'s ICC profile (not for linear input) and EXIF, atomically."""
    icc = like.icc if like is not None and not like.linear else None
    exif = like.exif if like is not None else None
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            _ENCODERS[fmt](f, pixels, quality, icc, exif)
    except (OSError, ValueError) as e:
        raise ImageError(target, f"cannot write ({' '.join(str(e).split())})") from e


def _same_file(a: Path, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == Path(b).resolve()


def _output_depth(fmt: str, like: Photo | None, bit_depth: int | None) -> int | None:
    """Bits per sample to write, or None when ``fmt`` cannot hold the requested depth."""
    if bit_depth is None:
        source = like.bit_depth if like is not None else 8
        bit_depth = 16 if fmt in ("PNG", "TIFF") and source > 8 else 8
    holds = (8, 16) if fmt in ("PNG", "TIFF") else (8,)
    return bit_depth if bit_depth in holds else None


def _encode_pil(fmt: str) -> Any:
    def encode(f: BinaryIO, pixels: np.ndarray, quality: int, icc: bytes | None, exif: bytes | None) -> None:
        options: dict[str, Any] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
        if icc:
            options["icc_profile"] = icc
        if exif:
            options["exif"] = exif
        Image.fromarray(pixels).save(f, format=fmt, **options)

    return encode


def _encode_png(f: BinaryIO, pixels: np.ndarray, quality: int, icc: bytes | None, exif: bytes | None) -> None:
    """8-bit through Pillow; 16-bit through OpenCV, with iCCP and eXIf chunks added after IHDR."""
    if pixels.dtype == np.uint8:
        _encode_pil("PNG")(f, pixels, quality, icc, exif)
        return
    import cv2

    ok, buf = cv2.imencode(".png", pixels[..., [2, 1, 0, 3][: pixels.shape[2]]])
    if not ok:
        raise ValueError("OpenCV could not encode the PNG")
    png = buf.tobytes()
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00"))
    f.write(png[:33] + chunks + png[33:])  # signature (8) + IHDR chunk (25)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _encode_tiff(f: BinaryIO, pixels: np.ndarray, quality: int, icc: bytes | None, exif: bytes | None) -> None:
    """Deflate-compressed RGB(A) TIFF, 8 or 16 bits, with the ICC profile and the EXIF: its descriptive
    IFD0 tags as TIFF tags, its Exif and GPS sub-IFDs appended and pointed to from IFD0."""
    text, subs = _exif_parts(exif)
    buf = io.BytesIO()
    tifffile.imwrite(
        buf,
        pixels,
        photometric="rgb",
        extrasamples=("unassalpha",) if pixels.shape[2] == 4 else None,
        compression="zlib",
        compressionargs={"level": 1},  # 16-bit photo noise barely compresses: level 6 is twice as slow for ~0 gain
        predictor=True,
        iccprofile=icc,
        extratags=[(tag, "s", 0, value, True) for tag, value in text.items()]
        + [(tag - 1, "I", 1, 0, True) for tag in subs],  # placeholders, see _append_sub_ifds

    )
    f.write(_append_sub_ifds(buf.getvalue(), subs) if subs else buf.getvalue())


def _exif_parts(exif: bytes | None) -> tuple[dict[int, str], dict[int, dict[int, Any]]]:
    """The text tags of IFD0 and the Exif and GPS sub-IFDs of raw EXIF (empty when it has none or is malformed)."""
    if not exif:
        return {}, {}
    try:
        src = Image.Exif()
        src.load(exif)
        text = {t: src[t] for t in _TIFF_EXIF_TAGS if t in src and isinstance(src[t], str) and src[t].isascii()}
        subs = {t: dict(src.get_ifd(t)) for t in (0x8769, 0x8825) if t in src}
        return text, {t: ifd for t, ifd in subs.items() if ifd}
    except Exception:  # a malformed EXIF never stops the pixels from being written
        return {}, {}


def _append_sub_ifds(data: bytes, subs: dict[int, dict[int, Any]]) -> bytes:
    """``data`` (a one-page classic TIFF whose IFD0 holds a LONG placeholder per tag of ``subs``,
    under the tag's code minus one) with each sub-IFD appended at a word boundary and its
    placeholder made the real pointer. tifffile will not write the pointer tags itself; their
    codes minus one (34664, 34852) are free and sort in the same place of IFD0."""
    from PIL import TiffImagePlugin

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        order = tif.byteorder
        spots = {tag: tif.pages.first.tags[tag - 1].valueoffset for tag in subs}
    out = bytearray(data)
    for tag, values in subs.items():
        out += b"\0" * (len(out) % 2)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II" if order == "<" else b"MM")
        for key, value in values.items():
            ifd[key] = value
        offset = len(out)
        out += ifd.tobytes(offset)
        struct.pack_into(f"{order}I", out, spots[tag], offset)
        struct.pack_into(f"{order}H", out, spots[tag] - 8, tag)  # the entry's code: tag, type, count, value
    return bytes(out)


_ENCODERS = {"JPEG": _encode_pil("JPEG"), "WEBP": _encode_pil("WEBP"), "PNG": _encode_png, "TIFF": _encode_tiff}
