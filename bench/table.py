"""The tables generated from bench/results/results.json — never edited by hand:

- bench/results/results.md: every row with its own commit, date, mode, machine and load;
- docs/bench.md, between `<!-- bench:begin -->` and `<!-- bench:end -->`: the same table;
- README.md, between the same markers (only if it has them): the rows that have a target, short.

`python -m bench` rewrites them after a full run; by hand:

    python -m bench.table                 # regenerate from bench/results/results.json
    python -m bench.table --check         # exit 1 if any of them is out of date (nothing written)
    python -m bench.table bench/work/results-quick/results.json   # only that run's results.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.results import RESULTS, ROOT, Result, disturbed, fmt, row_dict, upgrade

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
DOCS = ROOT / "docs" / "bench.md"
README = ROOT / "README.md"
HEAD = ["измерение", "значение", "ед.", "цель", "выполнена", "примечание", "коммит", "дата (UTC)", "режим",
        "машина", "нагрузка"]
MET = {True: "да", False: "нет", None: "—"}


def _cell(text) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def _machine_key(m: dict | None) -> str:
    if not m:
        return "неизвестна"
    flags = ", ".join(m.get("cpu_bf16") or []) or "—"
    return (f"{m.get('cpu')}, {m.get('cores')} ядра (флаги {flags}), {m.get('ram_gib')} ГиБ ОЗУ, "
            f"GPU: {m.get('gpu') or 'нет'}; Python {m.get('python')}, torch {m.get('torch')}, "
            f"transformers {m.get('transformers')}")


def _machines(rows: list[dict]) -> dict[str, str]:
    """Machine description → its label (М1, М2, … in order of appearance)."""
    labels: dict[str, str] = {}
    for r in rows:
        labels.setdefault(_machine_key(r.get("machine")), f"М{len(labels) + 1}")
    return labels


def commit_cell(r: dict) -> str:
    c = r.get("commit")
    if not c:
        return "?"
    return c.removesuffix("-dirty") + ("*" if r.get("dirty") or c.endswith("-dirty") else "")


def date_cell(r: dict) -> str:
    return (r.get("date") or "?").removesuffix(" UTC")


def load_cell(r: dict) -> str:
    load = r.get("load") or {}
    cores = (r.get("machine") or {}).get("cores")
    peak = load.get("max_1min")
    if peak is None:
        ends = [x[0] for x in (load.get("start"), load.get("end")) if x]
        peak = max(ends) if ends else None
    text = "?" if peak is None else f"{peak:.1f}" + (f"/{cores}" if cores else "")
    steal = (r.get("cpu") or {}).get("steal") or 0
    return text + (f", steal {steal:.0%}" if steal >= 0.02 else "") + (" +" if disturbed(r) else "")


def _busy_lines(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if disturbed(r):
            procs = "; ".join(f"`{b}`" for b in r["busy"][:3]) + (" …" if len(r["busy"]) > 3 else "")
            out.append(f"- {r['name']} ({commit_cell(r)}, {date_cell(r)}): {procs}")
    return out


def full_table(payload: dict) -> str:
    """The table with per-row provenance, its legend, the machines and the rows measured on a shared machine."""
    rows = payload.get("results", [])
    machines = _machines(rows)
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for r in rows:
        threads = r.get("torch_threads")
        gflops = (r.get("calib") or {}).get("bf16_matmul_gflops")
        machine = (machines[_machine_key(r.get("machine"))] + (f", {threads} п." if threads else "")
                   + (f", {gflops} ГФ" if gflops else ""))
        cells = [r["name"], fmt(r.get("value")), r.get("unit", ""), r.get("target") or "—", MET[r.get("met")],
                 r.get("note", ""), commit_cell(r), date_cell(r), r.get("mode") or "?", machine, load_cell(r)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    legend = [
        "Коммит со звёздочкой — у дерева были незакоммиченные изменения (bench/results/ не в счёт; список файлов "
        "и хеш диффа — в results.json, поля `dirty_files`, `diff_sha1`); «?» — неизвестно (строка старого "
        "формата). Режим: full — `make bench`, quick — `--quick`. Машина: метка из списка ниже, потоки torch "
        "процессов, которые считали (п.), и скорость машины перед измерением (ГФ — bf16 matmul 2048², ГФЛОП/с, "
        "`bench.machine.calibrate`: на этой виртуальной машине она меняется до двух раз без видимой нагрузки). "
        "Нагрузка — наибольший loadavg за 1 мин во время измерения / ядра "
        "(сам бенчмарк на двух ядрах даёт до ~2); steal — доля CPU, которую гипервизор отдал другим "
        "виртуальным машинам (в loadavg её не видно), показана от 2 %; «+» — другие процессы занимали в среднем "
        "≥ 5 % ядра (список ниже): такие цифры недостоверны.",
        "",
        *[f"- {label}: {key}" for key, label in machines.items()],
    ]
    busy = _busy_lines(rows)
    if busy:
        legend += ["", "Во время этих строк машину нагружали другие процессы:", "", *busy]
    return "\n".join([*lines, "", *legend])


def short_table(payload: dict) -> str:
    """For the README: the rows that have a target."""
    lines = ["| измерение | значение | цель | выполнена | коммит, дата |", "|---|---|---|---|---|"]
    for r in payload.get("results", []):
        if not r.get("target"):
            continue
        value = f"{fmt(r.get('value'))} {r.get('unit', '')}".strip()
        cells = [r["name"], value, r["target"], MET[r.get("met")] + (" (+)" if disturbed(r) else ""),
                 f"{commit_cell(r)}, {date_cell(r)[:10]}"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "Все строки, с нагрузкой машины и примечаниями, — в [docs/bench.md](docs/bench.md); «(+)» — "
              "машину во время измерения нагружали другие процессы."]
    return "\n".join(lines)


def results_md(payload: dict) -> str:
    run = payload.get("last_run") or {}
    only = f", только {' '.join(run['only'])}" if run.get("only") else ""
    return "\n".join([
        "# Результаты `python -m bench`", "",
        "Сгенерировано из `results.json` (`python -m bench.table`), не редактировать вручную. У каждой строки "
        "свои коммит, дата, режим, машина и нагрузка: при `--only` строки прочих измерений остаются от своих "
        "прогонов.", "",
        f"Последний прогон: {run.get('date', '?')}, коммит {run.get('commit') or '?'}, режим "
        f"{run.get('mode', '?')}{only}, {run.get('wall_s', '?')} с.", "",
        full_table(payload), "",
    ])


def write(results: list[Result], info: dict, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    """results.json (every row with its own commit, date, machine, load) and results.md generated from it
    (results_md; update_docs regenerates the docs' copies: `python -m bench.table`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"last_run": info, "results": [row_dict(r) for r in results]}
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    md_path.write_text(results_md(payload))
    return json_path, md_path


def replace_block(text: str, block: str) -> str | None:
    """text with the part between the marker lines (each alone on its line; a marker quoted in prose does not
    count) replaced by block; None if it has no well-ordered pair."""
    lines = text.split("\n")
    try:
        a = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
        b = next(i for i, line in enumerate(lines) if line.strip() == END and i > a)
    except StopIteration:
        return None
    return "\n".join([*lines[: a + 1], block, *lines[b:]])


def update_docs(json_path: Path = RESULTS / "results.json", check: bool = False) -> list[Path]:
    """Regenerate results.md next to json_path and, for bench/results/, the marked blocks of docs/bench.md and
    README.md. Returns the files that changed (with check: that would change; nothing is written)."""
    payload = upgrade(json.loads(Path(json_path).read_text()))
    targets = [(Path(json_path).with_name("results.md"), None, results_md(payload))]
    if Path(json_path).resolve() == (RESULTS / "results.json").resolve():
        targets += [(DOCS, full_table(payload), None), (README, short_table(payload), None)]
    changed = []
    for path, block, whole in targets:
        try:
            old = path.read_text()
        except OSError:
            old = None
        new = whole if whole is not None else (replace_block(old, block) if old is not None else None)
        if new is None or new == old:
            continue
        changed.append(path)
        if not check:
            path.write_text(new)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.table", description=__doc__.split("\n\n")[0])
    p.add_argument("json", nargs="?", type=Path, default=RESULTS / "results.json")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    args = p.parse_args(argv)
    changed = update_docs(args.json, check=args.check)
    for path in changed:
        print(("out of date: " if args.check else "updated: ") + str(path))
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
