"""The region preview (web.ui.preview): the same picture as before, decoded once per file, at most DECODE_SLOTS
decodes at once, and bounded memory (10 concurrent previews of a 36-Mpx PNG: ~0.4 GB peak, was ~4 GB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from scripts.stack import ROOT
from web.ui import preview
from web.ui.preview import PREVIEW_MAX, make_preview, preview_size, to_image_coords


@pytest.fixture(autouse=True)
def fresh_cache():
    preview.clear_cache()
    yield
    preview.clear_cache()


def scene(size=(1200, 800)) -> Image.Image:
    """Left half red, right half blue, a green square in the top-left corner."""
    w, h = size
    im = Image.new("RGB", size, (20, 40, 230))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, w // 2 - 1, h - 1), fill=(230, 30, 30))
    d.rectangle((0, 0, w // 8, h // 8), fill=(20, 200, 40))
    return im


def near(pixel, color, tol=40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel[:3], color, strict=True))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "CMYK"])
def test_every_mode_gives_an_rgb_preview_of_the_right_size(tmp_path, mode):
    im = scene((2400, 1600))
    im = im.convert("L").convert(mode) if mode == "I;16" else im.convert(mode)
    path = tmp_path / ("x.tiff" if mode == "CMYK" else "x.png")
    im.save(path)
    out = make_preview(path)
    assert out.mode == "RGB" and out.size == preview_size(2400, 1600) == (PREVIEW_MAX, 683)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    """The green corner is top-left once the EXIF orientation is applied, whatever the stored frame."""
    upright = scene()
    undo = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_270}
    stored = upright.transpose(undo[orientation]) if orientation in undo else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "x.jpg"
    stored.save(path, "JPEG", exif=exif, quality=95)
    out = make_preview(path)
    assert out.size == (1024, 683)
    assert near(out.getpixel((20, 20)), (20, 200, 40))
    assert near(out.getpixel((300, 400)), (230, 30, 30)) and near(out.getpixel((800, 400)), (20, 40, 230))


def test_png_orientation_after_the_pixel_data_is_applied_too(tmp_path):
    """A PNG may carry its eXIf chunk after IDAT; the worker (ImageOps.exif_transpose) applies it, so must we."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "late.png"
    scene().transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    data = path.read_bytes()
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        chunks.append(data[at:at + 12 + length])
        at += 12 + length
    late = [c for c in chunks if c[4:8] != b"eXIf"][:-1] + [c for c in chunks if c[4:8] == b"eXIf"] + chunks[-1:]
    path.write_bytes(data[:8] + b"".join(late))
    assert "exif" not in Image.open(path).info  # Pillow does not see it without decoding
    out = make_preview(path)
    assert out.size == (1024, 683) and preview.base_picture(path)[1] == (1200, 800)
    assert near(out.getpixel((20, 20)), (20, 200, 40))


def test_box_and_corner_are_drawn_in_preview_pixels(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (2048, 1024), (255, 255, 255)).save(path)
    out = make_preview(path, box=(200, 100, 1000, 600), corner=(1600, 800))
    assert out.size == (1024, 512)
    assert near(out.getpixel((100, 200)), preview.BOX_COLOR)  # the box's left edge at x = 200 / 2
    assert near(out.getpixel((800, 400)), preview.BOX_COLOR)  # the corner's cross at (1600, 800) / 2
    assert out.getpixel((300, 200)) == (255, 255, 255)
    assert to_image_coords(100, 50, 2048, 1024) == (200, 100)


def test_the_cached_base_is_never_drawn_on(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (800, 600), (255, 255, 255)).save(path)
    make_preview(path, box=(10, 10, 400, 300))
    plain = make_preview(path)
    assert plain.getcolors() == [(800 * 600, (255, 255, 255))]


def counting(monkeypatch, delay: float = 0.0) -> dict:
    """Count the decodes (and the most running at once); each takes at least delay seconds."""
    stats = {"calls": 0, "running": 0, "most": 0}
    lock = threading.Lock()
    real = preview._decode

    def decode(path):
        with lock:
            stats["calls"] += 1
            stats["running"] += 1
            stats["most"] = max(stats["most"], stats["running"])
        try:
            time.sleep(delay)
            return real(path)
        finally:
            with lock:
                stats["running"] -= 1

    monkeypatch.setattr(preview, "_decode", decode)
    return stats


def test_each_click_reuses_the_decoded_image_until_the_file_changes(tmp_path, monkeypatch):
    stats = counting(monkeypatch)
    path = tmp_path / "x.png"
    scene().save(path)
    for corner in [(10, 10), (20, 20), None]:
        make_preview(path, (0, 0, 100, 100), corner)
    assert stats["calls"] == 1
    Image.new("RGB", (640, 480), (255, 255, 255)).save(path)  # a new file under the same name
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert make_preview(path).getpixel((5, 5)) == (255, 255, 255)
    assert stats["calls"] == 2


def test_concurrent_previews_decode_each_file_once_and_at_most_two_at_a_time(tmp_path, monkeypatch):
    stats = counting(monkeypatch, delay=0.2)
    files = []
    for i in range(5):
        files.append(tmp_path / f"x{i}.png")
        scene((600 + i, 400)).save(files[-1])
    calls = [files[i % len(files)] for i in range(20)]
    threads = [threading.Thread(target=make_preview, args=(p, (0, 0, 50, 50))) for p in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats["calls"] == 5
    assert stats["most"] == preview.DECODE_SLOTS == 2


def test_a_broken_file_is_a_russian_error_for_every_waiting_caller(tmp_path):
    from common.errors import MediaError

    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 100)
    with pytest.raises(MediaError, match="Не удалось прочитать изображение"):
        make_preview(path)
    with pytest.raises(MediaError):
        make_preview(tmp_path / "gone.png")


MEASURE = r"""
import json, sys, threading
from web.ui.preview import make_preview
def mem(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024
paths = sys.argv[1:]
base = mem("VmRSS")
threads = [threading.Thread(target=make_preview, args=(paths[i % len(paths)], (10, 10, 3000, 3000))) for i in range(10)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"base": base, "peak": mem("VmHWM"), "after": mem("VmRSS")}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_ten_concurrent_previews_of_a_36_mpx_png_stay_small_in_memory(tmp_path):
    """6000×6000 PNG (~130 KB, 144 MB decoded): 10 concurrent previews of 3 such files. The old code peaked at
    ~4.1 GB (each call held ~3 full-size copies); now at most 2 decodes × 1 full-size copy."""
    im = Image.new("RGB", (6000, 6000), (200, 220, 240))
    ImageDraw.Draw(im).rectangle((500, 500, 3000, 3000), fill=(255, 0, 0))
    first = tmp_path / "big0.png"
    im.save(first, compress_level=1)
    del im
    paths = [first]
    for i in (1, 2):
        paths.append(tmp_path / f"big{i}.png")
        paths[-1].write_bytes(first.read_bytes())
    out = subprocess.run([sys.executable, "-c", MEASURE, *map(str, paths)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    mb = json.loads(out.stdout)
    print(f"preview memory, MB: {mb}")
    assert mb["peak"] - mb["base"] < 600, mb  # 2 decodes × ~165 MB, plus Pillow and the cache
    assert mb["after"] - mb["base"] < 120, mb  # given back (malloc_trim); the cache holds ≤ 8 × 4 MB
