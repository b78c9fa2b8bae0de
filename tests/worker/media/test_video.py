import time
from types import SimpleNamespace

import numpy as np
import pytest

from common.errors import JobTimeout, MediaError
from scripts import samples
from worker.media import video

ARGS = dict(target_fps=1.0, max_frames=8, max_seconds=600, longest_edge=64)


def test_sampling_matches_the_smolvlm2_rule():
    # 3 s at 10 fps, 1 fps target: round(1 * 3) = 3 frames, evenly spaced over all 30 frames.
    assert video.sample_indices(30, 10.0, 1.0, 64) == [0, 14, 29]
    # Capped by max_frames; long enough to skip one second at each end.
    idx = video.sample_indices(600 * 25, 25.0, 1.0, 8)
    assert len(idx) == 8 and idx[0] == 25 and idx[-1] == 600 * 25 - 25
    assert idx == sorted(set(idx))
    # Very short clip: at least one frame.
    assert video.sample_indices(3, 30.0, 1.0, 64) == [0]


def test_sampling_agrees_with_transformers():
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor
    from transformers.video_utils import VideoMetadata

    vp = SmolVLMVideoProcessor()
    for total, fps, max_frames in [(30, 10.0, 64), (15000, 25.0, 64), (15000, 25.0, 8), (95, 30.0, 64)]:
        meta = VideoMetadata(total_num_frames=total, fps=fps, duration=total / fps)
        expected = vp.sample_frames(meta, num_frames=max_frames, fps=1.0).tolist()
        assert video.sample_indices(total, fps, 1.0, max_frames) == expected


def test_decode_video_seeks_and_reports_real_timestamps(tmp_path):
    path = samples.video(tmp_path / "v.mp4", seconds=6, fps=10, size=(320, 240), gop=10)
    out = video.decode_video(path, target_fps=1.0, max_frames=64, max_seconds=60, longest_edge=64)
    assert len(out.frames) == len(out.timestamps) == len(out.indices) == 6
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in out.frames)  # scaled to the longest edge
    assert out.timestamps == sorted(out.timestamps) and out.timestamps[-1] > 4.5
    assert out.fps == pytest.approx(10.0) and out.duration == pytest.approx(6.0, abs=0.2)
    # The moving square is in a different place in every sampled frame.
    assert len({int(np.argmax(f[24, :, 0] > 200)) for f in out.frames}) > 1


def test_video_limits_and_bad_files(tmp_path):
    path = samples.video(tmp_path / "v.mp4", seconds=3, fps=10)
    with pytest.raises(MediaError, match="слишком длинное"):
        video.decode_video(path, target_fps=1, max_frames=8, max_seconds=2, longest_edge=64)
    with pytest.raises(MediaError, match="нет видеодорожки"):
        video.decode_video(samples.audio_only(tmp_path / "a.mp4"), target_fps=1, max_frames=8,
                           max_seconds=60, longest_edge=64)
    truncated = tmp_path / "t.mp4"
    truncated.write_bytes(path.read_bytes()[:300])
    text = tmp_path / "x.mp4"
    text.write_text("not a video at all")
    for bad in (truncated, text):
        with pytest.raises(MediaError, match="видео"):
            video.decode_video(bad, target_fps=1, max_frames=8, max_seconds=60, longest_edge=64)


def _counting_clock(monkeypatch, step: float = 0.0) -> SimpleNamespace:
    """video.time replaced by a clock that counts its reads (one per packet or frame when a deadline is set) and
    advances step seconds per read."""
    clock = SimpleNamespace(now=1000.0, reads=0)

    def read() -> float:
        clock.reads += 1
        clock.now += step
        return clock.now

    monkeypatch.setattr(video, "time", SimpleNamespace(time=read))
    return clock


def test_absurd_frame_rate_is_refused_before_decoding(tmp_path):
    # The poison is 590 s at 1000 fps with one keyframe (samples.single_keyframe_video's default): before
    # the fix every seek decoded from the start, ~1-2 minutes per job. 60 s of it is enough to show the refusal.
    path = samples.single_keyframe_video(tmp_path / "poison.mp4", seconds=60, fps=1000)
    t0 = time.perf_counter()
    with pytest.raises(MediaError, match="Слишком высокая частота кадров: 1\u00a0000 кадров/с") as err:
        video.decode_video(path, **ARGS)
    assert time.perf_counter() - t0 < 2.0
    assert err.value.message.endswith(
        "(допустимо не более 240). Перекодируйте видео с обычной частотой, например 30 кадров/с."
    )


