"""Shared pieces of the benchmarks: the result record, statistics, the machine description and the writers
of bench/results/results.json and results.md."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
WORK = BENCH_DIR / "work"  # git-ignored: generated media, built models, logs
RESULTS = BENCH_DIR / "results"
TEST_MODEL = ROOT / "data" / "test-model"
WAIT_IDLE_S = 0.0  # python -m bench --wait-idle S: how long wait_idle() may wait


@dataclass
class Result:
    """One row of the table: a measured value against its target (met is None when there is no target
    or the measure did not run)."""

    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""
    measure: str = ""  # the module that produced it
    details: dict = field(default_factory=dict)

    def row(self) -> list[str]:
        met = {True: "да", False: "нет", None: "—"}[self.met]
        return [self.name, fmt(self.value), self.unit, self.target or "—", met, self.note]


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in 0..100."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary_ms(values_s: list[float]) -> dict:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None, "max_ms": round(max(ms), 2) if ms else None,
    }


def peak_rss_mb() -> float:
    """This process's peak RSS in MB (VmHWM; unlike ru_maxrss it does not inherit the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_avg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def busy_processes(min_cpu: float = 20.0) -> list[str]:
    """Other processes using a lot of CPU right now (this process and its children excluded)."""
    with LoadMonitor(interval=0.5, min_cpu=min_cpu) as mon:
        time.sleep(0.6)
    return mon.report()


def wait_idle() -> None:
    """Wait (up to WAIT_IDLE_S) until no other process keeps a core busy: on 2 cores they skew the figures."""
    deadline = time.monotonic() + WAIT_IDLE_S
    while WAIT_IDLE_S > 0 and time.monotonic() < deadline:
        busy = busy_processes()
        if not busy:
            return
        print(f"   waiting for: {busy[0]}", file=sys.stderr, flush=True)
        time.sleep(5)


class LoadMonitor:
    """Samples, in a thread, the other processes that use ≥ min_cpu % of a core, so that a result can say
    whether the machine was shared while it was measured."""

    def __init__(self, interval: float = 2.0, min_cpu: float = 20.0) -> None:
        self.interval, self.min_cpu = interval, min_cpu
        self.seen: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> LoadMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        cache: dict[int, psutil.Process] = {}
        while True:
            try:
                mine = {me.pid, *(c.pid for c in me.children(recursive=True))}
            except psutil.Error:
                mine = {me.pid}
            for p in psutil.process_iter(["cmdline"]):
                try:
                    if p.pid not in cache:
                        cache[p.pid] = p
                        p.cpu_percent(None)  # the first call only starts the count
                        continue
                    cpu = cache[p.pid].cpu_percent(None)
                except psutil.Error:
                    continue
                if cpu >= self.min_cpu and p.pid not in mine:
                    cmd = " ".join(p.info["cmdline"] or [])[:90] or f"pid {p.pid}"
                    self.seen.setdefault(cmd, []).append(cpu)
            if self._stop.wait(self.interval):
                return

    def report(self) -> list[str]:
        return [f"{cmd} (до {max(v):.0f}% CPU, {len(v)} замер.)"
                for cmd, v in sorted(self.seen.items(), key=lambda kv: -sum(kv[1]))]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import psutil

        ram_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        ram_gib = None
    try:
        import torch

        torch_version, threads = torch.__version__, torch.get_num_threads()
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        torch_version, threads, cuda = None, None, None
    try:
        import transformers

        tf_version = transformers.__version__
    except ImportError:
        tf_version = None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib,
        "cpu_bf16": sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f")),
        "gpu": cuda, "python": platform.python_version(), "torch": torch_version, "torch_threads": threads,
        "transformers": tf_version, "os": f"{platform.system()} {platform.release()}",
        "load_avg_start": load_avg(), "git": _git_rev(),
    }


def _git_rev() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# ---------------------------------------------------------------- output

HEADER = ["измерение", "значение", "ед.", "цель", "выполнена", "примечание"]


def table(results: list[Result]) -> str:
    rows = [HEADER, *(r.row() for r in results)]
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def print_table(results: list[Result], file=sys.stdout) -> None:
    rows = [HEADER, *(r.row() for r in results)]
    widths = [min(48, max(len(row[i]) for row in rows)) for i in range(len(HEADER))]
    for n, row in enumerate(rows):
        print("  ".join(c[:48].ljust(w) for c, w in zip(row, widths, strict=True)), file=file)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=file)


def write(results: list[Result], info: dict, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "results": [
            {"name": r.name, "value": r.value, "unit": r.unit, "target": r.target, "met": r.met,
             "note": r.note, "measure": r.measure, "details": r.details}
            for r in results
        ],
    }
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    md = [
        "# Результаты `python -m bench`", "",
        f"Машина: {info.get('cpu')}, {info.get('cores')} ядра, {info.get('ram_gib')} ГиБ ОЗУ, "
        f"GPU: {info.get('gpu') or 'нет'}; Python {info.get('python')}, torch {info.get('torch')}, "
        f"transformers {info.get('transformers')}; {info.get('date')}; коммит {info.get('git')}.",
        f"Флаги CPU: {', '.join(info.get('cpu_bf16') or []) or '—'}. Нагрузка (loadavg) в начале: "
        f"{info.get('load_avg_start')}, в конце: {info.get('load_avg_end')}; "
        f"длительность прогона {info.get('wall_s')} с; режим: {info.get('mode')}.",
        "", table(results), "",
    ]
    if info.get("busy"):
        md += ["Во время прогона машину нагружали другие процессы:", ""]
        md += [f"- `{b}`" for b in info["busy"]] + [""]
    md_path.write_text("\n".join(md))
    return json_path, md_path


def standalone(run, takes_n: bool = False) -> None:
    """`python -m bench.<measure>`: run one measure alone, print its table and the first row's details."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    if takes_n:
        parser.add_argument("-n", type=int, default=None)
    args = parser.parse_args()
    rs = run(args.quick, args.n) if takes_n else run(args.quick)
    print_table(rs)
    print(json.dumps(rs[0].details, indent=1, ensure_ascii=False))


@contextmanager
def stack(name: str, model: Path, workers: int = 1, web: bool = False, **env: str):
    """A fresh stack under bench/work/stacks/<name> (scripts/stack.py): redis-server, `workers` workers and
    optionally the web, all ready; settings for the calling process via st.settings_for(...)."""
    import shutil

    from scripts.stack import Stack

    root = WORK / "stacks" / name
    shutil.rmtree(root, ignore_errors=True)
    st = Stack(root, model, log_dir=root / "logs", **{"MAX_NEW_TOKENS": "4", "WORKER_HEARTBEAT_S": "0.5", **env})
    try:
        st.start_redis()
        for _ in range(workers):
            st.start_worker(wait=False)
        if web:
            st.start_web(timeout=120, GRADIO_ANALYTICS_ENABLED="False", NO_PROXY="127.0.0.1,localhost")
        for svc in st.workers:
            st.wait_worker(svc)
        yield st
    finally:
        st.stop()


def put_media(settings, path: Path):
    """Copy a file into the stack's MEDIA_DIR and return its MediaRef."""
    from common.storage import store_from_settings

    return store_from_settings(settings).save_upload(path)
