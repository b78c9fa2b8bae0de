"""CPU engines side by side (issue 18): the same random-weight real-size checkpoints (256M, 2.2B; built by
scripts/build_test_model.py) through torch bf16 (the worker's tuned path: the baseline), torch fp32 (the fidelity
reference), torch int8 (worker/model/quantize.py: fbgemm int8 Linear layers) and OpenVINO through optimum-intel (int8
and int4 weights; exported here from the same checkpoint, in its own venv .venv-ov with its own transformers).

Per engine, one fresh process (bench/engine_child.py) loads the model, warms up as the worker does (a short image
job), then runs: an image question without splitting, 100 new tokens (time to the first token, decode tokens/s, the
whole 100-token answer; its first 32 tokens and the prompt's last-position logits against torch fp32's), the OCR
prompt with image splitting and an 8-frame video question (time to the first token). Random weights give near-equal
logits, so the top-1 margin is reported with each agreement figure: an engine can only be judged against the
disagreement of torch bf16 itself. Install cost (venv size, install time) comes from the venvs' own records.

    python -m bench --only cpu_engines               # both sizes (~25 min on 2 idle cores; the 2.2B needs ~10 GB)
    CPU_ENGINES="torch-int8 openvino-int8" CPU_ENGINES_SIZES=256M python -m bench.cpu_engines   # a part, alone
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from bench.harness import WORK
from bench.machine import LoadMonitor, calibrate, wait_idle
from bench.real_size import ensure_model, media_files, model_dir, warm_page_cache
from bench.results import ROOT, Result

NAME = "cpu_engines"
SIZES = ["256M", "2.2B"]
ENGINES = ["torch-bf16", "torch-int8", "openvino-int8", "openvino-int4"]
REFERENCE = "torch-fp32"
RUNS = [("image", 100), ("split", 2), ("video", 2)]
AGREE_TOKENS = 32
OV_VENV = ROOT / ".venv-ov"
# optimum-intel 2.2.0 wants transformers < 5.6; its SmolVLM export says ≤ 4.57.6, whose patch positions are wrong
# (transformers issue 41190): the export below lifts that cap and runs on 5.5.
# num2words: the SmolVLM processor imports it (the worker's own requirements have it too).
OV_PACKAGES = ["optimum-intel[openvino]==2.2.0", "transformers==5.5.4", "torch==2.14.1", "torchvision==0.29.1",
               "num2words", "pillow", "numpy"]
TARGETS = {"decode": 2.0, "ttft": 1.3, "answer": 1.8, "rss": 1.2, "agree": 90}


@contextmanager
def heavy_lock():
    """BENCH_HEAVY_LOCK=/tmp/heavy.lock: one memory-heavy step at a time across the engineers sharing a machine."""
    path = os.environ.get("BENCH_HEAVY_LOCK")
    if not path:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _du_mb(path: Path) -> int:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else 0


def ensure_ov_venv() -> dict:
    """.venv-ov with optimum-intel (made once; its install time and size are recorded in .venv-ov/install.json)."""
    record = OV_VENV / "install.json"
    if record.exists():
        return json.loads(record.read_text())
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(OV_VENV)], check=True)
    subprocess.run([str(OV_VENV / "bin/pip"), "install", "-q", *OV_PACKAGES], check=True)
    info = {"seconds": round(time.perf_counter() - t0), "mb": _du_mb(OV_VENV), "packages": OV_PACKAGES}
    record.write_text(json.dumps(info))
    return info


def ov_model(size: str, bits: int) -> Path:
    """The OpenVINO IR of the size's checkpoint with int{bits} weights (exported once into bench/work/ov/)."""
    out = WORK / "ov" / f"{size}-int{bits}"
    if (out / "export.json").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    print(f"  exporting {size} to OpenVINO int{bits} …", file=sys.stderr, flush=True)
    with heavy_lock():
        subprocess.run([str(OV_VENV / "bin/python"), "-m", "bench.engine_convert", str(model_dir(size)), str(out),
                        str(bits)], cwd=ROOT, check=True, timeout=3600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return out


def video_clip(size: str, video: Path) -> Path:
    """The 8 frames the worker would give the model, decoded once (worker/media/video.py) for every engine's process."""
    import numpy as np
    from transformers import AutoProcessor

    from worker.media.video import decode_video

    out = WORK / "media" / f"clip-8-frames-{size}.npz"
    if out.exists():
        return out
    vp = AutoProcessor.from_pretrained(model_dir(size)).video_processor
    edge = int(((getattr(vp, "video_sampling", None) or {}).get("video_size") or {}).get("longest_edge", 512))
    clip = decode_video(video, target_fps=float(getattr(vp, "fps", 1) or 1), max_frames=8, max_seconds=600,
                        longest_edge=edge, deadline=time.time() + 300, time_limit_s=300)
    np.savez(out, frames=np.stack(clip.frames), indices=np.array(clip.indices), fps=clip.fps,
             duration=clip.duration, total=clip.total_frames)
    return out


def _child(python: Path, spec: dict) -> dict:
    out = subprocess.run([str(python), "-m", "bench.engine_child", json.dumps(spec)], cwd=ROOT, capture_output=True,
                         text=True, timeout=3600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{spec['engine']} {spec['model']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(size: str, engine: str, media: dict) -> tuple[dict, dict]:
    python, model, child_engine = Path(sys.executable), model_dir(size), engine
    if engine.startswith("openvino"):
        python, model, child_engine = OV_VENV / "bin/python", ov_model(size, int(engine[-1])), "openvino"
    runs = [("image", AGREE_TOKENS)] if engine == REFERENCE else RUNS
    wait_idle()
    warm_page_cache(Path(model))
    calib = calibrate()
    print(f"  {size} {engine} …", file=sys.stderr, flush=True)
    with heavy_lock(), LoadMonitor() as mon:
        got = _child(python, {"engine": child_engine, "model": str(model), "media": media, "runs": runs})
    got["engine"] = engine
    return got, {**mon.meta(), "calib": calib, "torch_threads": got["torch_threads"]}


def agreement(ref: list[int], got: list[int]) -> tuple[float, int]:
    """Share of the first AGREE_TOKENS positions with the same token, and the first position that differs."""
    n = min(AGREE_TOKENS, len(ref), len(got))
    same = sum(a == b for a, b in zip(ref[:n], got[:n], strict=True))
    first = next((i for i in range(n) if ref[i] != got[i]), n)
    return round(100 * same / n, 1) if n else 0.0, first


def _job(r: dict, what: str) -> dict:
    return next(j for j in r["jobs"] if j["what"] == what)


def rows_for(size: str, r: dict, base: dict, ref: dict | None, meta: dict, install: str) -> list[Result]:
    label, eng = f"CPU-движок {size} {r['engine']}", r["engine"]
    img, b_img = _job(r, "image"), _job(base, "image")
    out = []
    if eng != "torch-bf16":
        dec = img["decode_tok_s"] / b_img["decode_tok_s"]
        out.append(Result(f"{label}: декодирование / torch bf16", round(dec, 2), "×", f"≥ {TARGETS['decode']}×",
                          dec >= TARGETS["decode"], f"{img['decode_tok_s']} против {b_img['decode_tok_s']} ток/с; "
                          f"{img['prompt_tokens']} ток. запроса", NAME, r, meta))
        ratios = {w: _job(base, w)["ttft_s"] / _job(r, w)["ttft_s"] for w, _ in RUNS}
        note = "; ".join(f"{n} {_job(r, w)['ttft_s']} с против {_job(base, w)['ttft_s']} ({ratios[w]:.2f}×)"
                         for w, n in (("image", "фото"), ("split", "OCR с разбиением"), ("video", "видео 8 кадров")))
        worst = min(ratios.values())
        out.append(Result(f"{label}: время до первого токена / torch bf16, худшее", round(worst, 2), "×",
                          f"≥ {TARGETS['ttft']}×", worst >= TARGETS["ttft"], note, NAME, {}, meta))
        ans = b_img["total_s"] / img["total_s"]
        out.append(Result(f"{label}: ответ из 100 токенов / torch bf16", round(ans, 2), "×", f"≥ {TARGETS['answer']}×",
                          ans >= TARGETS["answer"], f"{img['total_s']} с против {b_img['total_s']} с", NAME, {}, meta))
        rss = max(r["job_peak_rss_gb"], r["rss_loaded_gb"]) / max(base["job_peak_rss_gb"], base["rss_loaded_gb"])
        out.append(Result(f"{label}: пиковый RSS / torch bf16", round(rss, 2), "×", f"≤ {TARGETS['rss']}×",
                          rss <= TARGETS["rss"], f"заданий {r['job_peak_rss_gb']} ГБ против {base['job_peak_rss_gb']}; "
                          f"загрузка {r['load_s']} с, пик {r['load_peak_rss_gb']} ГБ; {install}", NAME, {}, meta))
    else:
        note = "; ".join(f"{n} {_job(r, w)['ttft_s']} с" for w, n in
                         (("split", "OCR с разбиением"), ("video", "видео 8 кадров")))
        out.append(Result(f"{label} (база): декодирование", img["decode_tok_s"], "ток/с", "", None,
                          f"фото: до первого токена {img['ttft_s']} с, 100 токенов {img['total_s']} с; {note}; "
                          f"RSS заданий {r['job_peak_rss_gb']} ГБ; загрузка {r['load_s']} с", NAME, r, meta))
    if ref is not None:
        pct, first = agreement(_job(ref, "image")["tokens"], img["tokens"])
        top1 = img["top5"][0] == _job(ref, "image")["top5"][0]
        margin = _job(ref, "image")["margin"]
        int8 = "int4" not in eng
        out.append(Result(f"{label}: совпадение с torch fp32, первые {AGREE_TOKENS} токенов", pct, "%",
                          f"≥ {TARGETS['agree']} %" if int8 else "", (pct >= TARGETS["agree"]) if int8 else None,
                          f"первое расхождение — токен {first + 1 if first < AGREE_TOKENS else '—'}; top-1 логитов на "
                          f"последней позиции запроса {'совпал' if top1 else 'не совпал'} (у fp32 разрыв top-1/top-2 "
                          f"{margin})", NAME, {}, meta))
    return out


def follow_up_rows(size: str, engine: str = "torch-int8") -> list[Result]:
    """The prompt cache under the engine: bench/prompt_cache.py's 3-turn conversations (image, 8-frame video), the
    follow-up's time to the first token against the first turn's (targets as for torch: ≤ 0.20 image, ≤ 0.10 video)."""
    from bench import prompt_cache

    wait_idle()
    warm_page_cache(model_dir(size))
    calib = calibrate()
    print(f"  {size} {engine}: follow-ups with the prompt cache …", file=sys.stderr, flush=True)
    with heavy_lock(), LoadMonitor() as mon:
        r = prompt_cache._run_child(size, ["image", "video"], engine)
    meta = {**mon.meta(), "calib": calib, "torch_threads": r["torch_threads"]}
    rows = []
    for media, m in r["media"].items():
        t = m["turns"]
        what = "фото" if media == "image" else f"видео {prompt_cache.VIDEO_FRAMES} кадров"
        note = (f"ход 1 {m['first_turn_ttft_s']:.2f} с ({t[0]['prompt_tokens']} ток.); ходы 2–3 {t[1]['ttft_s']:.2f} / "
                f"{t[2]['ttft_s']:.2f} с (новых токенов {t[1]['new_tokens']} / {t[2]['new_tokens']}; без кэша "
                f"{t[1]['uncached_ttft_s']:.2f} / {t[2]['uncached_ttft_s']:.2f} с)")
        if short := m.get("short_answer_follow_up"):
            note += (f"; после ответа, совпавшего с токенами генерации: {short['ttft_s']:.2f} с, "
                     f"{short['ttft_s'] / m['first_turn_ttft_s']:.2f}×")
        target = prompt_cache.TARGET[media]
        rows.append(Result(f"CPU-движок {size} {engine}: TTFT уточнения / первого хода, {what}", m["ratio"], "×",
                           f"≤ {target:.2f}", m["ratio"] <= target, note, NAME, {**m, "size": size}, meta))
    return rows


def run(quick: bool = False) -> list[Result]:
    sizes = os.environ.get("CPU_ENGINES_SIZES", "256M" if quick else " ".join(SIZES)).split()
    engines = os.environ.get("CPU_ENGINES", " ".join(ENGINES)).split()
    image, video = media_files()
    results: list[Result] = []
    install = {"torch-bf16": "без установки", "torch-int8": "без установки (ядра fbgemm в torch)"}
    if any(e.startswith("openvino") for e in engines):
        try:
            info = ensure_ov_venv()
            install["openvino"] = f"venv OpenVINO {info['mb']} МБ, установка {info['seconds']} с"
        except (OSError, subprocess.CalledProcessError) as exc:  # no registry here: the torch engines still run
            results.append(Result("CPU-движок OpenVINO: не установлен", None, "", "", None, str(exc)[-200:], NAME))
            engines = [e for e in engines if not e.startswith("openvino")]
    for size in sizes:
        ensure_model(size)
        media = {"image": str(image), "video": str(video_clip(size, video))}
        ref, ref_meta = measure(size, REFERENCE, media)
        base, base_meta = measure(size, "torch-bf16", media)
        results += rows_for(size, base, base, ref, base_meta, install["torch-bf16"])
        for engine in engines:
            if engine == "torch-bf16":
                continue
            try:
                got, meta = measure(size, engine, media)
            except Exception as exc:  # noqa: BLE001 - one engine failing must not lose the others
                results.append(Result(f"CPU-движок {size} {engine}: ошибка", None, "", "", None,
                                      f"{type(exc).__name__}: {str(exc)[-300:]}", NAME))
                continue
            results += rows_for(size, got, base, ref, meta, install.get(engine.split("-")[0] if engine.startswith(
                "openvino") else engine, ""))
        results[-1].details = {**results[-1].details, "reference": ref, "reference_meta": ref_meta}
        for engine in (e for e in engines if e in ("torch-int8", "openvino-int8", "openvino-int4")):
            try:
                results += follow_up_rows(size, engine)
            except Exception as exc:  # noqa: BLE001 - one engine failing must not lose the others
                results.append(Result(f"CPU-движок {size} {engine}: уточнения, ошибка", None, "", "", None,
                                      f"{type(exc).__name__}: {str(exc)[-300:]}", NAME))
    return results


if __name__ == "__main__":
    from bench.harness import standalone

    standalone(run)