def test_a_video_without_keyframes_costs_one_capped_seek(tmp_path, monkeypatch):
    # 590 s at 30 fps with a single keyframe: every seek lands on frame 0.
    path = samples.single_keyframe_video(tmp_path / "one-key.mp4", seconds=590, fps=30)
    clock = _counting_clock(monkeypatch)
    out = video.decode_video(path, **ARGS, deadline=2000.0, time_limit_s=300)
    # The probe gives up after PROBE_PACKETS; the first seek gives frame 0, the second stops at the cap, the other
    # six land on the same keyframe and stop at once (before the fix: ~50 000 frames decoded).
    assert clock.reads < video.PROBE_PACKETS + video.MAX_FRAMES_PER_SEEK + 50
    assert out.duration == pytest.approx(590, abs=1) and out.total_frames == 590 * 30
    assert out.timestamps == pytest.approx([0.0, (video.MAX_FRAMES_PER_SEEK - 1) / 30])  # honest, not the targets
    assert out.indices == [0, video.MAX_FRAMES_PER_SEEK - 1]


def test_deadline_is_checked_while_decoding(tmp_path, monkeypatch):
    path = samples.single_keyframe_video(tmp_path / "one-key.mp4", seconds=590, fps=30)
    monkeypatch.setattr(video, "MAX_FRAMES_PER_SEEK", 10**9)  # the old unbounded seeks
    clock = _counting_clock(monkeypatch, step=1 / 1024)
    with pytest.raises(JobTimeout, match=r"Превышено время обработки \(300 с\)"):
        video.decode_video(path, **ARGS, deadline=clock.now + 8.0, time_limit_s=300)
    assert clock.reads == 8 * 1024 + 1  # stopped at the first packet or frame past the deadline (mid-seek)
    # Without time_limit_s the message names the time that was left (6 s here).
    with pytest.raises(JobTimeout, match=r"\(6 с\)"):
        video.decode_video(path, **ARGS, deadline=clock.now + 6.0)
    # A real deadline already past: even a normal clip is refused at once.
    monkeypatch.undo()
    with pytest.raises(JobTimeout):
        video.decode_video(samples.video(tmp_path / "v.mp4"), **ARGS, deadline=time.time() - 1, time_limit_s=300)


def test_one_timestamp_spike_does_not_make_the_video_long(tmp_path):
    # The container says 1 000 000 s (before the fix: refused as «Видео слишком длинное: 1000000 с»).
    path = samples.timestamp_spike_mkv(tmp_path / "spike.mkv", seconds=3, fps=10, spike_s=1_000_000)
    out = video.decode_video(path, **ARGS)
    assert out.duration == pytest.approx(3.0, abs=0.05) and out.total_frames == 30
    assert len(out.frames) == 3 and max(out.timestamps) < 3.0
    with pytest.raises(MediaError, match=r"^Видео слишком длинное: 3 с при ограничении 2 с\.$"):
        video.decode_video(path, **{**ARGS, "max_seconds": 2})


def test_a_streamed_webm_without_duration_is_sampled_whole(tmp_path):
    # No duration in the header (a browser recording): before, the video counted as 0 s and gave a single frame.
    out = video.decode_video(samples.streamed_webm(tmp_path / "rec.webm", seconds=6, fps=10), **ARGS)
    assert out.duration == pytest.approx(6.0, abs=0.05) and out.total_frames == 60
    assert len(out.frames) == 6 and out.timestamps[-1] > 5


def test_raw_h264_is_named_as_such_not_corrupt(tmp_path):
    path = samples.raw_h264(tmp_path / "clip.mp4")
    with pytest.raises(MediaError) as err:
        video.decode_video(path, **ARGS)
    assert err.value.message == (
        "Это не видеофайл MP4/MKV/WebM, а «сырой» поток H.264 без контейнера (в нём нет отметок времени кадров). "
        "Перепакуйте его в MP4, например: ffmpeg -i in.h264 -c copy out.mp4"
    )


def test_a_frame_count_that_does_not_fit_the_duration_is_refused(tmp_path, monkeypatch):
    # Headers are normally consistent (mp4 derives its average frame rate from the frame count), so the real end of
    # the video is made shorter than the frame count allows: 300 frames in what plays as 1 s.
    path = samples.video(tmp_path / "v.mp4", seconds=10, fps=30, size=(64, 48))
    monkeypatch.setattr(video, "_duration", lambda *_: 1.0)
    with pytest.raises(MediaError) as err:
        video.decode_video(path, **ARGS)
    assert err.value.message == "Слишком много кадров: 300 за 1 с, то есть 300 кадров/с (допустимо не более 240)."
