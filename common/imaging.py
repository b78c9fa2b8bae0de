"""Image checks shared by the web (before queueing) and the worker (before decoding): readable,
not a decompression bomb, not too many pixels. Header reads only; Pillow, no torch."""

from __future__ import annotations

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


def oriented_size(im: Image.Image) -> tuple[int, int]:
    """Width and height as displayed, EXIF orientation applied."""
    w, h = im.size
    return (h, w) if im.getexif().get(ExifTags.Base.Orientation, 1) in ROTATED else (w, h)


def image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """Displayed width and height, read from the header; checked against max_pixels when given."""
    with open_image(path) as im:
        w, h = oriented_size(im)
    if max_pixels is not None:
        check_pixels(w, h, max_pixels)
    return w, h
