"""One CPU engine, one model, in its own process (and venv): load, warm up, then the measured jobs; prints one JSON
line. Imports only torch, transformers, numpy and PIL (plus the engine's own package), so that it runs in the
OpenVINO venv too, whose transformers differs from the project's. Called by bench/cpu_engines.py:

    python -m bench.engine_child '{"engine": "torch-int8", "model": "...", "media": "...", "runs": [...]}'

Engines: torch-fp32 (the fidelity reference), torch-bf16 (the worker's tuned path: oneDNN for the prefill, off from
the first new token), torch-int8 (worker/model/quantize.py), openvino (an optimum-intel export, its own int8/int4,
run by the worker's own loop: worker/model/ov_generation.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

QUESTION = "Describe this image."
OCR = "Read all the text visible in this image. Output only the text itself."
VIDEO_QUESTION = "Describe this video."


def rss_gb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 2**20, 2)
    return 0.0


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


class FirstToken:
    """A streamer that notes when the first new token came (and can switch kernels then, as the worker does)."""

    def __init__(self, on_first=None) -> None:
        self.prompt_seen, self.first_at, self.on_first, self.n = False, None, on_first, 0

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.n += int(value.numel())
        if self.first_at is None:
            self.first_at = time.time()
            if self.on_first:
                self.on_first()

    def end(self) -> None:
        pass


def load(engine: str, model: str):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model)
    if engine == "openvino":
        from optimum.intel import OVModelForVisualCausalLM

        return processor, OVModelForVisualCausalLM.from_pretrained(model, device="CPU")
    from transformers import AutoModelForImageTextToText

    dtype = torch.bfloat16 if engine in ("torch-bf16", "torch-int8") else torch.float32
    m = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype, attn_implementation="sdpa").eval()
    if engine == "torch-int8":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from worker.model.quantize import quantize_int8

        quantize_int8(m)
    return processor, m


def inputs_for(processor, media: dict, what: str):
    image = Image.open(media["image"]).convert("RGB")
    if what == "video":
        from transformers.video_utils import VideoMetadata

        clip = np.load(media["video"])
        frames = list(clip["frames"])
        h, w = frames[0].shape[:2]
        meta = VideoMetadata(total_num_frames=int(clip["total"]), fps=float(clip["fps"]), width=w, height=h,
                             duration=float(clip["duration"]), video_backend="pyav",
                             frames_indices=[int(i) for i in clip["indices"]])
        msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": VIDEO_QUESTION}]}]
        text = processor.apply_chat_template(msgs, add_generation_prompt=True)
        try:
            return processor(text=[text], videos=[frames], video_metadata=[meta], do_sample_frames=False,
                             return_tensors="pt")
        except ValueError:  # transformers 5.5 (the OpenVINO venv) wants a list of videos per prompt
            return processor(text=[text], videos=[[frames]], video_metadata=[[meta]], do_sample_frames=False,
                             return_tensors="pt")
    question = OCR if what == "split" else QUESTION
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True)
    return processor(text=[text], images=[[image]], do_image_splitting=(what == "split"), return_tensors="pt")


def job_row(what: str, prompt: int, tokens: list[int], logits, start: float, first: float, end: float) -> dict:
    """One job's figures: times, the tokens, and the prompt's last-position logits (top 5, the top-1 margin)."""
    top = torch.topk(logits, 5)
    return {"what": what, "prompt_tokens": prompt, "new_tokens": len(tokens), "ttft_s": round(first - start, 3),
            "total_s": round(end - start, 3),
            "decode_tok_s": round((len(tokens) - 1) / (end - first), 2) if len(tokens) > 1 and end > first else None,
            "tokens": tokens, "top5": [int(i) for i in top.indices],
            "top5_logits": [round(float(v), 4) for v in top.values],
            "margin": round(float(top.values[0] - top.values[1]), 5)}


def run_ov_job(processor, model, media: dict, what: str, new_tokens: int) -> dict:
    """The worker's own OpenVINO loop (worker/model/ov_generation.py: a prefill, then one step per token), greedy,
    exactly new_tokens tokens (no end-of-answer stop: random weights)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from worker.model.ov_generation import _prefill, _step

    inputs = inputs_for(processor, media, what)
    prompt = int(inputs["input_ids"].shape[1])
    start = time.time()
    logits = _prefill(model, inputs).float()
    first = time.time()
    tokens = [int(logits.argmax())]
    while len(tokens) < new_tokens:
        tokens.append(int(_step(model.language_model, torch.tensor([[tokens[-1]]]), prompt + len(tokens)).argmax()))
    end = time.time()
    return job_row(what, prompt, tokens, logits, start, first, end)


def run_job(engine: str, processor, model, media: dict, what: str, new_tokens: int) -> dict:
    if engine == "openvino":
        return run_ov_job(processor, model, media, what, new_tokens)
    inputs = inputs_for(processor, media, what)
    if "pixel_values" in inputs and engine.startswith("torch"):
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    onednn = torch.backends.mkldnn.enabled
    switch = None
    if engine == "torch-bf16":  # the worker's CPU bf16 path (worker/model/generation.py)
        def switch() -> None:
            torch.backends.mkldnn.enabled = False
    streamer = FirstToken(switch)
    start = time.time()
    try:
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 streamer=streamer, return_dict_in_generate=True, output_logits=True)
    finally:
        torch.backends.mkldnn.enabled = onednn
    end = time.time()
    prompt = int(inputs["input_ids"].shape[1])
    tokens = [int(t) for t in out.sequences[0, prompt:]]
    first = streamer.first_at or end
    logits = out.logits[0][0].float()  # the prompt's last position
    return job_row(what, prompt, tokens, logits, start, first, end)


def main(spec: dict) -> dict:
    engine, media = spec["engine"], spec["media"]
    t0 = time.perf_counter()
    processor, model = load(engine, spec["model"])
    load_s = time.perf_counter() - t0
    rss_loaded = rss_gb()
    t0 = time.perf_counter()
    run_job(engine, processor, model, media, "image", 2)  # warm-up, as the worker's
    warm_s = time.perf_counter() - t0
    load_peak = rss_gb("VmHWM")
    reset_peak()
    jobs = [run_job(engine, processor, model, media, what, n) for what, n in spec["runs"]]
    return {"engine": engine, "load_s": round(load_s, 2), "warm_up_s": round(warm_s, 2), "rss_loaded_gb": rss_loaded,
            "load_peak_rss_gb": load_peak, "job_peak_rss_gb": rss_gb("VmHWM"), "jobs": jobs,
            "torch_threads": torch.get_num_threads(), "versions": _versions()}


def _versions() -> dict:
    out = {}
    for name in ("torch", "transformers", "openvino", "optimum.intel"):
        try:
            mod = __import__(name, fromlist=["__version__"])
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            pass
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
