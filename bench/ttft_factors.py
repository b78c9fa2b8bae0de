"""Why one CPU figure can be twice another: the 2.2B (bf16, image 1280×960, splitting off) through the worker's
Runtime in fresh processes, one factor changed at a time — page cache (cold: `echo 3 >
/proc/sys/vm/drop_caches` before the process, needs root; warm: the weight files read first), the warm-up
(none / the old bench's tiny 64×48 image / Runtime.warm_up), torch threads (1 / 2), the oneDNN switch for
the decode steps (worker/model/generation.py), a competing busy process (one core spinning), and the weights copied
out of the memory-mapped safetensors file (a bf16 checkpoint loaded in bf16 is used from the file as is).

Each configuration: a fresh subprocess, model load, the warm-up, then three identical measured jobs (the first
one shows what a first question costs, the others the steady state), with the machine's speed
(bench.machine.calibrate) before and after, and the other processes busy meanwhile; a configuration that other
processes disturbed is run again (--retries). Not part of `python -m bench` (~10 minutes on 2 cores on an idle
machine); docs/bench.md («Воспроизводимость») quotes it; rows are appended to bench/work/ttft_factors.jsonl.

    python -m bench.ttft_factors [--only NAME ...] [--size 2.2B] [--tokens 16]"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import machine
from bench.harness import WORK
from bench.machine import LoadMonitor, load_avg
from bench.results import ROOT

BASE = {"cache": "warm", "warmup": "runtime", "threads": 2, "onednn_switch": True, "busy": False}
CONFIGS = {
    "base": {},
    "cold_cache": {"cache": "cold"},
    "no_warmup": {"warmup": "none"},
    "tiny_warmup": {"warmup": "tiny"},
    "threads_1": {"threads": 1},
    "no_onednn_switch": {"onednn_switch": False},
    "busy": {"busy": True},
    "old_bench": {"warmup": "tiny", "busy": True},  # what the recorded figures most likely saw
    "copied_weights": {"copy_weights": True},  # weights in anonymous memory, not the mmapped file
}


def _copy_weights(model) -> int:
    """Move every parameter out of the memory-mapped safetensors file into the process's own memory (what a
    dtype conversion at load does anyway); returns how many were file-backed before."""
    import torch

    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if ".safetensors" in line:
            a, b = (int(x, 16) for x in line.split()[0].split("-"))
            ranges.append((a, b))
    mapped = 0
    with torch.no_grad():
        for p in model.parameters():
            if any(a <= p.data_ptr() < b for a, b in ranges):
                mapped += 1
            p.data = p.data.clone()
    return mapped


def child(cfg: dict) -> dict:
    import torch

    from bench.real_size import media_files, model_dir
    from common.schemas import ChatRequest, MediaKind, MediaRef
    from common.settings import Settings
    from scripts import samples
    from worker import runtime as rt_mod
    from worker.model import generation

    rt_mod.find_cycle = lambda *a, **k: None
    generation.find_cycle = lambda *a, **k: None
    if not cfg["onednn_switch"]:
        real = generation.TextSoFar
        generation.TextSoFar = lambda tok, on_text=None, on_first=None: real(tok, on_text, None)
    warm_up = rt_mod.Runtime.warm_up
    if cfg["warmup"] != "runtime":
        rt_mod.Runtime.warm_up = lambda self: None
    elif cfg.get("copy_weights"):
        def copied_warm_up(self) -> None:
            _copy_weights(self.model)
            warm_up(self)

        rt_mod.Runtime.warm_up = copied_warm_up
    image, _ = media_files()
    s = Settings(_env_file=None, smolvlm2_model_id=str(model_dir(cfg["size"])), model_device="cpu",
                 model_dtype="bfloat16", image_splitting="off", torch_threads=cfg["threads"],
                 max_new_tokens=cfg["tokens"], prompt_cache_mb=0, hf_hub_offline=True, media_dir=WORK / "media",
                 job_time_limit=900)
    rt = rt_mod.Runtime(s)  # prompt cache off: the three identical jobs would otherwise reuse the first one's
    t0 = time.perf_counter()
    assert rt.setup(), rt.load_error
    out = {"setup_s": round(time.perf_counter() - t0, 2), "threads": torch.get_num_threads()}
    if cfg["warmup"] == "tiny":  # the old bench: one tiny image, 2 tokens
        small = WORK / "media" / "warmup-64.png"
        if not small.exists():
            samples.scene_image(small, (64, 48))
        t0 = time.perf_counter()
        rt.predict(ChatRequest(media=MediaRef(path=small.name, kind=MediaKind.image), question="Hi",
                               max_new_tokens=2), small)
        out["tiny_warmup_s"] = round(time.perf_counter() - t0, 2)
    req = ChatRequest(media=MediaRef(path=image.name, kind=MediaKind.image), question="Describe this image.")
    jobs = []
    for _ in range(3):
        stamps: list[float] = []
        start = time.time()
        pred = rt.predict(req, image, on_text=lambda _t, _n, s=stamps: s.append(time.time()))
        end = time.time()
        ft = pred.first_token_at
        steps = [round(b - a, 3) for a, b in itertools.pairwise(stamps)]
        tok_s = round((pred.generated_tokens - 1) / (end - ft), 2)
        jobs.append({"ttft_s": round(ft - start, 3), "decode_tok_s": tok_s,
                     "tokens": pred.generated_tokens, "prompt_tokens": pred.prompt_tokens,
                     "first_steps_s": steps[:3], "last_steps_s": steps[-3:]})
    out["jobs"] = jobs
    return out


def _read_all(folder: Path) -> None:
    for f in folder.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def drop_page_cache() -> bool:
    try:
        subprocess.run(["sync"], check=False)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run_one(name: str, cfg: dict) -> dict:
    from bench.real_size import model_dir

    folder = model_dir(cfg["size"])
    note = {}
    if cfg["cache"] == "cold":
        note["dropped_page_cache"] = drop_page_cache()
    else:
        t0 = time.perf_counter()
        _read_all(folder)
        note["preread_s"] = round(time.perf_counter() - t0, 1)
    burner = None
    if cfg["busy"]:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    calib0 = machine.calibrate()
    la0 = load_avg()
    try:
        with LoadMonitor() as mon:
            out = subprocess.run([sys.executable, "-m", "bench.ttft_factors", "--child", json.dumps(cfg)], cwd=ROOT,
                                 capture_output=True, text=True, timeout=1200,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1"})
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    row = {"name": name, "config": cfg, **note, **json.loads(out.stdout.strip().splitlines()[-1]),
           "load_avg_before": la0, "load_avg_after": load_avg(), "other_busy": mon.report(),
           "busy_cores": mon.busy_cores(), "calib_before": calib0, "calib_after": machine.calibrate()}
    return row


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ttft_factors")
    p.add_argument("--child")
    p.add_argument("--only", nargs="+", choices=list(CONFIGS))
    p.add_argument("--size", default="2.2B")
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--out", type=Path, default=WORK / "ttft_factors.jsonl")
    p.add_argument("--retries", type=int, default=3, help="run a configuration again while others were busy in it")
    p.add_argument("--wait-idle", type=float, default=600, metavar="S",
                   help="before each configuration wait up to S s until no other process keeps a core busy")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    from bench.real_size import ensure_model

    ensure_model(args.size)
    machine.WAIT_IDLE_S = args.wait_idle
    for name in args.only or list(CONFIGS):
        cfg = {**BASE, **CONFIGS[name], "size": args.size, "tokens": args.tokens}
        for attempt in range(args.retries + 1):
            machine.wait_idle()
            row = {**run_one(name, cfg), "attempt": attempt}
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            if row["busy_cores"] < 0.1:
                break
        j = row["jobs"]
        print(f"{name:18s} setup {row['setup_s']:6.1f} s | TTFT " + " ".join(f"{x['ttft_s']:5.2f}" for x in j)
              + " s | decode " + " ".join(f"{x['decode_tok_s']:5.2f}" for x in j)
              + f" tok/s | load {row['load_avg_before'][0]} → {row['load_avg_after'][0]}"
              + f" | others {row['busy_cores']} cores {row['other_busy'][:2]}"
              + f" | {row['calib_before'].get('bf16_matmul_gflops')}→{row['calib_after'].get('bf16_matmul_gflops')}"
              + f" GFLOP/s, {row['calib_before'].get('bf16_matvec_gbps')}→{row['calib_after'].get('bf16_matvec_gbps')}"
              + " GB/s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
