import numpy as np
import pytest
from PIL import Image

from common.errors import MediaError
from worker.media import image as media


def test_image_modes_become_rgb(tmp_path):
    cases = {
        "cmyk.jpg": Image.new("CMYK", (8, 6), (0, 255, 255, 0)),
        "alpha.png": Image.new("RGBA", (8, 6), (255, 0, 0, 0)),
        "gray16.png": Image.fromarray(np.full((6, 8), 65535, np.uint16)),
        "palette.gif": Image.new("P", (8, 6), 3),
        "one.png": Image.new("RGB", (1, 1), (1, 2, 3)),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
        out = media.load_image(tmp_path / name, max_pixels=10_000)
        assert out.mode == "RGB", name
    assert media.load_image(tmp_path / "alpha.png", 10_000).getpixel((0, 0)) == (255, 255, 255)  # transparent → white
    assert media.load_image(tmp_path / "gray16.png", 10_000).getpixel((0, 0)) == (255, 255, 255)
    assert media.load_image(tmp_path / "cmyk.jpg", 10_000).getpixel((0, 0))[0] > 200  # red-ish, not black


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    im.save(tmp_path / "r.jpg", exif=exif)
    out = media.load_image(tmp_path / "r.jpg", 10_000)
    assert out.size == (20, 40)
    assert out.getpixel((10, 2))[0] > 200  # the left strip is now on top


def test_decompression_bomb_and_corrupt_images(tmp_path):
    Image.new("L", (200, 200)).save(tmp_path / "big.png")
    with pytest.raises(MediaError, match="слишком большое"):
        media.load_image(tmp_path / "big.png", max_pixels=10_000)
    good = tmp_path / "g.jpg"
    Image.new("RGB", (64, 64), (9, 9, 9)).save(good)
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:200])
    (tmp_path / "text.png").write_text("hello")
    for name in ("cut.jpg", "text.png"):
        with pytest.raises(MediaError, match="изображение"):
            media.load_image(tmp_path / name, 10_000)


def test_crop_with_margin_and_bounds():
    im = Image.new("RGB", (100, 50))
    assert media.crop_with_margin(im, (10, 10, 60, 30)).size == (60, 24)  # 10 % margin each side
    assert media.crop_with_margin(im, (0, 0, 100, 50)).size == (100, 50)  # clamped
    with pytest.raises(MediaError, match="100×50"):
        media.crop_with_margin(im, (10, 10, 101, 30))
