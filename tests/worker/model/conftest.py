"""In-process Runtimes on the tiny model: their settings and media store, made one way."""

from __future__ import annotations

from pathlib import Path

from common.settings import Settings
from common.store import MediaStore


def offline_cpu(test_model: Path, root: Path, **overrides) -> tuple[Settings, MediaStore]:
    """Settings for a Runtime on the CPU, offline, one torch thread, media and results under root; and its store."""
    s = Settings(_env_file=None, smolvlm2_model_id=str(test_model), model_device="cpu", hf_hub_offline=True,
                 media_dir=root / "media", results_dir=root / "results", torch_threads=1, **overrides)
    return s, MediaStore(s.media_dir, s.results_dir, s.max_upload_bytes)
