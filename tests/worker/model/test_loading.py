"""worker.model.loading: weights from a local folder, the cache, or a download with progress; without hub and cache a
Russian message naming the cause and the remedies, within seconds. A local fake hub stands in for the real one."""

from __future__ import annotations

import time

import pytest

from common.errors import ModelUnavailable
from scripts.stack import free_port
from tests.fakehub import blackhole, serve
from worker.model import loading

REPO = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """A fresh HF_HOME; huggingface_hub's constants are read at import, so the endpoint is patched there."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)

    def point_to(endpoint: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)

    return point_to


def test_a_download_reports_its_progress_then_the_cache_needs_no_network(hub_env, test_model):
    server = serve(test_model, REPO)
    hub_env(f"http://127.0.0.1:{server.server_port}")
    seen: list[str] = []
    path = loading.local_weights(REPO, offline=False, hf_home=None, on_progress=seen.append)
    assert (loading.Path(path) / "config.json").is_file()
    assert seen[0].startswith("загрузка модели: 0 % — 0 байт из ") and seen[-1].startswith("загрузка модели: 100 %")
    pcts = [int(m.split(": ")[1].split(" %")[0]) for m in seen]
    assert pcts == sorted(pcts) and len(set(pcts)) > 2
    server.shutdown()  # the hub is gone: the complete cache is enough, offline or not
    assert loading.local_weights(REPO, offline=False, hf_home=None, on_progress=seen.append) == path
    assert loading.local_weights(REPO, offline=True, hf_home=None, on_progress=seen.append) == path


def test_an_unreachable_hub_fails_at_once_with_cause_and_remedies(hub_env):
    hub_env(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable) as info:
        loading.local_weights(REPO, offline=False, hf_home="/data/hf_cache", on_progress=print)
    assert time.monotonic() - t0 < 5
    msg = info.value.message
    assert msg.startswith("Нет доступа к Hugging Face Hub") and "соединение не установлено" in msg
    assert "HF_HUB_OFFLINE=1" in msg and "SMOLVLM2_MODEL_ID" in msg and "/data/hf_cache" in msg and REPO in msg


def test_a_hub_that_never_answers_is_given_up_after_the_probe_timeout(hub_env, monkeypatch):
    hole = blackhole()
    hub_env(f"http://127.0.0.1:{hole.getsockname()[1]}")
    monkeypatch.setattr(loading, "PROBE_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable, match="нет ответа за 1 с"):
        loading.local_weights(REPO, offline=False, hf_home=None, on_progress=print)
    assert time.monotonic() - t0 < 4
    hole.close()


def test_offline_without_the_model_names_the_remedy(hub_env):
    with pytest.raises(ModelUnavailable) as info:
        loading.local_weights(REPO, offline=True, hf_home=None, on_progress=print)
    assert "HF_HUB_OFFLINE=1" in info.value.message and "SMOLVLM2_MODEL_ID" in info.value.message
