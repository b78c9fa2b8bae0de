"""What one hostile video can cost a worker: frames bounded by pixels (refused before any is decoded, even when
the container lies about their size), and the deadline and the user's stop seen at every packet of the file,
audio packets included (issue 20)."""

from __future__ import annotations

import threading
import time

import pytest

from common.errors import JobTimeout, MediaError
from scripts import samples
from tests.worker.media.test_video import _counting_clock
from worker.media import video

ARGS = dict(target_fps=1.0, max_frames=8, max_seconds=600, longest_edge=64)
LIMIT = 4096 * 2160


def test_frames_over_the_pixel_limit_are_refused_before_one_is_decoded(tmp_path, monkeypatch):
    path = samples.png_video(tmp_path / "huge.mov", (6000, 6000))
    decoded = []
    monkeypatch.setattr(video.av.VideoFrame, "to_ndarray", lambda *a, **k: decoded.append(1))
    with pytest.raises(MediaError) as err:
        video.decode_video(path, **ARGS, max_pixels=LIMIT)
    assert err.value.message == (
        "Кадры видео слишком большие: 6000×6000 пикселей (допустимо не более 8,8 млн пикселей в кадре, например "
        "4096×2160). Уменьшите разрешение, например: ffmpeg -i in.mov -vf scale=1920:-2 out.mp4"
    )
    assert not decoded


def test_a_container_that_lies_about_the_frame_size_is_refused_too(tmp_path):
    # The header says 64×64; the frames are 6000×6000. The probe that opens the file would decode one in full.
    path = samples.png_video(tmp_path / "liar.mov", (6000, 6000), header=(64, 64))
    with pytest.raises(MediaError, match=r"^Кадры видео слишком большие: 6000×6000 пикселей"):
        video.decode_video(path, **ARGS, max_pixels=LIMIT)


def test_a_frame_beyond_pillows_own_bound_is_named_by_its_pixel_count(tmp_path):
    path = samples.png_video(tmp_path / "vast.mov", (14000, 14000), frames=1)
    with pytest.raises(MediaError, match=r"^Кадры видео слишком большие: 196 млн пикселей \(допустимо"):
        video.decode_video(path, **ARGS, max_pixels=LIMIT)


def test_frames_within_the_limit_decode_as_before(tmp_path):
    out = video.decode_video(samples.png_video(tmp_path / "ok.mov", (640, 480), frames=3), **ARGS,
                             max_pixels=640 * 480)
    assert len(out.frames) == 3 and out.frames[0].shape == (48, 64, 3)
    clip = video.decode_video(samples.video(tmp_path / "v.mp4", seconds=3, fps=10), **ARGS, max_pixels=LIMIT)
    assert len(clip.frames) == 3


def test_the_deadline_is_checked_while_the_demuxer_reads_other_streams(tmp_path, monkeypatch):
    # Two video frames, 100 000 tiny audio packets between them (~0.8 MB): before, the demuxer read them all in one
    # call with no check (5.8 s for the file). Now every read of the file (32 KB) checks: a clock that
    # moves 1 s per check passes a 20-s deadline at the 21st, in the middle of the audio.
    path = samples.audio_flood_mkv(tmp_path / "flood.mkv", seconds=2, packets_per_s=50_000)
    clock = _counting_clock(monkeypatch, step=1.0)
    with pytest.raises(JobTimeout):
        video.decode_video(path, **ARGS, deadline=clock.now + 20, time_limit_s=300)
    assert clock.reads == 21


def test_what_the_open_reads_to_learn_the_streams_is_bounded(tmp_path, monkeypatch):
    # FFmpeg keeps what it reads to learn the streams and works through it after a deadline has passed, where no
    # check can reach it: with its 5-MB default the whole of this 3.2-MB flood (400 000 audio packets; in CI a
    # worker spent 5.8 s with a 4-s limit). Now at most PROBE_BYTES of packets (~1 MB of this file).
    path = samples.audio_flood_mkv(tmp_path / "flood.mkv", seconds=8, packets_per_s=50_000)
    reads, at_open = [], []
    read, open_ = video._CheckedFile.read, video.av.open
    monkeypatch.setattr(video._CheckedFile, "read", lambda self, n: reads.append(n) or read(self, n))

    def counted_open(*args, **kwargs):
        try:
            return open_(*args, **kwargs)
        finally:
            at_open.append(len(reads))

    monkeypatch.setattr(video.av, "open", counted_open)
    out = video.decode_video(path, **ARGS)
    assert len(out.frames) == 2  # the file still decodes: its first and last frame
    assert at_open[0] * video.READ_CHUNK <= 1.3e6, f"{at_open[0]} reads of {video.READ_CHUNK} bytes"  # before: 100


class _StopAfter:
    """A threading.Event stand-in set after n reads: where the n-th check falls, the decoding must stop."""

    def __init__(self, n: int) -> None:
        self.n, self.reads = n, 0

    def is_set(self) -> bool:
        self.reads += 1
        return self.reads >= self.n


def test_a_stop_is_seen_at_the_next_read(tmp_path):
    path = samples.audio_flood_mkv(tmp_path / "flood.mkv", seconds=2, packets_per_s=50_000)
    stop = _StopAfter(15)
    with pytest.raises(video.Stopped):
        video.decode_video(path, **ARGS, stop=stop)
    assert stop.reads == 15


def test_a_stop_ends_a_long_decode_at_once(tmp_path):
    # One keyframe at 1280×720: every sample decodes hundreds of frames (seconds of work).
    path = samples.single_keyframe_video(tmp_path / "one-key.mp4", seconds=30, fps=30, size=(1280, 720))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(video.Stopped):
        video.decode_video(path, **{**ARGS, "longest_edge": 512}, stop=stop)
    assert time.monotonic() - t0 < 1.0
