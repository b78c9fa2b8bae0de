"""Sample media made locally (never downloaded): an image with text, a short mp4, odd files for
bad-input tests. Used by the web's examples, the tests and the benchmarks."""

from __future__ import annotations

import argparse
import fractions
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SAMPLE_TEXT = "SmolVLM2 demo\nInvoice 2026-11-27\nTotal: 1 234,50 RUB"


def _font(size: int) -> ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def text_image(path: Path, text: str = SAMPLE_TEXT, size: tuple[int, int] = (640, 360)) -> Path:
    im = Image.new("RGB", size, (250, 250, 245))
    draw = ImageDraw.Draw(im)
    draw.rectangle((20, 20, size[0] - 20, size[1] - 20), outline=(30, 60, 160), width=4)
    draw.multiline_text((50, 60), text, fill=(10, 10, 10), font=_font(34), spacing=18)
    draw.ellipse((size[0] - 170, size[1] - 150, size[0] - 50, size[1] - 40), fill=(220, 40, 40))
    im.save(path)
    return path


def scene_image(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """A simple scene: sky, ground, a red square and a blue circle (for region questions)."""
    im = Image.new("RGB", size, (135, 190, 235))
    draw = ImageDraw.Draw(im)
    w, h = size
    draw.rectangle((0, h * 2 // 3, w, h), fill=(70, 150, 60))
    draw.rectangle((w // 8, h // 3, w // 8 + w // 5, h // 3 + w // 5), fill=(210, 30, 30))
    draw.ellipse((w // 2, h // 4, w // 2 + w // 4, h // 4 + w // 4), fill=(30, 60, 200))
    im.save(path)
    return path


def video(path: Path, seconds: float = 3.0, fps: int = 10, size: tuple[int, int] = (160, 120),
          gop: int | None = None, audio: bool = False) -> Path:
    """An H.264 mp4 of a moving square; each frame differs, so sampling is visible."""
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": str(gop or fps * 2), "preset": "ultrafast", "tune": "zerolatency"}
        astream = out.add_stream("aac", rate=16000) if audio else None
        n = max(1, round(seconds * fps))
        xs = np.mgrid[0:h, 0:w][1]
        for i in range(n):
            frame = np.zeros((h, w, 3), np.uint8)
            frame[..., 0] = (xs * 255 // max(1, w - 1)).astype(np.uint8)
            frame[..., 2] = (i * 255 // max(1, n - 1))
            x = int((w - 20) * i / max(1, n - 1))
            frame[h // 2 - 10 : h // 2 + 10, x : x + 20] = (255, 255, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            _write_tone(out, astream, seconds)
    return path


def _write_tone(out, stream, seconds: float) -> None:
    rate = 16000
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, len(samples), 1024):
        chunk = samples[start : start + 1024]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = fractions.Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def audio_only(path: Path, seconds: float = 2.0) -> Path:
    """An mp4 with an audio stream and no video stream."""
    with av.open(str(path), "w", format="mp4") as out:
        _write_tone(out, out.add_stream("aac", rate=16000), seconds)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the sample media used by the UI examples.")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    text_image(args.out_dir / "text.png")
    scene_image(args.out_dir / "scene.png", (640, 480))
    video(args.out_dir / "clip.mp4", seconds=4, fps=12, size=(320, 240))
    print(f"samples written to {args.out_dir}")


if __name__ == "__main__":
    main()
