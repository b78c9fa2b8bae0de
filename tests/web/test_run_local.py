"""`make run` (scripts/run_local.py): one command brings up redis-server, a worker and the web; SIGINT stops
everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest
import redis
from gradio_client import Client, handle_file

from common import events
from scripts.stack import ROOT, free_port, wait_for
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.integration


def test_one_command_runs_the_stack_and_ctrl_c_stops_it(test_model, tmp_path, media):
    redis_port, app_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMOLVLM2_", "MODEL_", "HF_"))}
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", APP_HOST="127.0.0.1", APP_PORT=str(app_port),
        SMOLVLM2_MODEL_ID=str(test_model), HF_HUB_OFFLINE="1", MODEL_DEVICE="cpu", HF_HOME=str(tmp_path / "hf"),
        MEDIA_DIR=str(tmp_path / "media"), RESULTS_DIR=str(tmp_path / "results"),
        SAMPLES_DIR=str(tmp_path / "samples"), GRADIO_TEMP_DIR=str(tmp_path / "gradio"), WORKERS="1",
        MAX_NEW_TOKENS="8", TORCH_THREADS="1", WORKER_HEARTBEAT_S="0.5",
    )
    log_path = ARTIFACTS / "logs" / "run_local.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "scripts/run_local.py"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    children: list[psutil.Process] = []
    try:
        client = events.connect(env["REDIS_URL"])

        def ready() -> bool:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            try:
                workers = events.list_workers(client)
                with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/", timeout=2) as resp:
                    return resp.status == 200 and any(w.state == "ready" for w in workers)
            except (OSError, redis.exceptions.ConnectionError):
                return False

        wait_for(ready, 90, "redis-server, worker and web", interval=0.3)
        answer = Client(f"http://127.0.0.1:{app_port}/", verbose=False).predict(
            handle_file(str(media["scene"])), "Опиши изображение", [], api_name="/vqa")
        assert answer.strip()
        assert {p.name for p in (tmp_path / "samples").iterdir()} == {"text.png", "scene.png", "clip.mp4"}

        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3  # redis-server, the worker, the web
        proc.send_signal(signal.SIGINT)  # what Ctrl+C in the terminal sends
        assert proc.wait(60) == 0
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, alive
        with pytest.raises(redis.exceptions.ConnectionError):
            redis.Redis(port=redis_port, socket_connect_timeout=0.5).ping()
        text = log_path.read_text(errors="replace")
        assert "redis-server запущен" in text and "остановлено" in text
    finally:  # on a failure: whatever is left of what this test started
        if proc.poll() is None:
            children = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        proc.wait(10)
