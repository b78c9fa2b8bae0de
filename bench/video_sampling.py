"""Video sampling: the worker's PyAV sampler (worker/media/video.py decode_video, seeking near each target time)
against decoding every frame (a naive PyAV loop that converts only the sampled frames), on a 10-minute 720p
H.264 mp4 with a 2-second GOP made by scripts/samples.video (cached under bench/work/media/).

Each run is a fresh subprocess (`python -m bench.video_sampling --child ...`) that reports its own time and
peak RSS (VmHWM: ru_maxrss would carry the parent's peak over fork+exec), so neither measurement inherits
the other's memory."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import WORK
from bench.machine import peak_rss_mb
from bench.results import ROOT, Result

NAME = "video_sampling"
SECONDS, FPS, SIZE, GOP = 600, 25, (1280, 720), 50
LONGEST_EDGE = 512  # the 256M/500M models' video frame size
TARGET_FPS = 1.0


def long_video() -> Path:
    path = WORK / "media" / f"long-{SECONDS}s-720p-gop{GOP}.mp4"
    if not path.exists():
        from scripts import samples

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.mp4")
        t0 = time.perf_counter()
        samples.video(tmp, seconds=SECONDS, fps=FPS, size=SIZE, gop=GOP)
        os.replace(tmp, path)
        print(f"  generated {path.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return path


# ---------------------------------------------------------------- the two decoders (child side)


def sampler(path: Path, frames: int) -> int:
    from worker.media import video as media

    out = media.decode_video(path, target_fps=TARGET_FPS, max_frames=frames, max_seconds=10 * SECONDS,
                             longest_edge=LONGEST_EDGE)
    return len(out.frames)


def naive(path: Path, frames: int) -> int:
    """Decode every frame in order; convert (and scale) only those at the sampler's indices."""
    import av

    from worker.media import video as media

    kept = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate)
        total = stream.frames or round(float(stream.duration * stream.time_base) * fps)
        wanted = set(media.sample_indices(total, fps, TARGET_FPS, frames))
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                w, h = media._scaled(frame.width, frame.height, LONGEST_EDGE)
                kept.append(frame.to_ndarray(width=w, height=h, format="rgb24"))
    return len(kept)


def child(mode: str, path: Path, frames: int) -> None:
    import av  # noqa: F401 - imports before the clock starts
    import numpy  # noqa: F401

    t0 = time.perf_counter()
    n = (sampler if mode == "sampler" else naive)(path, frames)
    dt = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "frames": n, "seconds": dt, "peak_rss_mb": peak_rss_mb()}))


# ---------------------------------------------------------------- parent side


def _run_child(mode: str, path: Path, frames: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.video_sampling", "--child", mode, str(path), str(frames)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_rss() -> float:
    """Peak RSS of a child that only imports what the sampler imports (the floor of both measurements)."""
    code = "import av, numpy, worker.media.image, bench.machine as m; print(m.peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True)
    return float(out.stdout.strip())


def run(quick: bool = False) -> list[Result]:
    path = long_video()
    counts = [8] if quick else [8, 64]
    results, details = [], {"video": f"{SECONDS} s, {SIZE[0]}×{SIZE[1]}, {FPS} fps, GOP {GOP} ({GOP / FPS:.0f} s)",
                            "longest_edge": LONGEST_EDGE, "import_floor_rss_mb": round(baseline_rss(), 1)}
    for frames in counts:
        fast = [_run_child("sampler", path, frames) for _ in range(3)]
        slow = _run_child("naive", path, frames)
        t_fast = statistics.median(r["seconds"] for r in fast)
        rss = max(r["peak_rss_mb"] for r in fast)
        speedup = slow["seconds"] / t_fast
        details[f"{frames}_frames"] = {
            "sampler_s": round(t_fast, 3), "sampler_runs_s": [round(r["seconds"], 3) for r in fast],
            "sampler_peak_rss_mb": round(rss, 1), "naive_s": round(slow["seconds"], 2),
            "naive_peak_rss_mb": round(slow["peak_rss_mb"], 1), "frames_out": fast[0]["frames"],
        }
        results += [
            Result(f"Видео {frames} кадров: выборка против полного декодирования", round(speedup, 1), "×",
                   "≥ 10×", speedup >= 10,
                   f"{t_fast:.2f} с против {slow['seconds']:.1f} с; 10 мин 720p, GOP 2 с", NAME,
                   details if frames == counts[0] else {}),
            Result(f"Видео {frames} кадров: пиковый RSS выборки", round(rss), "МБ", "≤ 300 МБ", rss <= 300,
                   f"полное декодирование {slow['peak_rss_mb']:.0f} МБ; python+av+numpy "
                   f"{details['import_floor_rss_mb']:.0f} МБ", NAME),
        ]
    return results


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        from bench.harness import standalone

        standalone(run)
