"""Video decoding through PyAV: seek-based frame sampling with the SmolVLM2 frame-index rule, with the work per
video bounded (a deadline and the user's stop checked at every packet of any stream, a cap on frames decoded per
seek, a frame-rate limit, a pixel limit per frame checked before any frame is decoded), so one crafted file cannot
pin a worker or take its memory."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from common import fmt
from common.errors import JobTimeout, MediaError

BAD_VIDEO = "Не удалось прочитать видео: файл повреждён или не является видео."
NO_VIDEO_STREAM = "В файле нет видеодорожки (например, только звук). Загрузите видео."
MAX_FPS = 240  # slow-motion phones record 240 fps; more than that is a broken or crafted file
# A seek decodes from the keyframe before its target: 720 frames covers a 12-s GOP at 60 fps, longer than any
# normal encoder makes; past it a file with (almost) no keyframes would be decoded from the start at every seek.
MAX_FRAMES_PER_SEEK = 720
PROBE_PACKETS = 5000  # packets read (not decoded) after the last keyframe to find where the video ends
READ_CHUNK = 32 * 1024  # bytes FFmpeg reads at once: the deadline and the stop are checked before each read
# Packet bytes FFmpeg reads to learn the streams (its default: 5 MB). What it reads then it keeps, and goes on
# working through after the deadline (~600 000 packets of a flood of 2-byte audio packets with the default, 0.4 s
# after the limit, 3 times that in a busy worker); the streams' parameters come out the same with 100 KB even for a
# 4K file with 9-MB keyframes.
PROBE_BYTES = 256 * 1024
MAX_GAP_S = 10.0  # a timestamp this far beyond its neighbours is a broken packet, not part of the video
_FAR_S = 10**7  # a seek target past the end of any video: lands on the last keyframe
_CODECS = {"h264": "H.264", "hevc": "H.265 (HEVC)"}


class Stopped(Exception):
    """The job was stopped («Остановить», its caller gone) while its video was being decoded."""


def too_many_pixels(size: str, max_pixels: int) -> str:
    return (
        f"Кадры видео слишком большие: {size} (допустимо не более {fmt.number(max_pixels / 1e6)} млн пикселей в "
        "кадре, например 4096×2160). Уменьшите разрешение, например: ffmpeg -i in.mov -vf scale=1920:-2 out.mp4"
    )


def sample_indices(total_frames: int, video_fps: float, target_fps: float, max_frames: int) -> list[int]:
    """Frame indices exactly as the SmolVLM2 video processor samples them: round(target_fps *
    duration) frames, at most max_frames, evenly spaced; one second skipped at each end when the
    video is long enough."""
    total_frames = max(1, total_frames)
    duration = total_frames / video_fps if video_fps > 0 else 0.0
    desired = max(1, min(round(target_fps * duration), max_frames))
    start, end = 0, total_frames - 1
    if duration - 2 > max_frames * target_fps:
        start, end = int(video_fps), int(total_frames - video_fps)
    start, end = max(0, start), min(end, total_frames - 1)
    if start >= end:
        start, end = 0, total_frames - 1
    return [int(i) for i in np.unique(np.linspace(start, end, desired, dtype=int))]


@dataclass
class VideoFrames:
    frames: list[np.ndarray]  # (H, W, 3) uint8 each
    timestamps: list[float]
    indices: list[int]
    fps: float
    duration: float
    total_frames: int


def _scaled(width: int, height: int, longest_edge: int) -> tuple[int, int]:
    scale = min(1.0, longest_edge / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def decode_video(
    path: Path, *, target_fps: float, max_frames: int, max_seconds: float, longest_edge: int,
    deadline: float | None = None, time_limit_s: float | None = None, stop=None, max_pixels: int = 0,
) -> VideoFrames:
    """Sample frames by seeking near each target time, so long videos are never decoded whole;
    frames are scaled down to the model's video size at once, which bounds memory.

    deadline is a time.time() by which decoding must be done; it is checked before every read of the file (32 KB:
    a flood of tiny audio packets between two video frames, a seek that scans a file) and every video packet and
    frame, and past it
    JobTimeout(time_limit_s) is raised (time_limit_s: the job's limit, for the message; by default the time that
    was left at the call). stop (a threading.Event) is checked as often: once set, Stopped is raised.
    max_pixels (0: none): frames larger than this are refused before one is decoded (the decoder itself is told
    the limit too, so a container that lies about the size cannot make it allocate more)."""
    if deadline is not None and time_limit_s is None:
        time_limit_s = max(1, round(deadline - time.time()))

    def check() -> None:
        if stop is not None and stop.is_set():
            raise Stopped()
        if deadline is not None and time.time() > deadline:
            raise JobTimeout(time_limit_s)

    # The limit applies from the first probe on: opening a file decodes a frame to learn its size.
    options = {"max_pixels": str(max_pixels)} if max_pixels else {}
    file = _CheckedFile(path, check)
    try:
        container = av.open(file, options={"probesize": str(PROBE_BYTES), **options}, buffer_size=READ_CHUNK)
    except (av.FFmpegError, OSError, ValueError) as exc:
        file.close()
        raise MediaError(BAD_VIDEO) from exc
    with container, closing(file):
        if not container.streams.video:
            raise MediaError(NO_VIDEO_STREAM)
        stream = container.streams.video[0]
        for other in container.streams:
            if other is not stream:
                other.discard = av.stream.Discard.all  # skipped inside the demuxer, not handed to us one by one
        if max_pixels:
            stream.codec_context.options = dict(options)
            width, height = _frame_size(container, stream, max_pixels)
            if width * height > max_pixels:
                raise MediaError(too_many_pixels(f"{width}×{height} пикселей", max_pixels))
        if container.format.flags & av.format.Flags.no_timestamps.value:
            # Raw H.264/HEVC: no timestamps and no index, so no seeking; only a sequential decode would work.
            codec = stream.codec_context.name
            raise MediaError(
                f"Это не видеофайл MP4/MKV/WebM, а «сырой» поток {_CODECS.get(codec, codec.upper())} без контейнера "
                f"(в нём нет отметок времени кадров). Перепакуйте его в MP4, например: "
                f"ffmpeg -i in.{codec} -c copy out.mp4"
            )
        stream.thread_type = "AUTO"
        tb = stream.time_base
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        # The average rate, not the guessed one: that is often 1000 for a browser's webm (millisecond timestamps).
        # Checked before the probe: such a file can have a million packets to read.
        fps = float(stream.average_rate or 0)
        if round(fps) > MAX_FPS:
            raise MediaError(
                f"Слишком высокая частота кадров: {fmt.number(fps)} кадров/с (допустимо не более {MAX_FPS}). "
                "Перекодируйте видео с обычной частотой, например 30 кадров/с."
            )
        fps = fps or float(stream.guessed_rate or 25)
        duration = _duration(container, stream, start, fps, check)
        if duration > max_seconds:
            raise MediaError(
                f"Видео слишком длинное: {fmt.number(duration)} с при ограничении {fmt.number(max_seconds)} с."
            )
        total = stream.frames or max(1, round(duration * fps))
        if total > MAX_FPS * max(duration, 1.0):
            raise MediaError(
                f"Слишком много кадров: {fmt.number(total)} за {fmt.number(duration)} с, "
                f"то есть {fmt.number(total / max(duration, 1.0))} "
                f"кадров/с (допустимо не более {MAX_FPS})."
            )
        targets = [i / fps for i in sample_indices(total, fps, target_fps, max_frames)]
        # A keyframe this close before the target is taken as is, without decoding forward to it: up to a
        # quarter of the spacing between samples (at most 2 s), so the sparse samples of a long video cost one
        # keyframe each, while the dense samples of a short clip stay exact.
        spacing = duration / len(targets) if len(targets) > 1 else duration
        tolerance = min(2.0, spacing / 4)
        out = VideoFrames([], [], [], fps, duration, total)
        dead_ends: set[int | None] = set()
        try:
            for target in targets:
                check()
                frame = _frame_near(container, stream, start + target, tolerance, start + duration, dead_ends, check)
                if frame is None:
                    continue
                t = float(frame.pts * tb) - start if frame.pts is not None else target
                if out.timestamps and t <= out.timestamps[-1]:
                    continue  # the same keyframe twice: skip the duplicate
                w, h = _scaled(frame.width, frame.height, longest_edge)
                out.frames.append(frame.to_ndarray(width=w, height=h, format="rgb24"))
                out.timestamps.append(max(0.0, t))
                out.indices.append(min(total - 1, max(0, round(t * fps))))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(BAD_VIDEO) from exc
    if not out.frames:
        raise MediaError(BAD_VIDEO)
    return out


def _frame_size(container, stream, max_pixels: int) -> tuple[int, int]:
    """The frame size from the stream's header; when the probe could not learn it (a frame over the decoder's pixel
    limit was not decoded), from the header of the first frame itself, read by Pillow without decoding it (image
    codecs in a video container: PNG, JPEG, …). (0, 0) when neither says."""
    cc = stream.codec_context
    if cc.width and cc.height:
        return cc.width, cc.height
    try:
        packet = next((p for p in container.demux(stream) if p.size), None)
        container.seek(0, stream=stream, backward=True, any_frame=False)
    except (av.FFmpegError, OSError, ValueError):
        return 0, 0
    if packet is None:
        return 0, 0
    try:
        with Image.open(io.BytesIO(bytes(packet))) as im:
            return im.size
    except Image.DecompressionBombError as exc:  # Pillow's own bound (~179 million pixels) names only the count
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{fmt.number(int(found[1]) / 1e6)} млн пикселей" if found else "больше 179 млн пикселей"
        raise MediaError(too_many_pixels(count, max_pixels)) from exc
    except Exception:  # noqa: BLE001 - not an image codec, or a broken one: the decoder decides
        return 0, 0


class _CheckedFile:
    """The video file as FFmpeg reads it, with check() before every read (at most READ_CHUNK bytes): a demuxer that
    reads through any number of other streams' packets (or scans a file without an index to seek) in C, without
    returning a packet, still meets the deadline and the stop every few milliseconds. What check() raises ends the
    FFmpeg call and comes out of it as is."""

    def __init__(self, path: Path, check: Callable[[], None]) -> None:
        self._file, self._check = open(path, "rb"), check  # closed with the container
        self._ended = False

    def read(self, n: int) -> bytes:
        if self._ended:
            return b""  # FFmpeg unwinds as at the end of the file; the exception raised once comes out of its call
        try:
            self._check()
        except BaseException:
            self._ended = True
            raise
        return self._file.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()


def _duration(container, stream, start: float, fps: float, check: Callable[[], None]) -> float:
    """Where the video ends, from the timestamps of the packets after its last keyframe (read, not decoded): the
    header's duration is the largest timestamp, so one broken packet makes a 3-s clip a million seconds long."""
    tb = stream.time_base
    if stream.duration is not None:
        header = float(stream.duration * tb)
    elif container.duration is not None:
        header = container.duration / av.time_base
    else:
        header = 0.0
    stamps: list[float] = []
    try:
        container.seek(int(_FAR_S / tb), stream=stream, backward=True, any_frame=False)
        for packet in container.demux(stream):
            check()
            if packet.pts is not None:
                stamps.append(float(packet.pts * tb))
            if len(stamps) > PROBE_PACKETS:
                return header  # no keyframe near the end: the header is all there is
    except (av.FFmpegError, OSError, ValueError):
        return header
    if not stamps:
        return header
    stamps.sort()
    end = stamps[0]
    for t in stamps[1:]:
        if t - end > MAX_GAP_S:
            break  # the rest are broken far-off timestamps
        end = t
    return max(0.0, end + 1 / fps - start)


def _frame_near(container, stream, t: float, tolerance: float, end: float, dead_ends: set, check):
    """The first frame at or after t (or a keyframe within tolerance before it). At most MAX_FRAMES_PER_SEEK
    frames are decoded: past that the last one is taken, and its keyframe is remembered in dead_ends, so a later
    seek landing on it again stops at once instead of decoding the same frames to the same frame."""
    tb = stream.time_base
    container.seek(max(0, int(t / tb)), stream=stream, backward=True, any_frame=False)
    last = None
    for n, frame in enumerate(container.decode(stream), 1):
        check()
        if n == 1:
            first = frame.pts
            if first in dead_ends:
                return None
        ft = float(frame.pts * tb) if frame.pts is not None else None
        if ft is None:
            last = frame
        elif ft <= end + MAX_GAP_S:  # later than that: a broken far-off timestamp, skipped
            if ft >= t - 1e-6 or (last is None and t - ft <= tolerance):
                return frame
            last = frame
        if n >= MAX_FRAMES_PER_SEEK:
            dead_ends.add(first)
            return last
    return last  # t is past the last frame: use the last one
