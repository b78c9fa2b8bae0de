import pytest
from pydantic import ValidationError

from common.settings import DEFAULT_MODEL_ID, Settings


def test_defaults(monkeypatch):
    for var in ("SMOLVLM2_MODEL_ID", "MODEL_DEVICE", "APP_PORT", "REDIS_URL", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(_env_file=None)
    assert s.smolvlm2_model_id == DEFAULT_MODEL_ID == "HuggingFaceTB/SmolVLM2-2.2B-Instruct"
    assert s.model_device == "auto"
    assert s.app_port == 7860
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.hf_hub_offline is False
    assert s.job_hard_time_limit > s.job_time_limit


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("SMOLVLM2_MODEL_ID", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct")
    monkeypatch.setenv("MODEL_DEVICE", "CUDA")
    monkeypatch.setenv("APP_PORT", "8080")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MAX_NEW_TOKENS", "7")
    s = Settings(_env_file=None)
    assert s.smolvlm2_model_id.endswith("256M-Video-Instruct")
    assert s.model_device == "cuda"
    assert (s.app_port, s.hf_hub_offline, s.max_new_tokens) == (8080, True, 7)


def test_dotenv_is_honoured(tmp_path, monkeypatch):
    monkeypatch.delenv("APP_PORT", raising=False)
    env = tmp_path / ".env"
    env.write_text("APP_PORT=9001\nMODEL_DEVICE=cpu\n")
    s = Settings(_env_file=env)
    assert (s.app_port, s.model_device) == (9001, "cpu")


def test_bad_device_names_allowed_values(monkeypatch):
    monkeypatch.setenv("MODEL_DEVICE", "tpu")
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)
    text = str(err.value)
    assert "auto" in text and "cuda" in text and "cpu" in text


@pytest.mark.parametrize("port", ["0", "70000", "abc"])
def test_bad_port_rejected(monkeypatch, port):
    monkeypatch.setenv("APP_PORT", port)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
