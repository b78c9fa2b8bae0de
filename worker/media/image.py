"""Image decoding through Pillow: RGB, EXIF orientation, bomb guards, region crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from common import imaging
from common.errors import MediaError


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")


def load_image(path: Path, max_pixels: int) -> Image.Image:
    """RGB, EXIF orientation applied, first frame of an animation, guarded against bombs."""
    with imaging.open_image(path) as im:
        imaging.check_pixels(*im.size, max_pixels)
        im.seek(0)
        im.load()
        return _to_rgb(ImageOps.exif_transpose(im))


def crop_with_margin(im: Image.Image, box: tuple[int, int, int, int], margin: float = 0.1) -> Image.Image:
    """The box plus a small context margin (a fraction of its size), clamped to the image."""
    x1, y1, x2, y2 = box
    w, h = im.size
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise MediaError(
            f"Область {x1},{y1},{x2},{y2} выходит за границы изображения {w}×{h}: "
            f"нужно 0 ≤ x1 < x2 ≤ {w} и 0 ≤ y1 < y2 ≤ {h}."
        )
    mx, my = round((x2 - x1) * margin), round((y2 - y1) * margin)
    return im.crop((max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my)))


def write_thumbnails(frames, folder: Path, longest: int = 160) -> list[str]:
    """Small JPEGs of the sampled video frames (shown under the answer); file names in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, frame in enumerate(frames):
        im = Image.fromarray(frame)
        im.thumbnail((longest, longest))
        name = f"{i:02d}.jpg"
        im.save(folder / name, quality=80)
        names.append(name)
    return names
