"""One worker's code path on one device, in-process: worker.runtime.Runtime set up exactly as `python -m worker`
sets it up (setup: load, prompt-cache bound, warm-up), then jobs through Runtime.predict. Per job: time to the
first token (media decoding and preprocessing included), decode tokens per second after it, peak GPU memory
(torch.cuda.max_memory_allocated, reset before the job) and the prompt length."""

from __future__ import annotations

import gc
import time
from pathlib import Path

NEW_TOKENS = 64
QUESTION = {"image": "Describe this image.", "video": "Describe this video."}
REGION_BOX = (400, 300, 880, 660)  # inside the 1280×960 photo


# ---------------------------------------------------------------- device helpers (None off CUDA)


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sync() -> None:
    if cuda():
        import torch

        torch.cuda.synchronize()


def reset_peak() -> None:
    if cuda():
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gb() -> float | None:
    if not cuda():
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 1e9, 2)


def allocated_gb() -> float | None:
    if not cuda():
        return None
    import torch

    return round(torch.cuda.memory_allocated() / 1e9, 3)


def free_gpu() -> None:
    gc.collect()
    if cuda():
        import torch

        torch.cuda.empty_cache()


# ---------------------------------------------------------------- runtime and jobs


def runtime(model: Path, media_dir: Path, device: str, dtype: str = "auto", **settings):
    """A Runtime as the worker makes it (Runtime.setup: load + warm-up); returns (runtime, seconds)."""
    from common.settings import Settings
    from worker.runtime import Runtime

    s = Settings(_env_file=None, smolvlm2_model_id=str(model), model_device=device, model_dtype=dtype,
                 hf_hub_offline=True, max_new_tokens=NEW_TOKENS, media_dir=media_dir, results_dir=media_dir / "results",
                 job_time_limit=900, max_video_seconds=3600, **settings)
    rt = Runtime(s)
    t0 = time.perf_counter()
    if not rt.setup():
        raise RuntimeError(f"Runtime.setup failed: {rt.load_error}")
    return rt, round(time.perf_counter() - t0, 2)


def configure(rt, **update) -> None:
    """Change settings the Runtime reads per job (image splitting, video frames)."""
    rt.settings = rt.settings.model_copy(update=update)


def job(rt, req, path: Path) -> dict:
    sync()
    reset_peak()
    start = time.time()
    pred = rt.predict(req, path)
    sync()
    end = time.time()
    first = pred.first_token_at or end
    n = pred.generated_tokens
    return {"ttft_s": round(first - start, 3), "total_s": round(end - start, 3),
            "tokens_per_s": round((n - 1) / (end - first), 1) if n > 1 and end > first else None,
            "prompt_tokens": pred.prompt_tokens, "generated_tokens": n, "frames": len(pred.frames),
            "peak_gpu_gb": peak_gb()}


def requests(media: dict[str, Path]) -> dict[str, tuple[dict, object, Path]]:
    """name → (settings to apply, request, file): the job kinds the worker serves, image splitting off and on,
    an 8- and a 64-frame video."""
    from common.schemas import Box, ChatRequest, MediaKind, MediaRef, OcrRequest, RegionRequest

    image = MediaRef(path=media["image"].name, kind=MediaKind.image)
    video = MediaRef(path=media["video"].name, kind=MediaKind.video)
    text = MediaRef(path=media["text"].name, kind=MediaKind.image)
    x1, y1, x2, y2 = REGION_BOX
    return {
        "image": ({"image_splitting": "off"}, ChatRequest(media=image, question=QUESTION["image"]), media["image"]),
        "image_split": ({"image_splitting": "on"}, ChatRequest(media=image, question=QUESTION["image"]),
                        media["image"]),
        "ocr": ({"image_splitting": "auto"}, OcrRequest(media=text), media["text"]),
        "region": ({"image_splitting": "auto"}, RegionRequest(media=image, box=Box(x1=x1, y1=y1, x2=x2, y2=y2)),
                   media["image"]),
        "video8": ({"video_max_frames": 8}, ChatRequest(media=video, question=QUESTION["video"]), media["video"]),
        "video64": ({"video_max_frames": 64}, ChatRequest(media=video, question=QUESTION["video"]), media["video"]),
    }


