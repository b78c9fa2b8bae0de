"""Where the weights come from: a local folder, the Hugging Face cache, or a download with its progress shown in
the heartbeat. With no hub and no cache, the worker says so within seconds, in Russian, with the remedies,
instead of retrying for minutes."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from common import fmt
from common.errors import ModelUnavailable

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
MODEL_SETTING = "SMOLVLM2_MODEL_ID"  # the setting a message tells the user to change (translators have their own)
IGNORE = ["onnx/*", "*.onnx", "*.gguf", "*.msgpack", "*.h5", "*.ot", "*.tflite"]  # formats we never load


def cache_dir(hf_home: str | None) -> str:
    return hf_home or os.environ.get("HF_HOME") or "~/.cache/huggingface"


def offline_missing(model_id: str, hf_home: str | None, setting: str = MODEL_SETTING) -> str:
    return (
        f"Модель «{model_id}» не найдена в локальном кэше ({cache_dir(hf_home)}), а загрузка отключена "
        "(HF_HUB_OFFLINE=1). Запустите обработчик один раз с HF_HUB_OFFLINE=0 и доступом в интернет, чтобы "
        f"скачать веса, или укажите в {setting} путь к локальной папке с моделью."
    )


def hub_unreachable(model_id: str, hf_home: str | None, endpoint: str, reason: str,
                    setting: str = MODEL_SETTING) -> str:
    return (
        f"Нет доступа к Hugging Face Hub ({endpoint}: {reason}), а модели «{model_id}» нет в локальном кэше "
        f"({cache_dir(hf_home)}). Что сделать: 1) скачайте веса на машине с интернетом в этот кэш и задайте "
        f"HF_HUB_OFFLINE=1, или 2) укажите в {setting} путь к локальной папке с моделью, "
        "или 3) откройте обработчику доступ к Hugging Face Hub."
    )


def not_loadable(model_id: str, hf_home: str | None, detail: str = "") -> str:
    return (
        f"Не удалось загрузить модель «{model_id}» (кэш: {cache_dir(hf_home)})"
        + (f": {detail}" if detail else "")
        + ". Проверьте идентификатор модели (SMOLVLM2_MODEL_ID) и целостность файлов в кэше."
    )


def failure_message(model_id: str, offline: bool, hf_home: str | None) -> str:
    return offline_missing(model_id, hf_home) if offline else not_loadable(model_id, hf_home)


def probe_hub(endpoint: str, model_id: str, timeout: float | None = None) -> str | None:
    """None if the hub answers for this model; else the reason, in Russian. One request, no retries."""
    import httpx

    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    try:
        resp = httpx.get(f"{endpoint}/api/models/{model_id}", timeout=timeout, follow_redirects=True)
    except httpx.TimeoutException:
        return f"нет ответа за {fmt.number(timeout, 0)} с"
    except httpx.HTTPError as exc:
        return f"соединение не установлено ({type(exc).__name__})"
    if resp.status_code in (401, 403, 404):
        return f"модель не найдена или закрыта (HTTP {resp.status_code})"
    if resp.status_code >= 400:
        return f"HTTP {resp.status_code}"
    return None


class _Progress(tqdm):
    """huggingface_hub's byte progress bars, reported instead of printed."""

    report: Callable[[int], None] | None = None

    def __init__(self, *args, **kwargs) -> None:
        kwargs["file"] = io.StringIO()
        kwargs.pop("name", None)
        super().__init__(*args, **kwargs)

    def update(self, n=1):
        out = super().update(n)
        if self.unit == "B" and type(self).report is not None and str(self.desc).startswith("Reconstruct"):
            type(self).report(int(self.n))
        return out


def local_weights(model_id: str, offline: bool, hf_home: str | None, on_progress: Callable[[str], None],
                  setting: str = MODEL_SETTING, label: str = "модели") -> str:
    """A folder with the model's files: model_id itself, the cached snapshot, or a fresh download. setting and label
    name the model in messages ("SMOLVLM2_MODEL_ID", "загрузка модели: 40 %")."""
    if Path(model_id).is_dir():
        return model_id
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:  # a complete cache needs no network at all
        return snapshot_download(model_id, local_files_only=True, ignore_patterns=IGNORE)
    except (LocalEntryNotFoundError, OSError, ValueError):
        if offline:
            raise ModelUnavailable(offline_missing(model_id, hf_home, setting)) from None
    endpoint = constants.ENDPOINT
    reason = probe_hub(endpoint, model_id)
    if reason is not None:
        raise ModelUnavailable(hub_unreachable(model_id, hf_home, endpoint, reason, setting))
    files = snapshot_download(model_id, ignore_patterns=IGNORE, dry_run=True, tqdm_class=_Progress)
    total = sum(getattr(f, "file_size", 0) or 0 for f in files)
    on_progress(f"загрузка {label}: 0 % — {fmt.size(0)} из {fmt.size(total)}")

    def report(done: int) -> None:
        pct = min(100, round(100 * done / total)) if total else 0
        on_progress(f"загрузка {label}: {pct} % — {fmt.size(done)} из {fmt.size(total)}")

    _Progress.report = staticmethod(report)
    try:
        path = snapshot_download(model_id, ignore_patterns=IGNORE, tqdm_class=_Progress)
    finally:
        _Progress.report = None
    log.info("model %s downloaded: %s", model_id, fmt.size(total))
    return path
