"""What a measure runs on: its working folders, a fresh stack (redis-server, workers, the web: scripts/stack.py),
media put into it, and `python -m bench.<measure>` for one measure alone."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from bench.results import ROOT, print_table

WORK = ROOT / "bench" / "work"  # git-ignored: generated media, built models, logs
TEST_MODEL = ROOT / "data" / "test-model"


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
    # Untranslated answers (ANSWER_LANGUAGE=en): these measures are about the queue and the model; the translation
    # stage has its own (bench/translation.py).
    st = Stack(root, model, log_dir=root / "logs",
               **{"MAX_NEW_TOKENS": "4", "WORKER_HEARTBEAT_S": "0.5", "ANSWER_LANGUAGE": "en", **env})
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
    from common.store import store_from_settings

    return store_from_settings(settings).save_upload(path)
