"""Probe for issue 18: can an OpenVINO (optimum-intel) SmolVLM2 keep a prompt cache as the torch path does? Its language
model is stateful (the KV cache lives inside the infer request); this copies that state out after a turn's prompt and
back in for a follow-up, which then prefills only its new tokens. Measured against the same follow-up prefilled in
full (vision encoder included), with the last position's logits compared. Runs in the OpenVINO venv on the models
bench/cpu_engines.py converted:

    .venv-ov/bin/python -m bench.ov_prefix_cache bench/work/ov/2.2B-int4 2.2B

Prints one JSON line; the figures go to docs/bench.md, the raw lines to bench/results/ov_prefix_cache.json (a probe,
not a bench row)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from bench.engine_child import inputs_for, rss_gb

WORK = Path(__file__).resolve().parent / "work"
ANSWER_TOKENS = 16  # the first turn's answer, then the follow-up's own words
FOLLOW_UP = "<end_of_utterance>\nUser: What colour is the largest shape?<end_of_utterance>\nAssistant:"


def prefill(model, inputs: dict, ids: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A whole prompt from nothing (vision encoder, then the language model): last logits, seconds."""
    t0 = time.perf_counter()
    embeds, mask, _ = model.get_multimodal_embeddings(
        ids, pixel_values=inputs["pixel_values"], attention_mask=torch.ones_like(ids),
        pixel_attention_mask=inputs.get("pixel_attention_mask"))
    out = model.language_model.forward(input_ids=None, inputs_embeds=embeds, attention_mask=mask,
                                       past_key_values=None)
    return out.logits[0, -1].float(), time.perf_counter() - t0


def step(lm, ids: torch.Tensor, total: int) -> torch.Tensor:
    """New tokens on top of the state: last logits."""
    embeds = torch.from_numpy(np.asarray(lm.embed_tokens(ids)))
    out = lm.forward(input_ids=None, inputs_embeds=embeds, attention_mask=torch.ones(1, total, dtype=torch.long),
                     past_key_values=((),))
    return out.logits[0, -1].float()


def snapshot(lm) -> tuple[list[np.ndarray], int]:
    return [np.array(s.state.data, copy=True) for s in lm.request.query_state()], lm._past_length


def restore(lm, saved: tuple[list[np.ndarray], int]) -> None:
    arrays, past = saved
    for state, arr in zip(lm.request.query_state(), arrays, strict=True):
        state.state = ov.Tensor(arr)
    lm._past_length = past


def probe(model, processor, media: dict, what: str) -> dict:
    lm = model.language_model
    inputs = inputs_for(processor, media, what)
    prompt = inputs["input_ids"]
    logits, first_ttft = prefill(model, inputs, prompt)
    saved = snapshot(lm)
    answer, total = [], prompt.shape[1]
    for _ in range(ANSWER_TOKENS):  # greedy, token by token
        answer.append(int(logits.argmax()))
        total += 1
        logits = step(lm, torch.tensor([[answer[-1]]]), total)
    tail = processor.tokenizer(FOLLOW_UP, add_special_tokens=False, return_tensors="pt")["input_ids"]
    suffix = torch.cat([torch.tensor([answer]), tail], dim=1)
    full = torch.cat([prompt, suffix], dim=1)

    ref, cold_ttft = prefill(model, inputs, full)  # the follow-up without a cache
    t0 = time.perf_counter()
    restore(lm, saved)
    got = step(lm, suffix, full.shape[1])
    cached_ttft = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = snapshot(lm)  # what keeping the follow-up's own state for the next turn costs
    snap_s = time.perf_counter() - t0
    kv_mb = sum(a.nbytes for a in again[0]) / 2**20
    return {"what": what, "prompt_tokens": int(prompt.shape[1]), "suffix_tokens": int(suffix.shape[1]),
            "first_ttft_s": round(first_ttft, 3), "follow_up_cold_ttft_s": round(cold_ttft, 3),
            "follow_up_cached_ttft_s": round(cached_ttft, 3),
            "cached_vs_first": round(cached_ttft / first_ttft, 3),
            "top1_match": bool(int(ref.argmax()) == int(got.argmax())),
            "max_abs_logit_diff": round(float((ref - got).abs().max()), 4),
            "logit_scale": round(float(ref.abs().max()), 3), "kv_state_mb": round(kv_mb, 1),
            "kv_dtype": str(again[0][0].dtype), "snapshot_s": round(snap_s, 3)}


def main(model_dir: str, size: str) -> dict:
    from optimum.intel import OVModelForVisualCausalLM
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    model = OVModelForVisualCausalLM.from_pretrained(model_dir, device="CPU")
    media = {"image": str(WORK / "media" / "photo-1280x960.png"),
             "video": str(WORK / "media" / f"clip-8-frames-{size}.npz")}
    probe(model, processor, media, "image")  # warm-up: compiles every part
    rows = [probe(model, processor, media, what) for what in ("image", "split", "video")]
    return {"model": model_dir, "rows": rows, "rss_gb": rss_gb(), "peak_rss_gb": rss_gb("VmHWM"),
            "ov_version": ov.__version__}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
