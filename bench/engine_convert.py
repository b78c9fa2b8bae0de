"""Export a SmolVLM2 checkpoint to OpenVINO IR with int8 or int4 weights (optimum-intel + NNCF, data-free), for
bench/cpu_engines.py. Runs in .venv-ov (its own transformers):

    .venv-ov/bin/python -m bench.engine_convert SRC OUT 8|4

optimum-intel 2.2.0 caps its SmolVLM export at transformers 4.57.6, the release whose vision patch positions are
wrong (transformers issue 41190); the cap is lifted here and the export runs on transformers 5.5."""

from __future__ import annotations

import json
import sys
import time


def main(src: str, out: str, bits: int) -> None:
    from optimum.exporters.openvino import model_configs

    for cls in (model_configs.SmolVLMOpenVINOConfig, model_configs.Idefics3OpenVINOConfig):
        cls.MAX_TRANSFORMERS_VERSION = "5.99"
    from optimum.intel import OVModelForVisualCausalLM, OVWeightQuantizationConfig
    from transformers import AutoProcessor

    t0 = time.perf_counter()
    # int8: symmetric per channel (what torch-int8 does too); int4: asymmetric, groups of 64, every layer.
    q = OVWeightQuantizationConfig(bits=8, sym=True) if bits == 8 else OVWeightQuantizationConfig(
        bits=4, sym=False, group_size=64, ratio=1.0)
    model = OVModelForVisualCausalLM.from_pretrained(src, export=True, quantization_config=q)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(src).save_pretrained(out)
    with open(f"{out}/export.json", "w") as fh:
        json.dump({"seconds": round(time.perf_counter() - t0, 1), "bits": bits, "source": src}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
