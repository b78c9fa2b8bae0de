"""Packages for a GPU host with no network (its own Python with CUDA torch, nothing to download from): the
project's pinned requirements, without torch/torchvision (the host's CUDA build is used) and without the
packages the host already has (--skip), as one site-packages tarball; plus this machine's redis-server and the
libraries it links that the host may lack.

    python -m bench.gpu.bundle OUT_DIR --python 3.12 --skip numpy,pillow,...
    bash bench/gpu/host.sh OUT_DIR RESULTS_DIR [python -m bench.gpu options]   # on the host

Wheels are zip-compressed; one xz stream over the unpacked tree is ~25 % smaller, and the parts of Gradio a
headless API check never serves (the in-browser ffmpeg, the SSR node server, demo media) are left out."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench.results import ROOT

HOST_TORCH = {"torch", "torchvision", "torchaudio", "triton"}
PRUNE = ["gradio/templates/frontend/static/ffmpeg", "gradio/templates/node", "gradio/media_assets"]
# The libraries redis-server links that a base system (one with Python and OpenSSL) lacks.
REDIS_OWN = ("libjemalloc", "liblzf", "libatomic", "libhiredis")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(wheel: str) -> str:
    """The project name of a wheel file (its first dash-separated part)."""
    return _norm(wheel.split("-")[0])


def requirements(skip: set[str] = frozenset()) -> list[str]:
    """The pinned requirement lines, without the host's torch and the packages it has (their own dependencies,
    accelerate → torch for one, are then not downloaded either)."""
    out = []
    for f in sorted((ROOT / "requirements").glob("*.txt")):
        if f.name == "dev.txt":
            continue
        for line in f.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-") and _norm(line.split("==")[0].split("[")[0]) not in HOST_TORCH | skip:
                out.append(line)
    return sorted(set(out))


def download(dest: Path, python: str, extra_links: Path, skip: set[str]) -> None:
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                             "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", f"--python-version={python}",
                    "--implementation=cp", *platforms, "--find-links", str(extra_links), "-d", str(dest),
                    *requirements(skip)], check=True)


def pure_wheels(dest: Path) -> None:
    """Wheels of sdist-only pure-Python dependencies (num2words needs docopt), built here."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), "docopt==0.6.2"],
                   check=True)


def redis(out: Path) -> list[str]:
    """redis-server with the shared libraries of its own it links, behind a wrapper that points the loader at
    them for redis-server alone."""
    exe = shutil.which("redis-server")
    if not exe:
        return []
    (out / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copy2(exe, out / "redis-server.bin")
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    libs = [Path(p) for p in re.findall(r"=> (/\S+)", ldd) if Path(p).name.startswith(REDIS_OWN)]
    for lib in libs:
        shutil.copy2(lib, out / "lib" / lib.name)
    wrapper = out / "redis-server"
    wrapper.write_text('#!/bin/sh\nd=$(dirname "$0")\nLD_LIBRARY_PATH="$d/lib" exec "$d/redis-server.bin" "$@"\n')
    wrapper.chmod(0o755)
    return ["redis-server", *(lib.name for lib in libs)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu.bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--python", default="3.12")
    p.add_argument("--skip", type=lambda s: {_norm(x) for x in s.split(",") if x}, default=set(),
                   help="packages the host has (comma-separated names)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels, site = Path(tmp) / "wheels", Path(tmp) / "site"
        pure_wheels(Path(tmp) / "pure")
        download(wheels, args.python, Path(tmp) / "pure", args.skip)
        kept = []
        for w in sorted(wheels.glob("*.whl")):
            if _name(w.name) in args.skip | HOST_TORCH:
                continue
            with zipfile.ZipFile(w) as z:
                z.extractall(site)
            kept.append(w.name)
        for rel in PRUNE:
            shutil.rmtree(site / rel, ignore_errors=True)
        subprocess.run(["tar", "-C", str(site), "-cf", str(args.out / "site.tar.xz"), "-I", "xz -T0 -6", "."],
                       check=True)
    (args.out / "site.txt").write_text("\n".join(kept) + "\n")
    libs = redis(args.out / "redis")
    size = (args.out / "site.tar.xz").stat().st_size / 2**20
    print(f"{len(kept)} wheels → {args.out / 'site.tar.xz'} ({size:.1f} MiB); redis: {', '.join(libs) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
