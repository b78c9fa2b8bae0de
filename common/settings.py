"""One settings class for web and worker, read once from the environment (and .env)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_ID = "HuggingFaceTB/SmolVLM2-2.2B-Instruct"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", protected_namespaces=())

    # Model and device (worker).
    smolvlm2_model_id: str = DEFAULT_MODEL_ID
    model_device: Literal["auto", "cuda", "cpu"] = "auto"
    # auto: bf16 on CUDA (fp16 where bf16 is unsupported); on CPU bf16 where the CPU has fast
    # bf16 kernels, else fp32 (see README: benchmarks).
    model_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # auto: splitting on GPU; on CPU only for OCR, where small text needs the tiles.
    image_splitting: Literal["auto", "on", "off"] = "auto"
    hf_home: str | None = None
    hf_hub_offline: bool = False
    torch_threads: int = Field(default=0, ge=0)  # 0: torch's default
    # Conversation prompt cache per worker, MB; unset: 1024 on CPU, on GPU a quarter of free memory (≤ 4096); 0: off.
    prompt_cache_mb: float | None = Field(default=None, ge=0)

    # Web.
    app_host: str = "0.0.0.0"
    app_port: int = Field(default=7860, ge=1, le=65535)
    samples_dir: Path = Path("data/samples")  # the UI's example media, made by `make setup` / the web image
    api_key: str | None = None  # when set, /v1/* (the OpenAI-compatible API) needs "Authorization: Bearer <key>"
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Host are believed (comma-separated IPs); none by default.
    trusted_proxies: str = ""
    # The names the app is opened by (comma-separated; "*.example.org" for subdomains, "*" for any). Empty: any IP
    # and any local-network name (no dot, .local, .internal), no public DNS name. Else Host → 400 (docs/security.md).
    public_hosts: str = ""

    # Local run (`make run`): how many worker processes to start.
    workers: int = Field(default=1, ge=1)

    # Queue and storage.
    redis_url: str = "redis://localhost:6379/0"
    redis_max_connections: int = Field(default=64, ge=4)  # per process; a full pool waits, never fails
    redis_outage_grace_s: float = Field(default=60, gt=0)  # the web keeps following jobs through an outage this long
    max_queue_length: int = Field(default=200, ge=0)  # jobs waiting at once; more are refused (0: no limit)
    max_jobs_per_client: int = Field(default=8, ge=0)  # unanswered jobs of one IP address (0: no limit)
    media_dir: Path = Path("data/media")
    results_dir: Path = Path("data/results")

    # Limits.
    max_new_tokens: int = Field(default=512, ge=1)
    max_upload_mb: float = Field(default=50, gt=0)
    upload_rate_mb_per_min: float = Field(default=200, ge=0)  # uploads of one client in any minute (0: no limit)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_video_seconds: float = Field(default=600, gt=0)
    video_max_frames: int = Field(default=0, ge=0)  # 0: the model's processor default (CPU: 8)
    max_question_chars: int = Field(default=2000, gt=0)
    max_history_turns: int = Field(default=20, ge=0)
    job_time_limit: float = Field(default=300, gt=0)  # seconds; see common.queue for what enforces it
    queue_wait_timeout: int = Field(default=600, gt=0)  # no worker took the job: give up
    result_ttl: int = Field(default=3600, gt=0)
    media_ttl_hours: float = Field(default=24, gt=0)
    media_cleanup_interval_s: float = Field(default=600, gt=0)
    worker_heartbeat_s: float = Field(default=2.0, gt=0)

    @field_validator("prompt_cache_mb", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("model_device", mode="before")
    @classmethod
    def _device_lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @property
    def job_hard_time_limit(self) -> float:
        return self.job_time_limit + 30

    @property
    def trusted_proxy_set(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
