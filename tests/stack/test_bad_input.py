"""Bad input, table-driven, through the public API of a real stack (redis + worker + web): each case
gives a valid answer or a Russian message, never a traceback; the worker stays up throughout."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from common import contract, imaging
from common import store as storage
from scripts import samples
from web.queue.box import BoxError, parse_box
from worker.media import video

pytestmark = pytest.mark.integration
LIMIT_MB = 1
MAX_VIDEO_S = 20


def _png_with_declared_size(path: Path, width: int, height: int) -> Path:
    """A real small PNG whose header claims width×height (a decompression bomb's signature)."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def _make(d: Path) -> dict[str, Path]:
    f: dict[str, Path] = {}
    f["good"] = samples.scene_image(d / "good.png", (320, 240))
    f["empty.png"] = d / "empty.png"
    f["empty.png"].write_bytes(b"")
    jpg = d / "full.jpg"
    Image.new("RGB", (200, 150), (200, 30, 30)).save(jpg, quality=90)
    f["cut.jpg"] = d / "cut.jpg"
    f["cut.jpg"].write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 3])
    clip = samples.video(d / "clip.mp4", seconds=2, fps=10, size=(96, 64))
    f["cut.mp4"] = d / "cut.mp4"
    f["cut.mp4"].write_bytes(clip.read_bytes()[:600])
    for name in ("text.png", "text.mp4", "notes.txt"):
        f[name] = d / name
        f[name].write_text("это просто текст, а не медиафайл\n" * 20, encoding="utf-8")
    f["audio.mp4"] = samples.audio_only(d / "audio.mp4")
    f["bomb.png"] = _png_with_declared_size(d / "bomb.png", 60000, 60000)
    f["big.png"] = d / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), np.uint8)).save(f["big.png"])
    f["long.mp4"] = samples.video(d / "long.mp4", seconds=MAX_VIDEO_S + 10, fps=2, size=(32, 32))
    f["clip.mp4"] = clip
    f["poison.mp4"] = samples.single_keyframe_video(d / "poison.mp4", seconds=60)  # 1000 fps, one keyframe
    f["raw.mp4"] = samples.raw_h264(d / "raw.mp4")
    f["spike.mkv"] = samples.timestamp_spike_mkv(d / "spike.mkv")
    gif = [Image.new("P", (64, 48), i * 40) for i in range(4)]
    f["anim.gif"] = d / "anim.gif"
    gif[0].save(f["anim.gif"], save_all=True, append_images=gif[1:], duration=100, loop=0)
    f["cmyk.jpg"] = d / "cmyk.jpg"
    Image.new("CMYK", (64, 48), (0, 200, 200, 0)).save(f["cmyk.jpg"])
    f["16bit.png"] = d / "16bit.png"
    Image.fromarray(np.linspace(0, 65535, 64 * 48).astype(np.uint16).reshape(48, 64)).save(f["16bit.png"])
    f["alpha.png"] = d / "alpha.png"
    Image.new("RGBA", (64, 48), (10, 200, 10, 90)).save(f["alpha.png"])
    f["1x1.png"] = d / "1x1.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(f["1x1.png"])
    return f


def box_message(text: str) -> str:
    """The exact message the web gives for a bad box on the 320×240 "good" image."""
    try:
        parse_box(text, 320, 240)
    except BoxError as exc:
        return exc.message
    raise AssertionError(f"{text!r} is a valid box")


RAW_H264 = (
    "Это не видеофайл MP4/MKV/WebM, а «сырой» поток H.264 без контейнера (в нём нет отметок времени кадров). "
    "Перепакуйте его в MP4, например: ffmpeg -i in.h264 -c copy out.mp4"
)
TOO_FAST = (
    "Слишком высокая частота кадров: 1\u00a0000 кадров/с (допустимо не более 240). "
    "Перекодируйте видео с обычной частотой, например 30 кадров/с."
)

