"""worker.model.device: where and how the model runs, decided from explicit inputs (no GPU needed)."""

import pytest

from worker.model import device, openvino, quantize


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


def test_attention_choice():
    # auto: FlashAttention-2 only where it can run (CUDA, half precision, the package installed); sdpa otherwise.
    assert device.resolve_attention("auto", "cuda", "bfloat16", flash_installed=True) == "flash_attention_2"
    assert device.resolve_attention("auto", "cuda", "float16", flash_installed=True) == "flash_attention_2"
    assert device.resolve_attention("auto", "cuda", "float32", flash_installed=True) == "sdpa"
    assert device.resolve_attention("auto", "cuda", "bfloat16", flash_installed=False) == "sdpa"
    assert device.resolve_attention("auto", "cpu", "bfloat16", flash_installed=True) == "sdpa"
    assert device.resolve_attention("eager", "cuda", "bfloat16", flash_installed=True) == "eager"


def test_unavailable_attention_falls_back_to_sdpa(test_model, tmp_path, caplog):
    """ATTN_IMPLEMENTATION=flash_attention_2 where flash_attn is missing (as here): the worker still loads, with sdpa
    and a warning, instead of reporting the model as unavailable."""
    from common.settings import Settings
    from worker.runtime import Runtime

    assert not device.flash_attn_installed()
    rt = Runtime(Settings(_env_file=None, smolvlm2_model_id=str(test_model), model_device="cpu", hf_hub_offline=True,
                          attn_implementation="flash_attention_2", media_dir=tmp_path, results_dir=tmp_path))
    assert rt.setup(), rt.load_error
    assert rt.attention == "sdpa" and rt.model.config.text_config._attn_implementation == "sdpa"
    assert any("flash_attention_2 unavailable" in r.getMessage() for r in caplog.records)


def test_engine_choice():
    assert device.resolve_engine("torch", "cpu", False, None) == ("torch", None)
    assert device.resolve_engine("torch-int8", "cpu", False, None) == ("torch-int8", None)
    assert device.resolve_engine("openvino-int4", "cpu", True, None) == ("openvino-int4", None)
    for engine in ("torch-int8", "openvino-int4"):  # fbgemm and OpenVINO's plugin are CPU kernels
        got, warning = device.resolve_engine(engine, "cuda", True, None)
        assert got == "torch" and warning == device.GPU_IGNORED.format(engine=engine)
        assert f"MODEL_ENGINE={engine} работает только на CPU" in warning
    got, warning = device.resolve_engine("torch-int8", "cpu", True, "нет ядер")
    assert got == "torch" and warning == device.INT8_UNAVAILABLE.format(reason="нет ядер")


def test_openvino_outside_its_venv_falls_back_to_torch_saying_where_to_run_it():
    # This venv (the torch worker's) has no optimum-intel: the OpenVINO worker runs from .venv-ov or its image.
    assert not openvino.installed() and quantize.supported() is None
    engine, warning = device.resolve_engine("openvino-int8", "cpu", openvino.installed(), quantize.supported())
    assert engine == "torch" and warning == openvino.NOT_INSTALLED.format(engine="openvino-int8")
    assert "нет OpenVINO" in warning and "docs/engines.md" in warning
