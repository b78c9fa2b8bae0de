"""common.imaging: header checks shared by web and worker."""

import struct
import zlib

import pytest
from PIL import Image

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
