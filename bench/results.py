"""The benchmarks' results: the row record (Result) with its statistics, the provenance every row carries in
bench/results/results.json (ROW_META; rows of the old format upgraded), and the plain-text table. bench.table
renders and writes them; bench.machine describes where they were measured."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


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
    # Where and when this row was measured (ROW_META): filled by `python -m bench` from the measure's own run;
    # a measure may set some keys itself (e.g. load and busy of the part of it that gave this row).
    meta: dict = field(default_factory=dict)

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


def disturbed(meta: dict) -> bool:
    """Other processes took a noticeable share of the CPU during a row (≥ 5 % of a core on average; rows from
    before busy_cores was recorded: any busy process)."""
    if meta.get("busy_cores") is not None:
        return meta["busy_cores"] >= 0.05
    return bool(meta.get("busy"))


# Per-row provenance keys in results.json (python -m bench fills them; bench.table renders them).
ROW_META = ("commit", "dirty", "dirty_files", "diff_sha1", "date", "mode", "machine", "calib", "torch_threads", "load",
            "busy", "busy_cores", "cpu")


def upgrade(payload: dict, measures: list[str] | None = None) -> dict:
    """A results.json written before rows carried their own metadata, in today's form. Its header described its
    last run only, so that run's commit, date, mode and load go to the rows of the measures it ran (all of
    them, unless it was an --only run); the others' provenance is unknown (commit None, shown as «?»)."""
    if "last_run" in payload:
        return payload
    info = payload.get("machine") or {}
    mode = str(info.get("mode") or "")
    ran = set(mode.split("only", 1)[1].split()) if "only" in mode else None  # None: every measure
    known = {"commit": info.get("git"), "date": info.get("date"), "mode": mode.split(",")[0].strip() or None,
             "load": {"start": info.get("load_avg_start"), "end": info.get("load_avg_end"), "max_1min": None},
             "busy": [b.split(": ", 1)[-1] for b in info.get("busy") or []]}
    machine_info = {k: info.get(k) for k in ("cpu", "cores", "ram_gib", "gpu", "torch_threads", "cpu_bf16", "python",
                                               "torch", "transformers", "os")}
    rows = []
    for r in payload.get("results", []):
        r = dict(r)
        if "commit" not in r:
            meta = known if ran is None or r.get("measure") in ran else {"commit": None, "date": None, "mode": None}
            r.update({**meta, "machine": machine_info, "torch_threads": (r.get("details") or {}).get("torch_threads")})
        rows.append(r)
    last = {"commit": info.get("git"), "date": info.get("date"), "mode": mode, "wall_s": info.get("wall_s"),
            "machine": machine_info, "upgraded_from_old_format": True}
    return {"last_run": last, "results": rows}


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


def row_dict(r: Result) -> dict:
    """One row of results.json: the figure, then its own provenance (ROW_META keys), then the raw details."""
    row = {"name": r.name, "value": r.value, "unit": r.unit, "target": r.target, "met": r.met, "note": r.note,
           "measure": r.measure}
    row.update({k: r.meta[k] for k in ROW_META if k in r.meta})
    row["details"] = r.details
    return row
