"""Sample media made locally (never downloaded): an image with text, a short mp4, odd files for
bad-input tests. Used by the web's examples, the tests and the benchmarks."""

from __future__ import annotations

import argparse
import fractions
import struct
import zlib
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


def write_all(out_dir: Path) -> None:
    """The UI examples' media: text.png, scene.png, clip.mp4 (the names web/app.py looks for)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text_image(out_dir / "text.png")
    scene_image(out_dir / "scene.png", (640, 480))
    video(out_dir / "clip.mp4", seconds=4, fps=12, size=(320, 240))


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the sample media used by the UI examples.")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    write_all(args.out_dir)
    print(f"samples written to {args.out_dir}")


# ---------------------------------------------------------------- pathological videos (worker/media/video.py's guards)


def single_keyframe_video(path: Path, seconds: float = 590.0, fps: int = 1000,
                          size: tuple[int, int] = (64, 48)) -> Path:
    """The "poison" video: one keyframe, then only tiny P-frames (so every seek decodes from the start); by default
    590 s at 1000 fps, 590 000 frames. Written in about a second: x264's output for a still image repeats with a
    short period after a few frames, so that cycle of packets is muxed again and again under new timestamps (a
    valid stream, the same bytes x264 would write for the whole video). The container follows the suffix."""
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": "1000000000", "keyint_min": "1000000000", "sc_threshold": "0",
                          "preset": "ultrafast", "tune": "zerolatency"}
        image = np.zeros((h, w, 3), np.uint8)
        image[h // 4 : h // 2, w // 4 : w // 2] = (255, 255, 0)
        packets = [p for _ in range(72) for p in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))]
        packets += stream.encode()
        data = [bytes(p) for p in packets]
        period = next((p for p in range(1, 33) if data[-p:] == data[-2 * p : -p] == data[-3 * p : -2 * p]), None)
        if period is None or len(data) != 72:
            raise RuntimeError("x264 output for a still image did not settle into a cycle")
        head = len(data) - 3 * period
        for i in range(max(1, round(seconds * fps))):
            packet = av.Packet(data[i] if i < head else data[head + (i - head) % period])
            packet.pts = packet.dts = i
            packet.time_base = fractions.Fraction(1, fps)
            packet.stream = stream
            packet.is_keyframe = i == 0
            out.mux(packet)
    return path


def timestamp_spike_mkv(path: Path, seconds: float = 3.0, fps: int = 10, spike_s: float = 1_000_000.0) -> Path:
    """A short mkv whose middle packet says it plays at spike_s: the container then reports the video as
    spike_s long, though its frames span `seconds`."""
    src = video(path.with_name(path.name + ".src.mp4"), seconds=seconds, fps=fps, size=(64, 48))
    try:
        with av.open(str(src)) as inp, av.open(str(path), "w", format="matroska") as out:
            ist = inp.streams.video[0]
            ost = out.add_stream_from_template(ist)
            middle = round(seconds * fps) // 2
            for i, packet in enumerate(p for p in inp.demux(ist) if p.dts is not None):
                if i == middle:
                    packet.pts = int(spike_s / packet.time_base)
                packet.stream = ost
                out.mux(packet)
    finally:
        src.unlink(missing_ok=True)
    return path


def raw_h264(path: Path, seconds: float = 3.0, fps: int = 10) -> Path:
    """A raw H.264 elementary stream (Annex B, no container and no timestamps) under whatever name is given,
    e.g. clip.mp4, as cameras and stream dumps write them."""
    src = video(path.with_name(path.name + ".src.mp4"), seconds=seconds, fps=fps, size=(64, 48))
    try:
        with av.open(str(src)) as inp, av.open(str(path), "w", format="h264") as out:
            ist = inp.streams.video[0]
            ost = out.add_stream_from_template(ist)
            for packet in inp.demux(ist):
                if packet.dts is not None:
                    packet.stream = ost
                    out.mux(packet)
    finally:
        src.unlink(missing_ok=True)
    return path


def streamed_webm(path: Path, seconds: float = 6.0, fps: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    """A VP8 webm written as a browser's MediaRecorder writes it, to a stream it cannot seek back in: no
    duration in the header and no index (cues)."""

    class _Forward:  # a file PyAV can only write forward
        def __init__(self, f) -> None:
            self.write = f.write

        def seekable(self) -> bool:
            return False

    w, h = size
    with open(path, "wb") as f, av.open(_Forward(f), "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        n = max(1, round(seconds * fps))
        for i in range(n):
            frame = np.zeros((h, w, 3), np.uint8)
            frame[:, int((w - 1) * i / max(1, n - 1))] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def flat_png(width: int, height: int, rgb: tuple[int, int, int] = (128, 128, 128)) -> bytes:
    """A PNG of one colour, written row by row without ever holding the pixels: a 12000×12000 one is ~1 MB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    squeeze = zlib.compressobj(9)
    row = b"\0" + bytes(rgb) * width
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def png_video(path: Path, size: tuple[int, int], frames: int = 2, header: tuple[int, int] | None = None) -> Path:
    """A QuickTime (.mov) video whose frames are PNG images of `size` (a codec cameras and screen recorders use):
    small on disk, huge once decoded. header: the size the container claims, if it should lie."""
    data = flat_png(*size)
    with av.open(str(path), "w", format="mov") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height = header or size
        stream.pix_fmt = "rgb24"
        for i in range(frames):
            packet = av.Packet(data)
            packet.pts = packet.dts = i
            packet.time_base = fractions.Fraction(1, 1)
            packet.stream = stream
            packet.is_keyframe = True
            out.mux(packet)
    return path


def audio_flood_mkv(path: Path, seconds: float = 2.0, packets_per_s: int = 10_000,
                    size: tuple[int, int] = (64, 48)) -> Path:
    """A video with one frame at each end and, between them, a tiny (2-byte) audio packet every 1/packets_per_s s:
    a demuxer asked for video packets only reads through all the audio ones between two video packets."""
    tb = fractions.Fraction(1, packets_per_s)
    n = max(2, round(seconds * packets_per_s))
    src = video(path.with_name(path.name + ".src.mp4"), seconds=2, fps=1, size=size, gop=1)
    try:
        with av.open(str(src)) as inp, av.open(str(path), "w", format="matroska") as out:
            ist = inp.streams.video[0]
            vst = out.add_stream_from_template(ist)
            ast = out.add_stream("pcm_s16le", rate=packets_per_s)
            ast.layout = "mono"
            frames = [p for p in inp.demux(ist) if p.dts is not None][:2]
            for i in range(n):
                if i in (0, n - 1) and frames:  # the video's two frames: at the start and at the end
                    packet = frames.pop(0)
                    packet.pts = packet.dts = i
                    packet.time_base = tb
                    packet.stream = vst
                    out.mux(packet)
                packet = av.Packet(b"\0\0")
                packet.pts = packet.dts = i
                packet.time_base = tb
                packet.stream = ast
                out.mux(packet)
    finally:
        src.unlink(missing_ok=True)
    return path


if __name__ == "__main__":
    main()
