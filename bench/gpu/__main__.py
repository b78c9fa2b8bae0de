"""python -m bench.gpu — the GPU path measured on a real accelerator, in one run with a time budget:

    python -m bench.gpu [--out FILE] [--budget S] [--device cuda|cpu] [--sizes 2.2B,256M] [--sections ...]
    python -m bench.gpu --record FILE     # its rows into bench/results/results.json and docs/bench.md

The models are built on the device (random weights, real dimensions: scripts/build_test_model.py --device cuda).
Sections, in this order (each is written to FILE as soon as it ends, so a run cut short keeps what it measured):
  jobs      the worker's Runtime on CUDA (bf16 by default): image without/with splitting, OCR, region, video with
            8 and 64 frames — TTFT, decode tokens/s, peak GPU memory; the attention implementation and the
            kernels scaled_dot_product_attention picked
  cache     the prompt cache on the GPU: follow-up TTFT / first turn (image, video), identical greedy tokens
  stack     redis-server + web + worker on CUDA through scripts/stack.py: all job kinds answered, status line
  multi     1, 2 and 4 worker processes sharing the GPU: throughput, memory, the prompt-cache bound of each
  attention the same jobs with each other attention implementation that loads (eager; flash_attention_2 if
            the flash_attn package is there)
  fp32      the prompt cache in fp32: identical greedy tokens with and without it
  small     the jobs of the first section for the other sizes (--sizes: 2.2B first, then 256M)
--device cpu --sizes tiny runs the same code on the CPU with the tiny test model (a rehearsal: no GPU figures).
Exit status 2 with a message where CUDA is absent and --device cuda was asked for."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.harness import WORK
from bench.results import ROOT

SECTIONS = ["jobs", "cache", "stack", "multi", "attention", "fp32", "small"]
NO_CUDA = "CUDA недоступна (нет GPU или драйвера): измерение на GPU не запускалось."
MODELS = WORK / "models"


def build(size: str, device: str) -> Path:
    from scripts.build_test_model import build as build_model

    if size == "tiny":
        return build_model(ROOT / "data" / "test-model", size="tiny")
    dtype = "bfloat16" if size == "2.2B" else "float32"
    return build_model(MODELS / f"{size}-{dtype}-{device}", size=size, dtype=dtype, device=device)


def media() -> dict[str, Path]:
    """A 1280×960 photo, a 1280×720 page of text, a 70-s video (64 frames at the processor's 1 frame/s)."""
    from scripts import samples

    folder = WORK / "media-gpu"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"image": folder / "photo-1280x960.png", "text": folder / "text-1280x720.png",
             "video": folder / "clip-70s-640x360.mp4"}
    if not paths["image"].exists():
        samples.scene_image(paths["image"], (1280, 960))
    if not paths["text"].exists():
        samples.text_image(paths["text"], size=(1280, 720))
    if not paths["video"].exists():
        samples.video(paths["video"], seconds=70, fps=2, size=(640, 360), gop=4)
    return paths


def environment() -> dict:
    import torch
    import transformers

    from bench.machine import git_state, machine

    info = {"machine": machine(), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "cuda": torch.version.cuda,
            "commit": os.environ.get("BENCH_COMMIT") or git_state().get("commit")}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0), gpu_memory_gb=round(p.total_memory / 1e9, 1),
                    capability=f"{p.major}.{p.minor}", bf16=torch.cuda.is_bf16_supported())
        try:
            import flash_attn  # noqa: F401

            info["flash_attn"] = True
        except ImportError:
            info["flash_attn"] = False
    return info


