"""MODEL_ENGINE=openvino-int4 / openvino-int8: the checkpoint exported once to OpenVINO IR with int4 / int8 weights
(optimum-intel + NNCF, data-free) into HF_HOME/openvino/, then run by OpenVINO's CPU plugin. Light to import:
optimum-intel is imported only by a worker whose engine is one of these, in the OpenVINO venv
(requirements/worker-openvino.txt: its own transformers)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

ENGINES = {"openvino-int8": 8, "openvino-int4": 4}
DONE = "export.json"  # written last: a folder without it is an interrupted export
EXPORT_FAILED = ("Не удалось преобразовать модель {model} для OpenVINO ({reason}). Проверьте место на диске в "
                 "HF_HOME или запустите обработчик с MODEL_ENGINE=torch.")
NOT_INSTALLED = ("MODEL_ENGINE={engine} недоступен: в этом окружении нет OpenVINO (optimum-intel). Запустите "
                 "обработчик из образа или окружения OpenVINO (docs/engines.md). Модель запущена как обычно (torch).")


def installed() -> bool:
    try:
        import optimum.intel  # noqa: F401
    except ImportError:
        return False
    return True


def export_dir(hf_home: Path, model_id: str, bits: int) -> Path:
    """Where the export of model_id (a hub id or a local folder) lives: one folder per model and weight width."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "--", model_id.strip("/"))[-80:]
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return Path(hf_home) / "openvino" / f"{name}-{digest}-int{bits}"


def _quantization(bits: int):
    from optimum.intel import OVWeightQuantizationConfig

    # int8: symmetric per channel; int4: asymmetric in groups of 64, every layer (docs/bench.md measured these).
    if bits == 8:
        return OVWeightQuantizationConfig(bits=8, sym=True)
    return OVWeightQuantizationConfig(bits=4, sym=False, group_size=64, ratio=1.0)


def _lift_export_cap() -> None:
    """optimum-intel 2.2.0 caps its SmolVLM export at transformers 4.57.6, the release whose vision patch positions
    are wrong (transformers issue 41190); the export runs on the pinned 5.5 (its results: docs/bench.md)."""
    from optimum.exporters.openvino import model_configs

    for cls in (model_configs.SmolVLMOpenVINOConfig, model_configs.Idefics3OpenVINOConfig):
        cls.MAX_TRANSFORMERS_VERSION = "5.99"


def export(src: Path, out: Path, bits: int) -> Path:
    """Export src (a transformers checkpoint folder) into out, once: several workers sharing HF_HOME wait for the
    first one's export (a file lock) instead of each making its own. Written beside out and renamed into place."""
    if (out / DONE).exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (out / DONE).exists():  # another worker made it meanwhile
                return out
            _lift_export_cap()
            from optimum.intel import OVModelForVisualCausalLM
            from transformers import AutoProcessor

            t0 = time.perf_counter()
            tmp = out.parent / f".{out.name}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                model = OVModelForVisualCausalLM.from_pretrained(src, export=True,
                                                                 quantization_config=_quantization(bits))
                model.save_pretrained(tmp)
                AutoProcessor.from_pretrained(src).save_pretrained(tmp)
                (tmp / DONE).write_text(json.dumps({"bits": bits, "source": str(src),
                                                    "seconds": round(time.perf_counter() - t0, 1)}))
                shutil.rmtree(out, ignore_errors=True)
                tmp.rename(out)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            log.info("exported %s to OpenVINO int%d in %.1fs: %s", src, bits, time.perf_counter() - t0, out)
            return out
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load(path: Path, threads: int = 0):
    """The exported model, compiled for this CPU (latency first: one job at a time per worker)."""
    from optimum.intel import OVModelForVisualCausalLM

    config = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return OVModelForVisualCausalLM.from_pretrained(path, device="CPU", ov_config=config)
