"""The tree's rules, read from the code's own imports (every import statement, at module level or inside a function,
parsed with ast): no import circle anywhere in the repository; common/ imports neither web/ nor worker/, and neither
imports the other; web/'s rooms: http/ and queue/ never import ui/ or openai/, ui/ and openai/ use queue/ but not
each other, and only web.app (the composition root) and web.__main__ take from every room; the product never imports
scripts/, bench/ or tests/. And, by importing it: the web runs without torch, transformers or PyAV."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "web", "worker", "scripts", "bench", "tests")
PRODUCT = ("common", "web", "worker")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The repository's modules this one imports: for `from a import b`, a.b when that is a module, else a."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: imports(name, path, set(modules())) for name, path in modules().items()}


def room(name: str) -> str:
    """common, worker, scripts, bench, tests; web's rooms as web.http, web.queue, web.openai, web.ui, web.app."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "web" and len(parts) > 1 else parts[0]


def edges(source_rooms: set[str], target_rooms: set[str]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
                  if room(a) in source_rooms and room(b) in target_rooms)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and modules importing themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_reading_sees_imports_at_module_level_and_inside_functions():
    assert "web.queue.client" in GRAPH["web.http.metrics"] or "common.events" in GRAPH["web.http.metrics"]
    assert "worker.job.tasks" in GRAPH["worker.__main__"]  # imported inside main()
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles_anywhere():
    assert cycles(GRAPH) == []


def test_common_stands_alone_and_web_and_worker_never_meet():
    assert edges({"common"}, {"web", *(r for r in map(room, GRAPH) if r.startswith("web.")), "worker"}) == []
    web_rooms = {room(m) for m in GRAPH if m.startswith("web")}
    assert edges(web_rooms, {"worker"}) == [] and edges({"worker"}, web_rooms) == []


# worker/'s floors, top down: a module imports only its own floor or lower ones.
WORKER_FLOORS = ("worker.__main__", "worker.job", "worker.runtime", "worker.translate", "worker.model", "worker.media")


def worker_floor(name: str) -> int | None:
    return next((i for i, f in enumerate(WORKER_FLOORS) if name == f or name.startswith(f + ".")), None)


def test_worker_rooms_import_only_downwards():
    """job/ → runtime → translate/ → model/ → media/: the job's life, one job's stages, the translators, the model,
    the files; no room reaches up (a room-level circle would hide behind module-level acyclicity)."""
    assert {worker_floor(m) for m in GRAPH if m.startswith("worker.")} >= set(range(len(WORKER_FLOORS)))
    upwards = sorted(f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
                     if worker_floor(a) is not None and worker_floor(b) is not None
                     and worker_floor(b) < worker_floor(a))
    assert upwards == []
    assert all(worker_floor(m) is not None for m in GRAPH if m.startswith("worker.") and m != "worker")


def test_the_product_never_imports_tooling():
    product = {room(m) for m in GRAPH if m.split(".")[0] in PRODUCT}
    assert edges(product, {"scripts", "bench", "tests"}) == []


@pytest.mark.parametrize("lower", ["web.http", "web.queue"])
def test_http_and_queue_never_import_the_front_ends(lower):
    assert edges({lower}, {"web.ui", "web.openai", "web.app", "web.__main__"}) == []


def test_ui_and_openai_use_the_queue_but_not_each_other():
    assert edges({"web.ui"}, {"web.openai"}) == [] and edges({"web.openai"}, {"web.ui"}) == []
    assert edges({"web.ui"}, {"web.queue"}) and edges({"web.openai"}, {"web.queue"})
    assert edges({"web.ui", "web.openai", "web.http", "web.queue"}, {"web.app", "web.__main__"}) == []


def test_the_web_never_imports_the_model_stack():
    """web/ runs in an image without torch: importing all of it must not pull torch, transformers, PyAV or worker."""
    names = sorted(m for m in GRAPH if m.split(".")[0] == "web")
    code = (
        f"import importlib, sys\nfor m in {names!r}: importlib.import_module(m)\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'worker', 'av'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)
