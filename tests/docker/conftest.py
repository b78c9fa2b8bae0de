"""The Docker test (`make test-docker`): the real compose stack on a Docker engine. It builds images and
starts containers, so a plain `pytest` / `make test` skips it (with this reason); scripts/docker/test.sh
sets SMOLVLM2_DOCKER_TEST=1 after it has an engine, the base images and the built images."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from scripts.docker.compose import STATE_DIR, Stack

ENABLED = os.environ.get("SMOLVLM2_DOCKER_TEST") == "1"
HERE = Path(__file__).resolve().parent
SKIP_REASON = ("Docker-тест запускается только через `make test-docker` (нужен движок Docker; "
               "scripts/docker/test.sh задаёт SMOLVLM2_DOCKER_TEST=1)")
REPORT: dict = {"scenarios": {}}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.docker)
            if not ENABLED:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def report() -> dict:
    return REPORT


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """What the Docker tests send: an image, an image of text, a short mp4."""
    from scripts import samples

    d = tmp_path_factory.mktemp("docker-media")
    return {
        "scene": samples.scene_image(d / "scene.png", (640, 480)),
        "text": samples.text_image(d / "text.png"),
        "video": samples.video(d / "clip.mp4", seconds=3, fps=10, size=(320, 240)),
    }


@pytest.fixture(scope="session")
def stack(report):
    """The test project up with two workers, all four containers healthy. Torn down (down -v) by the last
    test, or here if a test stopped the module early."""
    s = Stack()
    if s.env_file.exists():
        s.load_env()
    else:
        s.write_env()
    Stack.install_test_model()
    t0 = time.monotonic()
    s.compose("up", "-d", timeout=600)
    s.wait_healthy({"redis": 1, "web": 1, "worker": 2}, timeout=300)
    report["up_to_healthy_s"] = round(time.monotonic() - t0, 1)
    yield s
    if not s.is_down:
        s.save_logs(STATE_DIR / "logs")
        s.down()


def pytest_sessionfinish(session, exitstatus):
    if not ENABLED:
        return
    for name in ("base-images.json", "build.json", "s3-image.json"):
        path = STATE_DIR / name
        if path.is_file():
            REPORT.update(json.loads(path.read_text()))
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "report.json").write_text(json.dumps(REPORT, indent=2, ensure_ascii=False), encoding="utf-8")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not ENABLED:
        return
    tr = terminalreporter
    tr.section("Docker-тест: замеры")
    if "build_s" in REPORT:
        sizes = REPORT.get("image_bytes", {})
        tr.write_line(f"сборка: {REPORT['build_s']} с (образы были до сборки: {REPORT.get('images_existed_before')}); "
                      f"web {sizes.get('web', 0) / 1e6:.0f} МБ, worker {sizes.get('worker', 0) / 1e9:.2f} ГБ; "
                      f"базовые образы: {REPORT.get('base_images')}")
    if "up_to_healthy_s" in REPORT:
        tr.write_line(f"up -d → все 4 контейнера healthy: {REPORT['up_to_healthy_s']} с")
    for name, row in REPORT["scenarios"].items():
        counts = {k: row.get(k) for k in ("submitted", "answered", "errored", "lost")}
        extra = {k: v for k, v in row.items() if k not in counts and k != "outcomes"}
        tr.write_line(f"{name}: {counts} {extra}")
    if "swarm" in REPORT:
        tr.write_line(f"swarm (deploy/swarm/stack.yml, S3): {REPORT['swarm']}")
    if "memory" in REPORT:
        tr.write_line(f"память контейнеров: {REPORT['memory']}")
    tr.write_line(f"подробно: {STATE_DIR / 'report.json'}")
