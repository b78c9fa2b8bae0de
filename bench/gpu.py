"""GPU: the real-size 2.2B random-weight model on CUDA through the worker's Runtime (dtype auto → bf16, the
processor's default of up to 64 video frames, image splitting auto → on): time to the first token,
tokens per second and peak GPU memory (torch.cuda.max_memory_allocated) for a 64-frame video question.
Published figure for comparison: 5.2 GB of GPU memory for 2.2B video inference (the model card).
Then the prompt cache on CUDA (bench/prompt_cache.py's 3-turn conversation, without and with the cache, the
same history): follow-up TTFT against the first turn, the GPU memory the cache holds (its default bound on a
GPU: a quarter of the memory free after loading, at most 4 GB) and the peak during the cached turns.

    python -m bench.gpu            # exits with status 2 and a clear message when CUDA is absent

Needs ~11 GB of RAM the first time (the 2.2B is built in bench/work/models/, initialised in fp32)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import ROOT, Result

NAME = "gpu"
PUBLISHED_GB = 5.2
NEW_TOKENS = 32
CACHE_TARGET = {"image": 0.20, "video": 0.10}  # follow-up TTFT / first-turn TTFT (as on the CPU)
NO_CUDA = "CUDA недоступна (нет GPU или драйвера): измерение на GPU не запускалось."


def measure() -> dict:
    import torch

    from bench.prompt_cache import _conversation, capture_generated
    from bench.real_size import ensure_model, media_files
    from bench.video_sampling import long_video
    from common.schemas import ChatRequest, MediaKind, MediaRef
    from common.settings import Settings
    from worker import runtime as rt_mod
    from worker.prompt_cache import PromptCache

    Capture = capture_generated()
    model, video = ensure_model("2.2B"), long_video()
    image, _ = media_files()
    settings = Settings(_env_file=None, smolvlm2_model_id=str(model), model_device="cuda", hf_hub_offline=True,
                        max_new_tokens=NEW_TOKENS, media_dir=video.parent, job_time_limit=900,
                        max_video_seconds=3600)
    rt = rt_mod.Runtime(settings)
    t0 = time.perf_counter()
    assert rt.setup(), rt.load_error
    load_s = time.perf_counter() - t0
    cache = rt.cache  # the default bound on a GPU: a quarter of the free memory after loading, at most 4 GB
    rt.cache = PromptCache(0)  # off for the single-question figures: the same question twice would hit it
    req = ChatRequest(media=MediaRef(path=video.name, kind=MediaKind.video), question="Describe this video.")
    rt.predict(req.model_copy(update={"max_new_tokens": 2}), video)  # warm-up (CUDA kernels, allocator)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.time()
    pred = rt.predict(req, video, started_at=start)
    torch.cuda.synchronize()
    end = time.time()
    first = pred.first_token_at or end
    out = {
        "device": torch.cuda.get_device_name(0), "dtype": rt.dtype_name, "load_s": round(load_s, 2),
        "frames": len(pred.frames), "prompt_tokens": pred.prompt_tokens, "generated_tokens": pred.generated_tokens,
        "ttft_s": round(first - start, 3),
        "tokens_per_s": round((pred.generated_tokens - 1) / (end - first), 1) if end > first else None,
        "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2),
        "weights_gb": round(sum(p.numel() * p.element_size() for p in rt.model.parameters()) / 1e9, 2),
        "cache_bound_gb": round(cache.max_bytes / 1e9, 2), "cache": {},
    }
    # The prompt cache: 3 turns without it, then the same 3 turns (same history) with it.
    for media, path in (("video", video), ("image", image)):
        rt.cache = PromptCache(0)
        plain = _conversation(rt, media, path, None, Capture)
        rt.cache = cache
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        cached = _conversation(rt, media, path, [t["answer"] for t in plain], Capture)
        torch.cuda.synchronize()
        entries, nbytes = cache.stats()
        out["cache"][media] = {
            "ttft_s": [t["ttft_s"] for t in cached], "uncached_ttft_s": [t["ttft_s"] for t in plain],
            "cached_tokens": [t["cached_tokens"] for t in cached],
            "prompt_tokens": [t["prompt_tokens"] for t in cached],
            "identical": [p["ids"] == c["ids"] for p, c in zip(plain, cached, strict=True)],
            # The first turn is a full prefill in both runs: the smaller of the two is the reference.
            "ratio": round(max(t["ttft_s"] for t in cached[1:]) / min(cached[0]["ttft_s"], plain[0]["ttft_s"]), 3),
            "cache_entries": entries, "cache_gb": round(nbytes / 1e9, 3),
            "held_gpu_gb": round((torch.cuda.memory_allocated() - before) / 1e9, 3),
            "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2),
        }
        cache.drop(conversation=f"bench-{media}")
    return out


def run(quick: bool = False) -> list[Result]:
    """From `python -m bench`: run measure() in a subprocess where CUDA exists, else record why not."""
    import torch

    target = f"≈ {PUBLISHED_GB} ГБ (опубликовано)"
    if not torch.cuda.is_available():
        return [Result("GPU: 2.2B, видео 64 кадра, пик памяти GPU", None, "ГБ", target, None,
                       f"не запускалось (GPU не выделен); опубликовано {PUBLISHED_GB} ГБ; "
                       "скрипт: python -m bench.gpu", NAME)]
    out = subprocess.run([sys.executable, "-m", "bench.gpu"], cwd=ROOT, capture_output=True, text=True,
                         timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"python -m bench.gpu failed:\n{out.stderr[-3000:]}")
    return rows(json.loads(out.stdout.strip().splitlines()[-1]))


def rows(r: dict) -> list[Result]:
    """The table's rows from measure()'s figures."""
    target = f"≈ {PUBLISHED_GB} ГБ (опубликовано)"
    gb = r["peak_gpu_gb"]
    out = [
        Result("GPU: 2.2B, видео 64 кадра, пик памяти GPU", gb, "ГБ", target, gb <= PUBLISHED_GB * 1.15,
               f"{r['device']}, {r['dtype']}; веса {r['weights_gb']} ГБ; {r['frames']} кадров", NAME, r),
        Result("GPU: 2.2B, видео 64 кадра, время до первого токена", r["ttft_s"], "с", "", None,
               f"{r['tokens_per_s']} ток/с; {r['prompt_tokens']} ток. запроса", NAME),
    ]
    for media, c in r["cache"].items():
        what = "видео 64 кадра" if media == "video" else "фото, разбиение on"
        same = all(c["identical"])
        out.append(Result(
            f"GPU: кэш промптов 2.2B, {what}: TTFT уточнения / первого хода", c["ratio"], "×",
            f"≤ {CACHE_TARGET[media]:.2f}", c["ratio"] <= CACHE_TARGET[media],
            f"ходы {' / '.join(f'{x:.3f}' for x in c['ttft_s'])} с (без кэша "
            f"{' / '.join(f'{x:.3f}' for x in c['uncached_ttft_s'])}); из кэша {c['cached_tokens']} ток.; "
            f"кэш {c['cache_gb']} ГБ памяти GPU (граница {r['cache_bound_gb']} ГБ), пик {c['peak_gpu_gb']} ГБ; "
            f"токены {'совпадают' if same else 'расходятся'}", NAME))
    return out


def main() -> int:
    try:
        import torch
    except ImportError:
        print(NO_CUDA + " (torch не установлен)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    print(json.dumps(measure(), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
