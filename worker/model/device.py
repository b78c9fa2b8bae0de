"""Where and how the model runs: device, dtype, engine, image splitting, video frames. Pure choices with their
inputs spelled out, so each can be tested without a GPU."""

from __future__ import annotations

from pathlib import Path

from common.schemas import JobKind
from worker.model import openvino

CPU_VIDEO_FRAMES = 8  # the processor's 64 frames cost > 60 s of prefill on 2 CPU cores (docs/bench.md)
CUDA_MISSING = "MODEL_DEVICE=cuda, но GPU недоступен: модель запущена на CPU."


GPU_IGNORED = "MODEL_ENGINE={engine} работает только на CPU: на GPU модель запущена как обычно (torch)."
INT8_UNAVAILABLE = "MODEL_ENGINE=torch-int8 недоступен: {reason}. Модель запущена как обычно (torch)."


def resolve_engine(requested: str, device: str, openvino_installed: bool,
                   int8_missing: str | None) -> tuple[str, str | None]:
    """The engine to use and, where the request cannot be honoured, a warning. int8 and OpenVINO are CPU engines
    (fbgemm; OpenVINO's CPU plugin); OpenVINO needs its own venv; int8_missing says why fbgemm is absent, if it is."""
    if requested == "torch":
        return "torch", None
    if device != "cpu":
        return "torch", GPU_IGNORED.format(engine=requested)
    if requested in openvino.ENGINES:
        return (requested, None) if openvino_installed else ("torch", openvino.NOT_INSTALLED.format(engine=requested))
    if int8_missing is not None:
        return "torch", INT8_UNAVAILABLE.format(reason=int8_missing)
    return requested, None


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return "avx512_bf16" in cpuinfo or "amx_bf16" in cpuinfo


def resolve_device(requested: str, has_cuda: bool) -> tuple[str, str | None]:
    """The device to use and, where the request cannot be honoured, a warning."""
    if requested == "cuda" and not has_cuda:
        return "cpu", CUDA_MISSING
    if requested == "auto":
        return ("cuda" if has_cuda else "cpu"), None
    return requested, None


def resolve_dtype(device: str, requested: str, cuda_bf16: bool = False, cpu_bf16: bool = False) -> str:
    """A torch dtype name: bf16 on CUDA (fp16 where unsupported); on CPU bf16 only with fast bf16 kernels."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bfloat16" if cuda_bf16 else "float16"
    return "bfloat16" if cpu_bf16 else "float32"


def resolve_attention(requested: str, device: str, dtype: str, flash_installed: bool) -> str:
    """auto: FlashAttention-2 where it can run (CUDA, half precision, the flash_attn package), else sdpa."""
    if requested != "auto":
        return requested
    if device == "cuda" and dtype in ("bfloat16", "float16") and flash_installed:
        return "flash_attention_2"
    return "sdpa"


def flash_attn_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def image_splitting(mode: str, device: str, kind: JobKind) -> bool:
    """auto: always on GPU; on CPU only for OCR, where small text needs the tiles (13× the prefill)."""
    if mode != "auto":
        return mode == "on"
    return device == "cuda" or kind == JobKind.ocr


def video_frames(configured: int, processor_default: int | None, device: str) -> int:
    """VIDEO_MAX_FRAMES if set, else the processor's default, capped at CPU_VIDEO_FRAMES on the CPU."""
    if configured:
        return configured
    default = int(processor_default or 64)
    return default if device == "cuda" else min(default, CPU_VIDEO_FRAMES)


CPU_PROMPT_CACHE_MB = 1024  # the 2.2B model keeps ~196 KB per token in bf16: ~5 000 tokens of conversations
GPU_PROMPT_CACHE_MB = 4096


def prompt_cache_bytes(configured_mb: float | None, device: str, free_gpu_bytes: int | None = None) -> int:
    """PROMPT_CACHE_MB if set (0 turns the cache off); else 1 GB of RAM on the CPU, and on a GPU a quarter of
    the memory left free after loading the model, at most 4 GB (the cache lives in GPU memory there)."""
    if configured_mb is not None:
        return int(configured_mb * 1024 * 1024)
    if device != "cuda":
        return CPU_PROMPT_CACHE_MB * 1024 * 1024
    if free_gpu_bytes is None:
        import torch

        free_gpu_bytes, _ = torch.cuda.mem_get_info()
    return min(GPU_PROMPT_CACHE_MB * 1024 * 1024, free_gpu_bytes // 4)
