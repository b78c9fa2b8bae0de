"""Real-size cost on CPU: random-weight models with the real 256M / 500M / 2.2B dimensions (built offline by
scripts/build_test_model.py into bench/work/models/) run through the worker's Runtime in-process
(MODEL_DEVICE=cpu): a 1280×960 image question and a 16-frame video question; fp32 against bf16
(MODEL_DTYPE); image splitting on against off (IMAGE_SPLITTING).

The warm steady state of a running worker is measured (docs/bench.md, «Воспроизводимость»): the model's
files are read into the page cache first; each model and dtype runs in a fresh subprocess that loads and warms
up as the worker does (Runtime.setup with its warm_up); then each configuration runs: the short prefills
(image, splitting off) twice — the first job (a first question after the start, kept as first_prefill_s) and
the measured one; the long ones once (a new shape's first-run extra, oneDNN primitives, is milliseconds against
10-45 s; a full run stays short). The prompt cache is off (an identical second job would reuse the first).
Peak RSS: the jobs' (VmHWM reset before them) and the load's apart. Prefill = time to the first new token
(media decoding and preprocessing included); decode = tokens per second after it. Random weights repeat
themselves, so the worker's loop guard is switched off here to decode the same number of tokens every time.
Other processes busy on the machine make these figures worthless (two threads wait for each other): each row
records the load and the busy processes of its own child; run with --wait-idle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import WORK
from bench.machine import LoadMonitor, calibrate, peak_rss_mb, wait_idle
from bench.results import ROOT, Result

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
    def twice(self) -> bool:
        """Measured twice (first job, then the steady one): the short prefills, where a first run shows."""
        return self.media == "image" and self.splitting == "off"

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


def _job(rt, req, path) -> dict:
    start = time.time()
    pred = rt.predict(req, path)
    end = time.time()
    ft = pred.first_token_at or end
    n = pred.generated_tokens
    return {"prefill_s": round(ft - start, 3), "total_s": round(end - start, 2), "generated_tokens": n,
            "decode_tok_s": round((n - 1) / (end - ft), 2) if n > 1 and end > ft else None,
            "prompt_tokens": pred.prompt_tokens, "frames": len(pred.frames)}


def child(configs: list[Config]) -> list[dict]:
    """One model and dtype, several configurations: load and warm up as the worker does (Runtime.setup with its
    warm_up), then per configuration a first job (the first time this shape runs: what a first question costs)
    and the measured steady-state job, each with its own peak RSS."""
    import torch

    from common.schemas import ChatRequest, MediaKind, MediaRef
    from common.settings import Settings
    from worker import runtime as rt_mod
    from worker.model import generation

    generation.find_cycle = lambda *a, **k: None  # random weights loop; decode a fixed number of tokens
    warm_up, timings = rt_mod.Runtime.warm_up, {}

    def timed_warm_up(self) -> None:
        t0 = time.perf_counter()
        warm_up(self)
        timings["warm_up_s"] = round(time.perf_counter() - t0, 2)

    rt_mod.Runtime.warm_up = timed_warm_up
    image, video = media_files()
    first = configs[0]
    base = Settings(
        _env_file=None, smolvlm2_model_id=str(model_dir(first.size)), model_device="cpu", model_dtype=first.dtype,
        max_new_tokens=NEW_TOKENS[first.size], hf_hub_offline=True, media_dir=WORK / "media", job_time_limit=900,
        prompt_cache_mb=0,  # the same job twice: the second must compute everything again, as the first did
        # The warm-up then runs the unsplit image and the video only: with "auto" it also warms the OCR path
        # (13 tiles: ~1 min on the 2.2B), which the configurations below do not need to be warm.
        image_splitting="off",
    )
    rt = rt_mod.Runtime(base)
    t0 = time.perf_counter()
    assert rt.setup(), rt.load_error
    setup_s = time.perf_counter() - t0
    # Weights are memory-mapped and paged in on first use (the warm-up): the load's peak is taken after it.
    load = {"load_s": round(setup_s - timings.get("warm_up_s", 0), 2), "warm_up_s": timings.get("warm_up_s"),
            "load_peak_rss_gb": round(peak_rss_mb() / 1024, 2), "rss_after_load_gb": _rss_gb()}
    rows = []
    for cfg in configs:
        rt.settings = base.model_copy(update={"image_splitting": cfg.splitting, "video_max_frames": cfg.frames})
        path, kind = (video, MediaKind.video) if cfg.media == "video" else (image, MediaKind.image)
        question = "Describe this video." if cfg.media == "video" else "Describe this image."
        req = ChatRequest(media=MediaRef(path=path.name, kind=kind), question=question)
        _reset_peak()
        first_job = _job(rt, req, path)
        # A long prefill is not changed by the first-time cost of a shape (oneDNN primitives: milliseconds):
        # only the short ones run twice, so that a full run stays short.
        steady = _job(rt, req, path) if cfg.twice else first_job
        job_peak = _rss_gb("VmHWM")
        rows.append({
            "config": cfg.__dict__, **load, **steady, "jobs": 2 if cfg.twice else 1,
            "first_prefill_s": first_job["prefill_s"], "first_decode_tok_s": first_job["decode_tok_s"],
            "job_peak_rss_gb": job_peak, "peak_rss_gb": max(job_peak, load["load_peak_rss_gb"]),
            "dtype_loaded": rt.dtype_name, "torch_threads": torch.get_num_threads(),
        })
    return rows


# ---------------------------------------------------------------- parent side


def warm_page_cache(folder: Path) -> float:
    """Read the model's files once, so that every child maps them from memory (the steady state of a running
    worker), not from disk; seconds taken."""
    t0 = time.perf_counter()
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass
    return round(time.perf_counter() - t0, 2)


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
    metas = []
    for (size, dtype), group in groups.items():
        wait_idle()
        preread = warm_page_cache(model_dir(size))
        calib = calibrate()
        print(f"  {size} {dtype}: {len(group)} configurations …", file=sys.stderr, flush=True)
        with LoadMonitor() as mon:
            got = _run_child(group)
        for r in got:
            r["page_cache_preread_s"] = preread
        rows += got
        metas += [{**mon.meta(), "calib": calib, "torch_threads": r["torch_threads"]} for r in got]
    results = [
        Result(f"CPU {Config(**r['config']).label}: prefill", r["prefill_s"], "с", "", None,
               f"{r['decode_tok_s']} ток/с; {r['prompt_tokens']} ток. запроса; "
               + (f"первое задание {r['first_prefill_s']} с, {r['first_decode_tok_s']} ток/с; " if r["jobs"] > 1
                  else "одно задание после прогрева; ")
               + f"пик RSS {r['peak_rss_gb']} ГБ "
               f"(задание {r['job_peak_rss_gb']}); загрузка {r['load_s']} с + прогрев {r['warm_up_s']} с",
               NAME, r, meta)
        for r, meta in zip(rows, metas, strict=True)
    ]
    if skipped:
        results.append(Result(f"CPU {', '.join(skipped)}: не запускалось", None, "", "", None,
                              "мало памяти или места на диске", NAME))
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child([Config(**c) for c in json.loads(sys.argv[2])])))
    else:
        from bench.harness import standalone

        standalone(run)
