"""common.imaging: header checks shared by web and worker."""

import struct
import zlib

import pytest
from PIL import Image, ImageFile

from common import imaging
from common.errors import MediaError


def test_image_size_applies_exif_orientation(tmp_path):
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (300, 100)).save(plain)
    assert imaging.image_size(plain) == (300, 100)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown: displayed as 100×300
    Image.new("RGB", (300, 100)).save(rotated, exif=exif)
    assert imaging.image_size(rotated) == (100, 300)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    with pytest.raises(MediaError) as info:
        imaging.image_size(garbage)
    assert info.value.message == imaging.BAD_IMAGE


def test_too_many_pixels_names_the_size(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(path)
    assert imaging.image_size(path, max_pixels=20_000) == (200, 100)
    with pytest.raises(MediaError) as info:
        imaging.image_size(path, max_pixels=19_999)
    assert info.value.message == imaging.too_many_pixels(200, 100, 19_999)
    assert "200×100" in info.value.message


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    """Only the header is read: a PNG that claims 30000×30000 pixels is refused without decoding it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(MediaError) as info:
        imaging.image_size(bomb)
    assert info.value.message == imaging.BOMB


def _move_exif_after_pixels(path) -> None:
    """Rewrite a PNG with its eXIf chunk after IDAT (legal, and where Pillow must decode to find it)."""
    data = path.read_bytes()
    chunks, at = [], 8
    while at < len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        chunks.append(data[at:at + 12 + length])
        at += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    path.write_bytes(data[:8] + b"".join(rest[:-1] + exif + rest[-1:]))  # … IDAT, eXIf, IEND


def test_png_orientation_is_read_without_decoding_the_pixels(tmp_path, monkeypatch):
    exif = Image.Exif()
    exif[0x0112] = 6
    early, late = tmp_path / "early.png", tmp_path / "late.png"
    for path in (early, late):
        Image.new("RGB", (300, 100)).save(path, exif=exif)
    _move_exif_after_pixels(late)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded the pixels"))
    assert imaging.image_size(early) == imaging.image_size(late) == (100, 300)
