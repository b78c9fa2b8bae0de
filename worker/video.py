"""Video decoding through PyAV: seek-based frame sampling with the SmolVLM2 frame-index rule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from common.errors import MediaError

BAD_VIDEO = "Не удалось прочитать видео: файл повреждён или не является видео."

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
    path: Path, *, target_fps: float, max_frames: int, max_seconds: float, longest_edge: int
) -> VideoFrames:
    """Sample frames by seeking near each target time, so long videos are never decoded whole;
    frames are scaled down to the model's video size at once, which bounds memory."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(BAD_VIDEO) from exc
    with container:
        if not container.streams.video:
            raise MediaError("В файле нет видеодорожки (например, только звук). Загрузите видео.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        if stream.duration is not None:
            duration = float(stream.duration * tb)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        if duration > max_seconds:
            raise MediaError(
                f"Видео слишком длинное: {duration:.0f} с при ограничении {max_seconds:.0f} с."
            )
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        total = stream.frames or max(1, round(duration * fps))
        targets = [i / fps for i in sample_indices(total, fps, target_fps, max_frames)]
        # A keyframe this close before the target is taken as is, without decoding forward to it: up to a
        # quarter of the spacing between samples (at most 2 s), so the sparse samples of a long video cost one
        # keyframe each, while the dense samples of a short clip stay exact.
        spacing = duration / len(targets) if len(targets) > 1 else duration
        tolerance = min(2.0, spacing / 4)
        out = VideoFrames([], [], [], fps, duration, total)
        try:
            for target in targets:
                frame = _frame_near(container, stream, start + target, tolerance)
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


def _frame_near(container, stream, t: float, tolerance: float):
    """The first frame at or after t (or a keyframe within tolerance before it)."""
    tb = stream.time_base
    container.seek(max(0, int(t / tb)), stream=stream, backward=True, any_frame=False)
    last = None
    for frame in container.decode(stream):
        if frame.pts is None:
            last = frame
            continue
        ft = float(frame.pts * tb)
        if ft >= t - 1e-6 or (last is None and t - ft <= tolerance):
            return frame
        last = frame
    return last  # t is past the last frame: use the last one