def jobs(rt, media: dict[str, Path], names: list[str], deadline: float) -> dict:
    """Each job once short (new shapes: kernels chosen, allocator grown), then measured; the prompt cache off."""
    from worker.model.prompt_cache import PromptCache

    kept, rt.cache = rt.cache, PromptCache(0)
    base = rt.settings
    out: dict = {}
    try:
        for name, (update, req, path) in requests(media).items():
            if name not in names:
                continue
            if time.monotonic() > deadline:
                out[name] = {"skipped": "время вышло"}
                continue
            configure(rt, **update)
            rt.predict(req.model_copy(update={"max_new_tokens": 2}), path)
            out[name] = job(rt, req, path)
            rt.settings = base
    finally:
        rt.cache, rt.settings = kept, base
    return out


def kernel_names(rt, media: dict[str, Path]) -> list[str]:
    """The attention kernels one prefill (image, splitting on) launches, read with torch.profiler: tells which
    backend scaled_dot_product_attention picked (flash, memory-efficient, cuDNN or the math fallback)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from worker.model.prompt_cache import PromptCache

    update, req, path = requests(media)["image_split"]
    kept, base, rt.cache = rt.cache, rt.settings, PromptCache(0)
    configure(rt, **update)
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            rt.predict(req.model_copy(update={"max_new_tokens": 1}), path)
            torch.cuda.synchronize()
    finally:
        rt.cache, rt.settings = kept, base
    names = {e.key for e in prof.key_averages()}
    words = ("flash", "fmha", "attention", "attn", "efficient", "cudnn", "sdpa", "softmax")
    return sorted(n[:120] for n in names if any(w in n.lower() for w in words))[:20]


def conversations(rt, media: dict[str, Path], kinds: list[str]) -> dict:
    """The prompt cache (bench/prompt_cache.py's 3-turn conversation) without, then with it, same history:
    follow-up TTFT against the first turn, identical greedy tokens, the GPU memory the cache holds."""
    from bench.prompt_cache import _conversation
    from worker.model.prompt_cache import PromptCache

    capture = _capture()
    cache = rt.cache
    out: dict = {"cache_bound_gb": round(cache.max_bytes / 1e9, 2)}
    for media_kind in kinds:
        path = media["video" if media_kind == "video" else "image"]
        rt.cache = PromptCache(0)
        plain = _conversation(rt, media_kind, path, None, capture)
        rt.cache = cache
        reset_peak()
        before = allocated_gb()
        cached = _conversation(rt, media_kind, path, [t["answer"] for t in plain], capture)
        sync()
        entries, nbytes = cache.stats()
        first = min(cached[0]["ttft_s"], plain[0]["ttft_s"])  # both first turns are full prefills
        out[media_kind] = {
            "ttft_s": [t["ttft_s"] for t in cached], "uncached_ttft_s": [t["ttft_s"] for t in plain],
            "cached_tokens": [t["cached_tokens"] for t in cached],
            "prompt_tokens": [t["prompt_tokens"] for t in cached],
            "identical": [p["ids"] == c["ids"] for p, c in zip(plain, cached, strict=True)],
            "ratio": round(max(t["ttft_s"] for t in cached[1:]) / first, 3),
            "cache_entries": entries, "cache_gb": round(nbytes / 1e9, 3),
            "held_gpu_gb": round(allocated_gb() - before, 3) if before is not None else None,
            "peak_gpu_gb": peak_gb(),
        }
        cache.drop(conversation=f"bench-{media_kind}")
    rt.cache = cache
    return out


_CAPTURE = None


def _capture():
    """bench.prompt_cache.capture_generated, once per process (it patches the worker's generation module)."""
    global _CAPTURE
    if _CAPTURE is None:
        from bench.prompt_cache import capture_generated

        _CAPTURE = capture_generated()
    return _CAPTURE


def no_loop_guard() -> None:
    """Random weights repeat themselves: without the worker's loop guard every job decodes NEW_TOKENS tokens."""
    _capture()