# (endpoint, file key, extra args, expected: "ok" or the exact Russian message)
CASES: list[tuple[str, str, tuple, str]] = [
    ("vqa", "empty.png", ("Опиши изображение",), storage.EMPTY_FILE),
    ("vqa", "cut.jpg", ("Опиши изображение",), imaging.BAD_IMAGE),
    ("vqa", "cut.mp4", ("Опиши видео",), video.BAD_VIDEO),
    ("vqa", "text.png", ("Опиши изображение",), imaging.BAD_IMAGE),
    ("vqa", "text.mp4", ("Опиши видео",), video.BAD_VIDEO),
    ("vqa", "notes.txt", ("Опиши изображение",), storage.unsupported(".txt")),
    ("vqa", "audio.mp4", ("Опиши видео",), video.NO_VIDEO_STREAM),
    ("vqa", "bomb.png", ("Опиши изображение",), imaging.BOMB),
    ("vqa", "big.png", ("Опиши изображение",), "big"),  # storage.too_large of the file's own size
    ("vqa", "long.mp4", ("Опиши видео",),
     f"Видео слишком длинное: {MAX_VIDEO_S + 10} с при ограничении {MAX_VIDEO_S} с."),
    ("vqa", "poison.mp4", ("Опиши видео",), TOO_FAST),
    ("vqa", "raw.mp4", ("Опиши видео",), RAW_H264),
    ("vqa", "spike.mkv", ("Опиши видео",), "ok"),
    ("vqa", "anim.gif", ("Опиши изображение",), "ok"),
    ("vqa", "cmyk.jpg", ("Опиши изображение",), "ok"),
    ("vqa", "16bit.png", ("Опиши изображение",), "ok"),
    ("vqa", "alpha.png", ("Опиши изображение",), "ok"),
    ("vqa", "1x1.png", ("Опиши изображение",), "ok"),
    ("vqa", "good", ("   ",), contract.EMPTY_QUESTION),
    ("vqa", "good", ("почему? " * 1000,), "Вопрос слишком длинный: 7999 символов при ограничении 2000."),
    ("ocr", "empty.png", (), storage.EMPTY_FILE),
    ("ocr", "text.png", (), imaging.BAD_IMAGE),
    ("ocr", "cut.jpg", (), imaging.BAD_IMAGE),
    ("ocr", "clip.mp4", (), contract.IMAGE_ONLY),
    ("ocr", "1x1.png", (), "ok"),
    ("ocr", "alpha.png", (), "ok"),
    *[("describe_region", "good", (box,), box_message(box)) for box in (
        "", "1,2,3", "1,2,3,4,5", "a,b,c,d", "1.5,2,30,40", "-1,0,30,40", "40,10,20,50", "10,50,40,20",
        "10;10;40;40", "10 10 40 40", "0,0,400,100", "0,0,100,300", "10,10,10,40", "10,10,12,12")],
    ("describe_region", "good", (" 10 , 20 , 200 , 220 ",), "ok"),
    ("describe_region", "empty.png", ("0,0,10,10",), storage.EMPTY_FILE),
    ("describe_region", "clip.mp4", ("0,0,10,10",), contract.IMAGE_ONLY),
]


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory):
    stack = make_stack(max_upload_mb=LIMIT_MB)
    stack.start_worker("bad-input", MAX_VIDEO_SECONDS=str(MAX_VIDEO_S), MAX_UPLOAD_MB=str(LIMIT_MB))
    stack.start_web(MAX_UPLOAD_MB=str(LIMIT_MB), MAX_VIDEO_SECONDS=str(MAX_VIDEO_S))
    stack.files = _make(tmp_path_factory.mktemp("bad"))
    stack.api = Client(stack.url, verbose=False, download_files=str(tmp_path_factory.mktemp("dl")))
    return stack


def _call(stack, endpoint: str, key: str, args: tuple):
    path = handle_file(str(stack.files[key]))
    if endpoint == "vqa":
        return stack.api.predict(path, *args, [], api_name="/vqa")
    return stack.api.predict(path, *args, api_name=f"/{endpoint}")


def test_at_least_25_cases_over_three_endpoints():
    assert len(CASES) >= 25 and {c[0] for c in CASES} == {"vqa", "ocr", "describe_region"}
    assert len({c[3] for c in CASES if c[3] != "ok"}) >= 25  # distinct messages, each asserted exactly
    assert sum(1 for c in CASES if c[0] == "describe_region" and c[3] != "ok") >= 10


@pytest.mark.parametrize("endpoint, key, args, expected", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input(stack, endpoint: str, key: str, args: tuple, expected: str):
    call: Callable = _call
    if expected == "ok":
        out = call(stack, endpoint, key, args)
        answer = out[0] if isinstance(out, tuple | list) else out
        assert isinstance(answer, str)
    else:
        if expected == "big":
            expected = storage.too_large(LIMIT_MB * 1024 * 1024, stack.files[key].stat().st_size)
        t0 = time.monotonic()
        with pytest.raises(AppError) as info:
            call(stack, endpoint, key, args)
        assert str(info.value) == expected
        assert time.monotonic() - t0 < 10  # refused promptly (the poison video used to pin a worker)
    assert all(w.alive for w in stack.workers), "the worker must survive every input"


def test_next_good_job_succeeds_after_all_bad_ones(stack):
    answer = stack.api.predict(handle_file(str(stack.files["good"])), "Опиши изображение", [], api_name="/vqa")
    assert isinstance(answer, str) and answer.strip()
    assert all(w.alive for w in stack.workers)
