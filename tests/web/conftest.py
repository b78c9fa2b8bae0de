"""A real `python -m web` on a free port, against the session's redis-server and worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import samples
from scripts.stack import Service, free_port, wait_for, web_up
from tests.conftest import ARTIFACTS, worker_env


def start_web(settings, tmp: Path, name: str = "web", **extra: str) -> tuple[Service, str]:
    """`python -m web` on a free loopback port; returns once / answers HTTP 200."""
    port = free_port()
    env = worker_env(settings, APP_HOST="127.0.0.1", APP_PORT=str(port), GRADIO_TEMP_DIR=str(tmp / "gradio"), **extra)
    svc = Service.module(name, "web", env, ARTIFACTS / "logs" / f"{name}.log").start()
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: web_up(url, svc), 60, "web HTTP 200 on /", interval=0.2)
    except BaseException:
        svc.stop()
        raise
    return svc, url


@pytest.fixture(scope="session")
def web_url(settings, worker, tmp_path_factory) -> str:  # the worker fixture: answers need a live worker
    svc, url = start_web(settings, tmp_path_factory.mktemp("web"))
    yield url
    svc.stop()


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Test inputs made locally: an image with text, a scene (640×480), a short mp4."""
    d = tmp_path_factory.mktemp("web-media")
    return {
        "text": samples.text_image(d / "text.png"),
        "scene": samples.scene_image(d / "scene.png", (640, 480)),
        "video": samples.video(d / "clip.mp4", seconds=3, fps=10, size=(160, 120)),
    }


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the session."""
    from tests.web import chromium

    playwright = pytest.importorskip("playwright.sync_api")
    if not chromium.available():
        pytest.skip(f"{chromium.CHROMIUM} is not installed")
    chromium.SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium.CHROMIUM, args=chromium.ARGS)
        yield b
        b.close()
