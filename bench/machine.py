"""Where and how fast a benchmark ran: the machine (CPU, RAM, GPU, versions), the commit and whether the tree
differed from it, its speed right now (calibrate), and the other processes loading it while a row was measured
(LoadMonitor): on a shared 2-core machine a figure means little without them."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.results import ROOT

WAIT_IDLE_S = 0.0  # python -m bench --wait-idle S: how long wait_idle() may wait


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


_DEFAULT_THREADS: int | None = None  # torch's default thread count, taken before any measure could change it


def default_threads() -> int | None:
    global _DEFAULT_THREADS
    if _DEFAULT_THREADS is None:
        try:
            import torch
        except ImportError:
            return None
        _DEFAULT_THREADS = torch.get_num_threads()
    return _DEFAULT_THREADS


def calibrate() -> dict:
    """How fast this machine is right now, in ~1 s: bf16 matmul GFLOP/s (what a prefill is made of) and bf16
    matrix-vector GB/s (a decode step), with torch's default thread count (an in-process measure may have
    changed this process's). Two runs on the "same" virtual machine can differ by 2× when the host is shared (a
    busy hyperthread sibling, memory bandwidth taken by other guests: neither shows in loadavg or steal); this
    number goes with every row so that such runs can be told apart."""
    threads = default_threads()
    if threads is None:
        return {}
    import torch

    before, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            a = torch.randn(2048, 2048, dtype=torch.bfloat16)
            w = torch.randn(8192, 16384, dtype=torch.bfloat16)  # 256 MiB: far beyond the caches
            x = torch.randn(16384, dtype=torch.bfloat16)
            torch.backends.mkldnn.enabled = True
            a @ a
            t0 = time.perf_counter()
            for _ in range(8):
                a @ a
            mm = time.perf_counter() - t0
            torch.backends.mkldnn.enabled = False  # the decode steps' kernels (worker/model/generation.py)
            w @ x
            t0 = time.perf_counter()
            for _ in range(8):
                w @ x
            mv = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
        torch.backends.mkldnn.enabled = onednn
    return {"bf16_matmul_gflops": round(8 * 2 * 2048**3 / mm / 1e9),
            "bf16_matvec_gbps": round(8 * w.numel() * 2 / mv / 1e9, 1), "threads": threads}


def _cpu_times() -> dict | None:
    """/proc/stat's first line: the machine's CPU time by kind, in ticks."""
    try:
        values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    return dict(zip(("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), values, strict=False))


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
        self.loads: list[float] = []  # 1-minute load average, one sample per interval
        self.seconds = 0.0
        self.date = utc_now()
        self.load_start: list[float] = []
        self.load_end: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> LoadMonitor:
        self.date, self.load_start, self._t0 = utc_now(), load_avg(), time.monotonic()
        self._cpu0 = _cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.load_end = load_avg()
        self.seconds = time.monotonic() - self._t0
        self._cpu1 = _cpu_times()

    def _loop(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        cache: dict[int, psutil.Process] = {}
        while True:
            if la := load_avg():
                self.loads.append(la[0])
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

    def busy_cores(self) -> float:
        """Cores the other busy processes kept busy on average over this stretch (a lower bound: only samples
        of processes at ≥ min_cpu count)."""
        total = sum(sum(v) for v in self.seen.values()) / 100 * self.interval
        return round(total / self.seconds, 2) if self.seconds else 0.0

    def cpu_shares(self) -> dict:
        """How the machine's CPU time went over this stretch (fractions of all cores): busy (user + system,
        everyone's) and steal (taken by the hypervisor for other virtual machines: invisible to load average)."""
        a, b = getattr(self, "_cpu0", None), getattr(self, "_cpu1", None)
        if not a or not b:
            return {}
        d = {k: b[k] - a[k] for k in a}
        total = sum(d.values()) or 1
        return {"busy": round((d["user"] + d["nice"] + d["system"]) / total, 2), "steal": round(d["steal"] / total, 3)}

    def meta(self) -> dict:
        """This stretch's share of a row's ROW_META: when it began, the load average (1, 5, 15 min) at its start
        and end and the highest 1-minute one sampled, and the other processes that kept a core busy."""
        loads = [*self.loads, *(self.load_end[:1] or [])]
        return {"date": self.date,
                "load": {"start": self.load_start, "end": self.load_end or load_avg(),
                         "max_1min": round(max(loads), 2) if loads else None},
                "busy": self.report(), "busy_cores": self.busy_cores(), "cpu": self.cpu_shares()}


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> dict:
    """What a row's figures depend on besides the code: CPU, cores, RAM, GPU, torch threads (this process's
    default; a measure whose processes use another count says so in the row's meta), library versions."""
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

        torch_version, threads = torch.__version__, default_threads()
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        torch_version, threads, cuda = None, None, None
    try:
        import transformers

        tf_version = transformers.__version__
    except ImportError:
        tf_version = None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "gpu": cuda, "torch_threads": threads,
        "cpu_bf16": sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f")),
        "python": platform.python_version(), "torch": torch_version, "transformers": tf_version,
        "os": f"{platform.system()} {platform.release()}",
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> dict:
    """The commit the code was measured at and whether the tree differed from it: uncommitted changes
    (`git status --porcelain`, bench/results/ not counted — the bench writes there itself) make the commit
    "<sha>-dirty"; the changed files and a hash of their diff tell two dirty runs of one commit apart."""
    import hashlib

    sha = (_git("rev-parse", "--short", "HEAD") or "").strip() or None
    changed = []  # (status, path)
    for line in (_git("status", "--porcelain", "--untracked-files=all") or "").splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if not path.startswith("bench/results/"):
            changed.append((line[:2], path))
    state = {"commit": f"{sha}-dirty" if sha and changed else sha, "dirty": bool(changed)}
    if changed:
        digest = hashlib.sha1((_git("diff", "HEAD", "--", ".", ":(exclude)bench/results") or "").encode())
        for code, path in changed:
            if code == "??":  # untracked files: their content counts too
                try:
                    digest.update(path.encode() + (ROOT / path).read_bytes())
                except OSError:
                    pass
        files = [f"{code.strip()} {path}" for code, path in changed]
        state["dirty_files"] = files[:30] + ([f"… ещё {len(files) - 30}"] if len(files) > 30 else [])
        state["diff_sha1"] = digest.hexdigest()[:10]
    return state
