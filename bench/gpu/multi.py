"""Several workers on one GPU, the way compose replicas share it: N processes, each a Runtime set up as
`python -m worker` sets it up (all started together, as `docker compose up --scale worker=N` starts them), then
rounds in which 1, 2 or 4 of them answer JOBS questions each at the same time. Throughput = jobs / wall time of
the round; memory per process (its own peak) and of the card (nvidia-smi); each process's prompt-cache bound
(the GPU default: a quarter of the memory free after its own load, at most 4 GB).

The child side is `python -m bench.gpu.multi MODEL MEDIA_DIR DEVICE`: it loads, prints one JSON line, then
answers "run N" lines with one JSON line each (the jobs' timings) until "quit"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.results import ROOT

JOBS = 3
READY_TIMEOUT_S = 240


def card_memory_gb() -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
        return round(float(out.stdout.split()[0]) / 1024, 2)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def _line(proc: subprocess.Popen, timeout: float) -> dict:
    """The next JSON line of a child (its other output goes to its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"child {proc.pid} exited (rc {proc.poll()})")
        if raw.startswith("{"):
            return json.loads(raw)
    raise TimeoutError(f"child {proc.pid}: no answer in {timeout} s")


def measure(model: Path, media_dir: Path, device: str, counts: tuple[int, ...], log_dir: Path,
            deadline: float) -> dict:
    n_max = max(counts)
    log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # Each process gets its share of the CPU cores for torch's own threads (TORCH_THREADS, as an operator sets it
    # for replicas on one host); torch's default would give every one of them all the cores.
    threads = str(max(1, (os.cpu_count() or 1) // n_max))
    procs = [subprocess.Popen([sys.executable, "-m", "bench.gpu.multi", str(model), str(media_dir), device, threads],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=open(log_dir / f"multi-{i}.log", "w"), text=True, bufsize=1)
             for i in range(n_max)]
    out: dict = {"jobs_per_process": JOBS, "torch_threads": int(threads), "processes": [], "rounds": {}}
    try:
        out["processes"] = [_line(p, READY_TIMEOUT_S) for p in procs]
        out["start_all_s"] = round(time.perf_counter() - t0, 1)
        out["card_gb_loaded"] = card_memory_gb()
        for n in counts:
            if time.monotonic() > deadline:
                out["rounds"][str(n)] = {"skipped": "время вышло"}
                continue
            start = time.perf_counter()
            for p in procs[:n]:
                p.stdin.write(f"run {JOBS}\n")
            replies = [_line(p, 300) for p in procs[:n]]
            wall = time.perf_counter() - start
            out["rounds"][str(n)] = {
                "wall_s": round(wall, 2), "jobs_per_s": round(n * JOBS / wall, 3),
                "job_s": [j for r in replies for j in r["job_s"]],
                "ttft_s": [j for r in replies for j in r["ttft_s"]],
                "peak_gpu_gb": [r["peak_gpu_gb"] for r in replies], "card_gb": card_memory_gb(),
            }
        one = out["rounds"].get("1", {}).get("jobs_per_s")
        for r in out["rounds"].values():
            if one and r.get("jobs_per_s"):
                r["scaling"] = round(r["jobs_per_s"] / one, 2)
    finally:
        for p in procs:
            try:
                p.stdin.write("quit\n")
                p.stdin.flush()
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    return out


def child(model: Path, media_dir: Path, device: str, threads: int) -> None:
    import torch

    from bench.gpu import single
    from common.schemas import ChatRequest, MediaKind, MediaRef
    from worker.model.prompt_cache import PromptCache

    single.no_loop_guard()
    free_before = torch.cuda.mem_get_info()[0] if single.cuda() else None
    rt, load_s = single.runtime(model, media_dir, device, torch_threads=threads)
    free_after = torch.cuda.mem_get_info()[0] if single.cuda() else None
    bound = rt.cache.max_bytes
    rt.cache = PromptCache(0)  # the same question again would hit it
    image = sorted(media_dir.glob("photo-*.png"))[0]
    req = ChatRequest(media=MediaRef(path=image.name, kind=MediaKind.image), question=single.QUESTION["image"])
    rt.predict(req.model_copy(update={"max_new_tokens": 2}), image)
    print(json.dumps({"load_s": load_s, "cache_bound_gb": round(bound / 1e9, 2),
                      "free_before_gb": round(free_before / 1e9, 1) if free_before else None,
                      "free_after_gb": round(free_after / 1e9, 1) if free_after else None}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        single.reset_peak()
        times, ttfts = [], []
        for _ in range(int(cmd[1])):
            r = single.job(rt, req, image)
            times.append(r["total_s"])
            ttfts.append(r["ttft_s"])
        print(json.dumps({"job_s": times, "ttft_s": ttfts, "peak_gpu_gb": single.peak_gb()}), flush=True)


if __name__ == "__main__":
    child(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
