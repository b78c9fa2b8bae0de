"""Image checks shared by the web (before queueing) and the worker (before decoding): readable,
not a decompression bomb, not too many pixels. Header reads only; Pillow, no torch."""

from __future__ import annotations

import os
import struct
import warnings
from contextlib import contextmanager
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from common import fmt
from common.errors import MediaError

BAD_IMAGE = "Не удалось прочитать изображение: файл повреждён или не является изображением."
BOMB = "Изображение слишком большое: превышен предел числа пикселей."
ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def too_many_pixels(width: int, height: int, max_pixels: int) -> str:
    limit = fmt.number(max_pixels / 1e6)
    return f"Изображение слишком большое: {width}×{height} пикселей (не более {limit} млн пикселей)."


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise MediaError(BAD_IMAGE)
    if width * height > max_pixels:
        raise MediaError(too_many_pixels(width, height, max_pixels))


@contextmanager
def open_image(path: str | Path):
    """Image.open with every failure turned into a Russian MediaError (bombs included)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(BOMB) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError(BAD_IMAGE) from exc


PNG_CHUNKS_MAX = 1_000_000  # chunks walked to find a PNG's eXIf (a 100 MB file in 8 KB IDAT chunks: 12 800)


def _png_orientation(fp) -> int:
    """The orientation in a PNG's eXIf chunk, found by walking the chunks (the pixel data is skipped, not read)."""
    where = fp.tell()
    try:
        fp.seek(8)
        for _ in range(PNG_CHUNKS_MAX):
            head = fp.read(8)
            if len(head) < 8:
                return 1
            length, kind = struct.unpack(">I4s", head)
            if kind == b"eXIf":
                exif = Image.Exif()
                exif.load(fp.read(length))
                return exif.get(ExifTags.Base.Orientation, 1)
            if kind == b"IEND":
                return 1
            fp.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
        return 1
    finally:
        fp.seek(where)


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1: as stored), without decoding the pixels: for a PNG whose eXIf chunk was not
    before the pixel data, Pillow's getexif() would decode the whole image to look for it after."""
    if im.format == "PNG" and "exif" not in im.info and getattr(im, "fp", None) is not None:
        return _png_orientation(im.fp)
    return im.getexif().get(ExifTags.Base.Orientation, 1)


def oriented_size(im: Image.Image) -> tuple[int, int]:
    """Width and height as displayed, EXIF orientation applied."""
    w, h = im.size
    return (h, w) if orientation(im) in ROTATED else (w, h)


def image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """Displayed width and height, read from the header; checked against max_pixels when given."""
    with open_image(path) as im:
        w, h = oriented_size(im)
    if max_pixels is not None:
        check_pixels(w, h, max_pixels)
    return w, h
