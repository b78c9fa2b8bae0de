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
    # auto: flash_attention_2 on CUDA where the flash_attn package is installed, else PyTorch's sdpa (which
    # itself picks flash / memory-efficient / cuDNN kernels on the GPU: docs/bench.md, GPU).
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    # torch: the model as loaded; torch-int8: every Linear layer int8 (fbgemm, CPU only; worker/model/quantize.py);
    # openvino-int4 / openvino-int8: exported once to OpenVINO (CPU only, its own venv; worker/model/openvino.py).
    model_engine: Literal["torch", "torch-int8", "openvino-int4", "openvino-int8"] = "torch"
    # auto: splitting on GPU; on CPU only for OCR, where small text needs the tiles.
    image_splitting: Literal["auto", "on", "off"] = "auto"
    hf_home: str | None = None
    hf_hub_offline: bool = False
    torch_threads: int = Field(default=0, ge=0)  # 0: torch's default
    # Conversation prompt cache per worker, MB; unset: 1024 on CPU, on GPU a quarter of free memory (≤ 4096); 0: off.
    prompt_cache_mb: float | None = Field(default=None, ge=0)

    # Answers in Russian (worker/translate/, docs/translation.md): ru — Cyrillic questions translated ru→en before the
    # model, answers en→ru while they stream (OCR never); en — the model's own English, no translator loaded. The UI
    # switch and the OpenAI request field `answer_language` override it per page / per request.
    answer_language: Literal["ru", "en"] = "ru"
    translation_model_ru_en: str = "Helsinki-NLP/opus-mt-ru-en"
    translation_model_en_ru: str = "Helsinki-NLP/opus-mt-en-ru"
    # auto: int8 (dynamic, Linear layers) on CPU, the main model's half type on GPU.
    translation_precision: Literal["auto", "int8", "float32", "bfloat16", "float16"] = "auto"

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
    # Login (docs/security.md): a file of name:argon2-hash lines (python -m web.users add NAME); unset: no login.
    auth_users: Path | None = None
    # Or a reverse proxy's header naming the logged-in user (oauth2-proxy, Authelia), believed from TRUSTED_PROXIES.
    auth_proxy_header: str = ""
    auth_session_hours: float = Field(default=168, gt=0)
    abandon_after_s: float = Field(default=15, gt=0)  # a Gradio API job whose caller opens no event stream: stopped
    metrics_token: str | None = None  # GET /metrics needs "Authorization: Bearer <token>" when set (or a login)

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
    # An answer whose last 1–32 tokens repeat this many times in a row is cut: the model has looped. 0: never cut
    # (an OCR of a page of identical rows may want that; MAX_NEW_TOKENS still bounds it).
    loop_repeats: int = Field(default=4, ge=0)
    max_upload_mb: float = Field(default=50, gt=0)
    upload_rate_mb_per_min: float = Field(default=200, ge=0)  # uploads of one client in any minute (0: no limit)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_video_pixels: int = Field(default=8_847_360, gt=0)  # per frame (4096×2160); refused before decoding
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

    # Media store (docs/deploy.md). local: the MEDIA_DIR/RESULTS_DIR volume every process mounts (one host).
    # s3: an S3-compatible object store (SeaweedFS, MinIO, Ceph, AWS): web and workers share only Redis and the
    # store. Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION as boto3 reads them, or the
    # *_FILE settings below (Docker / Kubernetes secrets mounted as files).
    media_store: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None  # empty: AWS
    s3_bucket: str = "smolvlm2-media"
    s3_prefix: str = ""  # keys inside the bucket start with it ("demo/" → demo/uploads/<hash>.jpg)
    s3_create_bucket: bool = True  # create the bucket at start when it does not exist
    s3_timeout_s: float = Field(default=5, gt=0)  # one request: connect and read
    # A store outage shorter than this is waited out (jobs kept, retried); past it the job fails in Russian.
    s3_outage_grace_s: float = Field(default=60, ge=0)
    aws_access_key_id_file: Path | None = None
    aws_secret_access_key_file: Path | None = None
    # The worker's local copies of stored media (s3 only): a follow-up on the same file is not downloaded again.
    worker_cache_mb: float = Field(default=2048, gt=0)
    worker_cache_dir: Path = Path("data/worker-cache")

    @field_validator("prompt_cache_mb", "api_key", "s3_endpoint_url", "aws_access_key_id_file",
                     "aws_secret_access_key_file", "metrics_token", "auth_users", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("model_device", "model_engine", "answer_language", "media_store", mode="before")
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
