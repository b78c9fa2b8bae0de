"""`make run` (scripts/run_local.py): one command brings up redis-server, a worker and the web; SIGINT stops
everything it started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest
import redis
from gradio_client import Client, handle_file

from common import events
from common.schemas import WorkerState
from scripts import samples
from scripts.stack import ROOT, free_port, wait_for
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.integration


def readme_recipe() -> dict[str, str]:
    """The variables of the README's «Без GPU и без интернета» command (the test model and translators)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("**Без GPU и без интернета**", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return dict(re.findall(r"([A-Z][A-Z0-9_]*)=(\S+)", block))


@pytest.mark.parametrize("engine", ["torch", "openvino-int4"])
def test_one_command_runs_the_stack_and_ctrl_c_stops_it(test_model, test_translators, tmp_path, engine):
    """The README's no-GPU, no-internet recipe: Russian answers for chat and region, OCR as it is. With
    MODEL_ENGINE=openvino-int4 (README, «Без GPU: движок OpenVINO») the worker runs from .venv-ov, made by make
    test (scripts/setup_openvino.sh)."""
    scene = samples.scene_image(tmp_path / "scene.png", (640, 480))
    text_image = samples.text_image(tmp_path / "text.png")
    redis_port, app_port = free_port(), free_port()
    recipe = readme_recipe()
    assert recipe["SMOLVLM2_MODEL_ID"] == "data/test-model" and recipe["HF_HUB_OFFLINE"] == "1"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMOLVLM2_", "MODEL_", "HF_", "TRANSLATION_", "ANSWER_"))}
    env.update(recipe)
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", APP_HOST="127.0.0.1", APP_PORT=str(app_port),
        MODEL_DEVICE="cpu", HF_HOME=str(tmp_path / "hf"),
        MEDIA_DIR=str(tmp_path / "media"), RESULTS_DIR=str(tmp_path / "results"),
        SAMPLES_DIR=str(tmp_path / "samples"), GRADIO_TEMP_DIR=str(tmp_path / "gradio"), WORKERS="1",
        MAX_NEW_TOKENS="8", TORCH_THREADS="1", WORKER_HEARTBEAT_S="0.5", MODEL_ENGINE=engine,
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
                    return resp.status == 200 and any(w.state == WorkerState.ready for w in workers)
            except (OSError, redis.exceptions.ConnectionError):
                return False

        wait_for(ready, 180, "redis-server, worker and web", interval=0.3)
        if engine.startswith("openvino"):
            assert [w.dtype for w in events.list_workers(client)] == ["int4"]
            pythons = [c.cmdline()[0] for c in psutil.Process(proc.pid).children(recursive=True)
                       if c.cmdline()[1:3] == ["-m", "worker"]]
            assert pythons == [str(ROOT / ".venv-ov" / "bin" / "python")], pythons
        api = Client(f"http://127.0.0.1:{app_port}/", verbose=False, download_files=str(tmp_path / "downloads"))
        answer = api.predict(handle_file(str(scene)), "Опиши изображение", [], api_name="/vqa")
        region = api.predict(handle_file(str(scene)), "80,160,208,288", api_name="/describe_region")
        ocr, _ = api.predict(handle_file(str(text_image)), api_name="/ocr")
        assert re.search("[А-Яа-яЁё]", answer) and re.search("[А-Яа-яЁё]", region), (answer, region)
        assert ocr.strip() and not re.search("[А-Яа-яЁё]", ocr)  # OCR is never translated
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
