"""GPU: the worker's code path on a real accelerator (python -m bench.gpu; see its __main__ for what it measures).
From `python -m bench`: where CUDA exists, the whole run in a subprocess; elsewhere one row saying it did not run."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.gpu.rows import NAME, rows
from bench.results import ROOT, Result

__all__ = ["NAME", "rows", "run"]


def run(quick: bool = False) -> list[Result]:
    import torch

    if not torch.cuda.is_available():  # no rows: the GPU machine's recorded rows stay (python -m bench.gpu --record)
        print("  no CUDA here: the recorded GPU rows are kept", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gpu.json"
        args = [sys.executable, "-m", "bench.gpu", "--out", str(out)] + (["--sections", "jobs,cache"] if quick else [])
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        if not out.exists():
            raise RuntimeError(f"python -m bench.gpu failed:\n{done.stderr[-3000:]}")
        return rows(json.loads(out.read_text()))
