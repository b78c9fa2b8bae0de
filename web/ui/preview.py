"""The region tab's preview: the image (EXIF orientation applied, scaled down) with the box drawn on it.

Every box change and every click redraws it, so a preview must be cheap in memory as well as in time:
- the image is decoded once per file (path, size, mtime) into a small base picture kept in a tiny LRU cache;
  a redraw only copies the base (at most PREVIEW_MAX² px) and draws on the copy;
- JPEG is decoded at a reduced scale (Image.draft); other formats are decoded at full size once, reduced at
  once, and the full-size copy is dropped (EXIF orientation and the conversion to RGB are applied to the small
  picture): at most one full-size copy per decode (~150 MB for a 36-Mpx RGB PNG, was three);
- at most DECODE_SLOTS decodes run at once; the others wait (and usually find the base cached);
- after a decode glibc is asked to give the freed memory back to the system (malloc_trim): Pillow's large
  blocks otherwise stay in the allocator's arenas and the process keeps its peak size."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

from common.errors import MediaError
from common.imaging import BAD_IMAGE, ROTATED, open_image

PREVIEW_MAX = 1024  # longest side of the preview, px
BOX_COLOR = (255, 40, 40)
DECODE_SLOTS = 2  # full decodes at once (each holds one full-size copy of the image)
CACHE_SIZE = 8  # base pictures kept (each at most PREVIEW_MAX² px × 4 bytes = 4 MB)

# EXIF orientation → the transpose that shows the picture upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION = 0x0112
RESAMPLED = {"L", "LA", "RGB", "RGBA", "RGBX", "RGBa", "La", "CMYK", "YCbCr", "I", "I;16", "F"}  # resized as is


def preview_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, PREVIEW_MAX / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_image_coords(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    """A pixel clicked on the preview → the same place on the full image."""
    pw, ph = preview_size(width, height)
    return min(width - 1, int(x * width / pw)), min(height - 1, int(y * height / ph))


class _Base:
    """The upright, scaled-down RGB picture of one file and the file's full (oriented) size."""

    __slots__ = ("full", "image")

    def __init__(self, image: Image.Image, full: tuple[int, int]) -> None:
        self.image, self.full = image, full


_cache: OrderedDict[tuple, _Base] = OrderedDict()
_pending: dict[tuple, Future] = {}  # decodes queued or running, by key: a second caller waits for the first
_lock = threading.Lock()
# The decodes run on DECODE_SLOTS threads of their own: bounded concurrency, and the memory one decode frees is
# reused by the next (from the same malloc arenas) instead of each of Gradio's many threads growing its own.
_pool = ThreadPoolExecutor(max_workers=DECODE_SLOTS, thread_name_prefix="preview")
try:  # glibc only; elsewhere (musl, macOS) trimming is skipped
    _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
except (OSError, AttributeError):
    _malloc_trim = None


def _key(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError as exc:
        raise MediaError(BAD_IMAGE) from exc
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _decode(path: Path) -> _Base:
    """One decode: the full image at most once in memory, reduced before anything else is done with it."""
    with open_image(path) as im:
        stored = im.size
        # The preview's size in the file's own frame: the scale depends on the longest side only, so a
        # quarter turn (EXIF orientation) just swaps it; the orientation can wait until the pixels are decoded.
        target = preview_size(*stored)
        im.draft("RGB", target)  # JPEG: decoded at 1/2, 1/4 or 1/8 scale, still at least the target size
        im.seek(0)
        if im.size == target:
            small = im.copy()
        elif im.mode in RESAMPLED:
            small = im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)  # load() + reduce + resample
        else:  # palette, bilevel, exotic modes: real colours first (a palette image decodes at 1 byte/px)
            small = im.convert("RGBA" if im.has_transparency_data else "RGB")
            small = small.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        # Read after the decode: a PNG's EXIF may follow its pixels (Pillow would decode it again to find it).
        orientation = im.getexif().get(_ORIENTATION, 1)
    if small.mode != "RGB":
        small = small.convert("RGB")
    if orientation in _UPRIGHT:
        small = small.transpose(_UPRIGHT[orientation])
    w, h = stored
    return _Base(small, (h, w) if orientation in ROTATED else (w, h))


def _trim() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)


def _decode_job(path: Path, key: tuple) -> _Base:
    try:
        base = _decode(path)
        with _lock:
            _cache[key] = base
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return base
    finally:
        with _lock:
            _pending.pop(key, None)
            idle = not _pending
        if idle:
            _trim()  # nothing else decoding: give the freed full-size copies back to the system


def base_picture(path: str | Path) -> tuple[Image.Image, tuple[int, int]]:
    """The cached upright preview base of a file (do not draw on it: copy it) and the file's full size."""
    path = Path(path)
    key = _key(path)
    with _lock:
        if (hit := _cache.get(key)) is not None:
            _cache.move_to_end(key)
            return hit.image, hit.full
        if (future := _pending.get(key)) is None:
            future = _pending[key] = _pool.submit(_decode_job, path, key)
    base = future.result()
    return base.image, base.full


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def make_preview(path: str | Path, box: tuple[int, int, int, int] | None = None,
                 corner: tuple[int, int] | None = None) -> Image.Image:
    """box and corner are in full-image pixels; the preview is at most PREVIEW_MAX px on its longest side."""
    base, (full_w, full_h) = base_picture(path)
    shown = base.copy()
    pw, ph = shown.size
    sx, sy = pw / full_w, ph / full_h
    draw = ImageDraw.Draw(shown)
    width = max(2, round(max(pw, ph) / 300))
    if box is not None:
        x1, y1, x2, y2 = box
        draw.rectangle((x1 * sx, y1 * sy, x2 * sx - 1, y2 * sy - 1), outline=BOX_COLOR, width=width)
    if corner is not None:
        cx, cy = corner[0] * sx, corner[1] * sy
        r = width * 3
        draw.line((cx - r, cy, cx + r, cy), fill=BOX_COLOR, width=width)
        draw.line((cx, cy - r, cx, cy + r), fill=BOX_COLOR, width=width)
    return shown
