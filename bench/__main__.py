"""python -m bench [--quick] [--only NAME ...] [--out DIR] [--wait-idle S]: run the measures, print the table,
write results.json and results.md (bench/results/ for a full run, then docs/bench.md's and README.md's marked
tables are regenerated from the JSON; a --quick run writes bench/work/results-quick/). Every row carries its own
commit (-dirty), date, mode, machine, machine speed (calibrate) and load; --only keeps the other rows as they were.

Not part of the tests: it starts real processes (redis-server, workers, the web) and takes ~20 minutes on
2 cores (--quick: ~7; plus ~5 minutes the first time: the real-size models and the long video are built).
Run it on an otherwise idle machine: another busy process makes the CPU figures 2-4× worse (docs/bench.md)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
import traceback
from pathlib import Path

from bench import machine, results, table
from bench.harness import WORK
from bench.results import RESULTS, Result

MEASURES = ["queue_overhead", "openai_overhead", "streaming", "scaling", "video_sampling", "real_size",
            "prompt_cache", "gpu", "cpu_engines", "translation", "s3_store"]


def _merge(path: Path, fresh: list[Result], ran: set[str]) -> list[Result]:
    """With --only, keep the other measures' rows from the previous results.json, each with its own metadata."""
    try:
        old = results.upgrade(json.loads(path.read_text()), MEASURES)
    except (OSError, ValueError, KeyError):
        return fresh
    kept = [Result(**{k: r.get(k) for k in ("name", "value", "unit", "target", "met", "note", "measure")},
                   details=r.get("details") or {}, meta={k: r[k] for k in results.ROW_META if k in r})
            for r in old["results"] if r.get("measure") not in ran]
    order = {m: i for i, m in enumerate(MEASURES)}
    return sorted([*kept, *fresh], key=lambda r: order.get(r.measure, len(order)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer jobs and configurations (a few minutes)")
    p.add_argument("--only", nargs="+", choices=MEASURES, metavar="NAME", help=f"some of: {', '.join(MEASURES)}")
    p.add_argument("--out", type=Path, help="where to write results.json and results.md")
    p.add_argument("--wait-idle", type=float, default=0, metavar="S",
                   help="before each measure (and each model of real_size) wait up to S s for other busy processes")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = args.out or (WORK / "results-quick" if args.quick else RESULTS)
    names = args.only or MEASURES
    machine.WAIT_IDLE_S = args.wait_idle

    mode = "quick" if args.quick else "full"
    static = {**machine.git_state(), "mode": mode, "machine": machine.machine()}
    run_info = {**static, "date": machine.utc_now(), "only": args.only, "load_start": machine.load_avg()}
    collected: list[Result] = []
    t_all = time.perf_counter()
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        machine.wait_idle()
        calib = machine.calibrate()
        t0 = time.perf_counter()
        with machine.LoadMonitor() as monitor:
            try:
                rows = importlib.import_module(f"bench.{name}").run(quick=args.quick)
            except Exception as exc:  # noqa: BLE001 - one failed measure must not lose the others
                traceback.print_exc()
                rows = [Result(f"{name}: ошибка", None, "", "", None, f"{type(exc).__name__}: {exc}"[:200], name)]
        measured = {**monitor.meta(), "calib": calib}
        for r in rows:
            r.measure = name
            # The measure's own metadata (a part of it, or its processes' torch threads) wins over the whole's.
            r.meta = {**static, "torch_threads": static["machine"]["torch_threads"], **measured, **r.meta}
            if results.disturbed(r.meta) and "занята" not in r.note:
                r.note += " · машина была занята другими процессами"
        if rows:
            rows[0].details = {**rows[0].details, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"   {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        collected += rows
    run_info["wall_s"] = round(time.perf_counter() - t_all)
    run_info["load_end"] = machine.load_avg()
    # The rows of measures that gave none here (not asked for with --only; gpu on a machine without CUDA) stay
    # as their own runs recorded them.
    collected = _merge(out / "results.json", collected, {r.measure for r in collected})
    json_path, md_path = table.write(collected, run_info, out)
    if out.resolve() == RESULTS.resolve():
        for doc in table.update_docs(json_path):
            print(f"updated {doc}", file=sys.stderr)
    print()
    results.print_table(collected)
    print(f"\n{json_path}\n{md_path}\n{run_info['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
