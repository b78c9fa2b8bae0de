"""The region tab's preview: the image (EXIF orientation applied, scaled down) with the box drawn on it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from common.imaging import image_size

PREVIEW_MAX = 1024  # longest side of the preview, px
BOX_COLOR = (255, 40, 40)


def preview_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, PREVIEW_MAX / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_image_coords(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    """A pixel clicked on the preview → the same place on the full image."""
    pw, ph = preview_size(width, height)
    return min(width - 1, int(x * width / pw)), min(height - 1, int(y * height / ph))


def make_preview(path: str | Path, box: tuple[int, int, int, int] | None = None,
                 corner: tuple[int, int] | None = None) -> Image.Image:
    """box and corner are in full-image pixels; the preview is at most PREVIEW_MAX px on its longest side."""
    with Image.open(path) as im:
        im.draft("RGB", (PREVIEW_MAX, PREVIEW_MAX))  # JPEG: decode at a reduced scale, much faster
        im.seek(0)
        shown = ImageOps.exif_transpose(im).convert("RGB")
    # draft() may have reduced the size already: scale from the full (oriented) size, not the decoded one.
    full_w, full_h = image_size(path)
    pw, ph = preview_size(full_w, full_h)
    shown = shown.resize((pw, ph), Image.Resampling.LANCZOS) if shown.size != (pw, ph) else shown
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

