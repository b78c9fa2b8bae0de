"""worker.device: where and how the model runs, decided from explicit inputs (no GPU needed)."""

import pytest

from worker import device


@pytest.mark.parametrize(
    ("requested", "has_cuda", "expected", "warns"),
    [("auto", True, "cuda", False), ("auto", False, "cpu", False), ("cuda", True, "cuda", False),
     ("cuda", False, "cpu", True), ("cpu", True, "cpu", False)],
)
def test_device_choice(requested, has_cuda, expected, warns):
    chosen, warning = device.resolve_device(requested, has_cuda)
    assert chosen == expected
    assert (warning is not None) == warns
    if warns:
        assert warning == device.CUDA_MISSING and "GPU недоступен" in warning


def test_dtype_choice():
    assert device.resolve_dtype("cuda", "auto", cuda_bf16=True) == "bfloat16"
    assert device.resolve_dtype("cuda", "auto", cuda_bf16=False) == "float16"
    assert device.resolve_dtype("cpu", "auto", cpu_bf16=True) == "bfloat16"
    assert device.resolve_dtype("cpu", "auto", cpu_bf16=False) == "float32"
    assert device.resolve_dtype("cpu", "float16", cpu_bf16=True) == "float16"  # an explicit choice wins


def test_fast_bf16_is_read_from_the_cpu_flags():
    assert device.cpu_has_fast_bf16("flags : fpu avx2 avx512f avx512_bf16")
    assert device.cpu_has_fast_bf16("flags : amx_bf16 amx_tile")
    assert not device.cpu_has_fast_bf16("flags : fpu avx2 avx512f")


def test_image_splitting_policy():
    assert device.image_splitting("auto", "cuda", "chat") and device.image_splitting("auto", "cuda", "region")
    assert device.image_splitting("auto", "cpu", "ocr")  # small text needs the tiles
    assert not device.image_splitting("auto", "cpu", "chat") and not device.image_splitting("auto", "cpu", "region")
    assert device.image_splitting("on", "cpu", "chat") and not device.image_splitting("off", "cuda", "ocr")


def test_video_frame_cap():
    assert device.video_frames(0, 64, "cpu") == device.CPU_VIDEO_FRAMES == 8
    assert device.video_frames(0, 64, "cuda") == 64
    assert device.video_frames(0, 4, "cpu") == 4  # a processor asking fewer keeps its number
    assert device.video_frames(0, None, "cuda") == 64
    assert device.video_frames(16, 64, "cpu") == 16  # VIDEO_MAX_FRAMES wins


def test_prompt_cache_budget():
    mb = 1024 * 1024
    assert device.prompt_cache_bytes(None, "cpu") == 1024 * mb
    assert device.prompt_cache_bytes(0, "cpu") == 0  # PROMPT_CACHE_MB=0: off
    assert device.prompt_cache_bytes(256, "cuda", free_gpu_bytes=1) == 256 * mb
    assert device.prompt_cache_bytes(None, "cuda", free_gpu_bytes=8000 * mb) == 2000 * mb  # a quarter of free
    assert device.prompt_cache_bytes(None, "cuda", free_gpu_bytes=80_000 * mb) == 4096 * mb  # capped
