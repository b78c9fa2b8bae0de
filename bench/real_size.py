"""Real-size cost on CPU: random-weight models with the real 256M / 500M / 2.2B dimensions (built offline by
scripts/build_test_model.py into bench/work/models/) run through the worker's Runtime in-process
(MODEL_DEVICE=cpu): a 1280×960 image question and a 16-frame video question; fp32 against bf16
(MODEL_DTYPE); image splitting on against off (IMAGE_SPLITTING).

Each model and dtype runs in a fresh subprocess: load, one warm-up job (a small image, 2 tokens), then the
measured jobs, each with its own peak RSS (VmHWM, reset before the job; the load's peak is kept apart).
Prefill = time to the first new token (media decoding and preprocessing included); decode = tokens per
second after it. Random weights repeat themselves, so the worker's loop guard is switched off here to decode
the same number of tokens every time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, WORK, Result, peak_rss_mb, wait_idle

NAME = "real_size"
MODELS = WORK / "models"
NEW_TOKENS = {"256M": 16, "500M": 16, "2.2B": 8}  # the 2.2B decodes < 3 tokens/s on 2 cores
BUILD = {"256M": "float32", "500M": "float32", "2.2B": "bfloat16"}  # the 2.2B in bf16: half the RAM and disk


@dataclass(frozen=True)
class Config:
    size: str
    dtype: str  # float32 | bfloat16
    media: str  # image | video
    splitting: str = "off"  # image only
    frames: int = 16  # video only

    @property
    def label(self) -> str:
        dt = "fp32" if self.dtype == "float32" else "bf16"
        what = f"видео {self.frames} кадров" if self.media == "video" else f"разбиение {self.splitting}"
        return f"{self.size} {dt}, {what}"


FULL = [
    Config("256M", "float32", "image", "off"), Config("256M", "bfloat16", "image", "off"),
    Config("256M", "float32", "image", "on"), Config("256M", "bfloat16", "image", "on"),
    Config("256M", "bfloat16", "video"),
    Config("256M", "bfloat16", "video", frames=8),
    Config("500M", "float32", "image", "off"), Config("500M", "bfloat16", "image", "off"),
    Config("500M", "bfloat16", "image", "on"), Config("500M", "bfloat16", "video"),
    Config("2.2B", "bfloat16", "image", "off"), Config("2.2B", "bfloat16", "image", "on"),
    Config("2.2B", "bfloat16", "video", frames=8),
]
QUICK = [
    Config("256M", "float32", "image", "off"), Config("256M", "bfloat16", "image", "off"),
    Config("256M", "bfloat16", "video", frames=8),
]


def model_dir(size: str) -> Path:
    return MODELS / f"{size}-{BUILD[size]}"


def ensure_model(size: str) -> Path:
    out = model_dir(size)
    if not (out / "build_info.json").exists():
        print(f"  building the {size} model ({BUILD[size]}) into {out} …", file=sys.stderr)
    subprocess.run([sys.executable, "scripts/build_test_model.py", str(out), "--size", size, "--dtype", BUILD[size]],
                   cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
    return out


def media_files() -> tuple[Path, Path]:
    from scripts import samples

    folder = WORK / "media"
    folder.mkdir(parents=True, exist_ok=True)
    image, video = folder / "photo-1280x960.png", folder / "clip-30s-720p.mp4"
    if not image.exists():
        samples.scene_image(image, (1280, 960))
    if not video.exists():
        samples.video(video, seconds=30, fps=25, size=(1280, 720), gop=50)
    return image, video


# ---------------------------------------------------------------- child side


def _rss_gb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 2**20, 2)
    return 0.0


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux ≥ 4.0)
    except OSError:
        pass


def child(configs: list[Config]) -> list[dict]:
    """One model and dtype, several jobs: load once, warm up, then each configuration with its own peak RSS."""
    from common.schemas import ChatRequest, MediaKind, MediaRef
    from common.settings import Settings
    from scripts import samples
    from worker import runtime as rt_mod

    rt_mod.find_cycle = lambda *a, **k: None  # random weights loop; decode a fixed number of tokens
    image, video = media_files()
    first = configs[0]
    base = Settings(
        _env_file=None, smolvlm2_model_id=str(model_dir(first.size)), model_device="cpu", model_dtype=first.dtype,
        max_new_tokens=NEW_TOKENS[first.size], hf_hub_offline=True, media_dir=WORK / "media", job_time_limit=900,
    )
    rt = rt_mod.Runtime(base)
    t0 = time.perf_counter()
    assert rt.setup(), rt.load_error
    load = {"load_s": round(time.perf_counter() - t0, 2)}
    small = WORK / "media" / "warmup-64.png"
    if not small.exists():
        samples.scene_image(small, (64, 48))
    rt.predict(ChatRequest(media=MediaRef(path=small.name, kind=MediaKind.image), question="Hi", max_new_tokens=2),
               small)
    # Weights are memory-mapped and paged in on first use: the load's peak is taken after the warm-up job.
    load.update(load_peak_rss_gb=round(peak_rss_mb() / 1024, 2), rss_after_load_gb=_rss_gb())
    rows = []
    for cfg in configs:
        rt.settings = base.model_copy(update={"image_splitting": cfg.splitting, "video_max_frames": cfg.frames})
        path, kind = (video, MediaKind.video) if cfg.media == "video" else (image, MediaKind.image)
        question = "Describe this video." if cfg.media == "video" else "Describe this image."
        req = ChatRequest(media=MediaRef(path=path.name, kind=kind), question=question)
        _reset_peak()
        start = time.time()
        pred = rt.predict(req, path, started_at=start)
        end = time.time()
        ft = pred.first_token_at or end
        n = pred.generated_tokens
        job_peak = _rss_gb("VmHWM")
        rows.append({
            "config": cfg.__dict__, **load, "prefill_s": round(ft - start, 3),
            "decode_tok_s": round((n - 1) / (end - ft), 2) if n > 1 and end > ft else None,
            "prompt_tokens": pred.prompt_tokens, "generated_tokens": n, "frames": len(pred.frames),
            "total_s": round(end - start, 2), "job_peak_rss_gb": job_peak,
            "peak_rss_gb": max(job_peak, load["load_peak_rss_gb"]),
            "dtype_loaded": rt.dtype_name, "torch_threads": __import__("torch").get_num_threads(),
        })
    return rows


# ---------------------------------------------------------------- parent side


def _run_child(configs: list[Config]) -> list[dict]:
    arg = json.dumps([c.__dict__ for c in configs])
    out = subprocess.run([sys.executable, "-m", "bench.real_size", "--child", arg], cwd=ROOT, capture_output=True,
                         text=True, timeout=1200, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{configs[0].size} {configs[0].dtype} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _enough_memory(size: str) -> bool:
    if size != "2.2B":
        return True
    import psutil

    # Building the 2.2B initialises it in fp32 (~9 GB) before the bf16 cast; running it in bf16 needs ~5 GB.
    need = 5 if (model_dir(size) / "build_info.json").exists() else 11
    free_disk = shutil.disk_usage(WORK).free / 2**30
    return psutil.virtual_memory().available / 2**30 > need + 2 and free_disk > 8


def run(quick: bool = False) -> list[Result]:
    media_files()
    configs, rows, skipped = (QUICK if quick else FULL), [], []
    for size in dict.fromkeys(c.size for c in configs):
        if not _enough_memory(size):
            skipped.append(size)
            continue
        ensure_model(size)
    groups: dict[tuple[str, str], list[Config]] = {}
    for cfg in configs:
        if cfg.size not in skipped:
            groups.setdefault((cfg.size, cfg.dtype), []).append(cfg)
    for (size, dtype), group in groups.items():
        wait_idle()
        print(f"  {size} {dtype}: {len(group)} jobs …", file=sys.stderr, flush=True)
        rows += _run_child(group)
    results = [
        Result(f"CPU {Config(**r['config']).label}: prefill", r["prefill_s"], "с", "", None,
               f"{r['decode_tok_s']} ток/с; {r['prompt_tokens']} ток. запроса; пик RSS {r['peak_rss_gb']} ГБ "
               f"(задание {r['job_peak_rss_gb']}); загрузка {r['load_s']} с", NAME, r)
        for r in rows
    ]
    if skipped:
        results.append(Result(f"CPU {', '.join(skipped)}: не запускалось", None, "", "", None,
                              "мало памяти или места на диске", NAME))
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child([Config(**c) for c in json.loads(sys.argv[2])])))
    else:
        from bench.common import standalone

        standalone(run)
