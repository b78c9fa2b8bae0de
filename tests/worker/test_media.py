import numpy as np
import pytest
from PIL import Image

from common.errors import MediaError
from scripts import samples
from worker import media, video


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