def run_all(args) -> dict:
    from bench.gpu import multi, single, stack_check

    started = time.monotonic()
    end = started + args.budget
    out: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "budget_s": args.budget,
                 "env": environment(), "sections": {}, "errors": {}}

    def save() -> None:
        out["wall_s"] = round(time.monotonic() - started, 1)
        if args.out:
            args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1))

    def section(name: str, fn, min_left: float = 20) -> None:
        if name not in args.sections:
            return
        left = end - time.monotonic()
        if left < min_left:
            out["sections"][name] = {"skipped": f"время вышло ({left:.0f} с осталось)"}
            save()
            return
        t0 = time.perf_counter()
        print(f"== {name} ({left:.0f} s left)", file=sys.stderr, flush=True)
        try:
            out["sections"][name] = fn()
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            out["errors"][name] = traceback.format_exc()[-3000:]
            print(out["errors"][name], file=sys.stderr, flush=True)
            out["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        out["sections"][name]["seconds"] = round(time.perf_counter() - t0, 1)
        save()
        single.free_gpu()

    single.no_loop_guard()
    files = media()
    t0 = time.perf_counter()
    models = {size: build(size, args.device) for size in args.sizes}
    out["build_s"] = round(time.perf_counter() - t0, 1)
    save()
    main_size = args.sizes[0]
    model = models[main_size]
    media_dir = files["image"].parent
    state: dict = {}

    def jobs(sizes: list[str]) -> dict:
        res: dict = {}
        for size in sizes:
            rt, load_s = single.runtime(models[size], media_dir, args.device)
            res[size] = {"load_s": load_s, "dtype": rt.dtype_name, "attention": rt.attention,
                         "weights_gb": round(sum(p.numel() * p.element_size() for p in rt.model.parameters()) / 1e9,
                                             2),
                         "jobs": single.jobs(rt, files, list(single.requests(files)), end - 30)}
            if single.cuda() and size == main_size:
                try:
                    res[size]["attention_kernels"] = single.kernel_names(rt, files)
                except Exception as exc:  # noqa: BLE001 - the profiler is a detail
                    res[size]["attention_kernels"] = [f"profiler: {exc}"[:200]]
            if size == main_size:
                state["rt"] = rt
            else:
                del rt
                single.free_gpu()
        return res

    def cache() -> dict:
        rt = state.pop("rt", None) or single.runtime(model, media_dir, args.device)[0]
        try:
            return single.conversations(rt, files, ["image", "video"])
        finally:
            del rt

    def fp32() -> dict:
        rt, load_s = single.runtime(model, media_dir, args.device, dtype="float32")
        try:
            return {"size": main_size, "load_s": load_s, **single.conversations(rt, files, ["image", "video"])}
        finally:
            del rt

    def attention() -> dict:
        names = ["eager"] + (["flash_attention_2"] if out["env"].get("flash_attn") else [])
        res: dict = {}
        for impl in names:
            try:
                rt, load_s = single.runtime(model, media_dir, args.device, attn_implementation=impl)
            except Exception as exc:  # noqa: BLE001 - an implementation that does not load is a finding
                res[impl] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                continue
            res[impl] = {"load_s": load_s, "jobs": single.jobs(rt, files, ["image_split", "video64"], end - 30)}
            del rt
            single.free_gpu()
        return res

    section("jobs", lambda: jobs([main_size]), 60)
    section("cache", cache)
    state.pop("rt", None)
    single.free_gpu()
    section("stack", lambda: stack_check.check(model, files, args.device), 90)
    section("multi", lambda: multi.measure(model, media_dir, args.device, (1, 2, 4), WORK / "logs", end - 20), 90)
    section("attention", attention, 40)
    section("fp32", fp32, 40)
    if args.sizes[1:]:
        section("small", lambda: jobs(args.sizes[1:]), 30)
    save()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--budget", type=float, default=420, help="seconds for the whole run (sections are skipped)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--sizes", type=lambda s: s.split(","), default=["2.2B", "256M"])
    p.add_argument("--sections", type=lambda s: s.split(","), default=SECTIONS)
    p.add_argument("--record", type=Path, metavar="FILE", help="write FILE's rows into bench/results/")
    args = p.parse_args(argv)
    if args.record:
        from bench.gpu.rows import record

        for line in record(json.loads(args.record.read_text())):
            print(line)
        return 0
    try:
        import torch
    except ImportError:
        print(NO_CUDA + " (torch не установлен)", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    out = run_all(args)
    print(json.dumps({k: out[k] for k in ("wall_s", "errors")}, ensure_ascii=False)[:2000])
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
