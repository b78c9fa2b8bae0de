"""One MarianMT translator (OPUS-MT ru→en or en→ru): loaded through the worker's own loading code (HF_HOME, offline
rules, download progress), on the main model's device; on CPU its Linear layers run in dynamic int8 (≈ 4× fp32,
docs/translation.md); decoded greedily, in batches, stopped by the job's stop event or a loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from worker.model import loading
from worker.model.postprocess import find_cycle

log = logging.getLogger(__name__)

# A unit longer than this is split (segment.split_long): OPUS-MT was trained on sentences, its positions end at
# 512, and the Russian comes out ~1.2× longer than the English, so the answer must fit too.
MAX_INPUT_TOKENS = 200
PRECISIONS = ("auto", "int8", "float32", "bfloat16", "float16")


def output_limit(source_tokens: int) -> int:
    """At most this many new tokens for a source of this length: twice as long and a margin, within 512."""
    return min(2 * source_tokens + 16, 511)


def resolve_precision(precision: str, device: str, main_dtype: str) -> str:
    """auto: int8 (dynamic, Linear layers) on CPU; on a GPU the main model's half type."""
    if precision != "auto":
        return "float32" if precision == "int8" and device != "cpu" else precision
    if device == "cpu":
        return "int8"
    return main_dtype if main_dtype in ("bfloat16", "float16") else "float16"


def _release_memory() -> None:
    """Hand the freed fp32 weights back to the system (glibc keeps freed heap otherwise: ~85 MB per model)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


class _Stop(StoppingCriteria):
    """Per row: the user's stop (all rows), or a loop at the end of the row's tokens."""

    def __init__(self, stop: threading.Event | None, loops: bool = True) -> None:
        self.stop, self.loops = stop, loops
        self.stopped = False

    def __call__(self, input_ids, scores, **kw):
        if self.stop is not None and self.stop.is_set():
            self.stopped = True
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.loops:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        rows = [find_cycle(row.tolist()[-48:], max_period=12, min_repeats=4) is not None for row in input_ids]
        return torch.tensor(rows, dtype=torch.bool, device=input_ids.device)


class Translator:
    def __init__(self, model, tokenizer, device: str, precision: str, model_id: str) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.precision, self.model_id = precision, model_id
        # Benchmarks with random weights only: the output length as a function of the source length (a random
        # model never ends by itself).
        self.length_for: Callable[[int], int] | None = None

    @classmethod
    def load(cls, model_id: str, *, device: str, precision: str, offline: bool, hf_home: str | None,
             on_progress: Callable[[str], None], setting: str, label: str) -> Translator:
        """Find (or download) and load one translator. Raises common.errors.ModelUnavailable with a Russian
        message, or OSError / ValueError / RuntimeError (out of memory) for the caller to turn into a note."""
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        t0 = time.perf_counter()
        path = loading.local_weights(model_id, offline, hf_home, on_progress, setting=setting, label=label)
        on_progress(f"загрузка {label} в память…")
        tokenizer = AutoTokenizer.from_pretrained(path)
        dtype = torch.float32 if precision == "int8" else getattr(torch, precision)
        model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=dtype).eval()
        if precision == "int8":
            # Dynamic int8 on every Linear, the tied 62k-word output projection included (its fp32 matmul alone is
            # ~12 ms of each token): weights quantized once, activations per call. The fp32 copy is let go.
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            _release_memory()
        model = model.to(device)
        log.info("translator %s loaded on %s (%s) in %.1fs", model_id, device, precision, time.perf_counter() - t0)
        return cls(model, tokenizer, device, precision, model_id)

    def count(self, text: str) -> int:
        return len(self.tokenizer.tokenize(text))  # (no "longer than 512" warning: long units are split)

    def translate(self, texts: list[str], stop: threading.Event | None = None) -> list[str] | None:
        """The translations of texts, in order; None if stopped meanwhile (a cut translation is never shown)."""
        if not texts:
            return []
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                             max_length=MAX_INPUT_TOKENS * 2 + 16)  # units are split to MAX_INPUT_TOKENS before
        enc = enc.to(self.device)
        n = int(enc["attention_mask"].sum(dim=1).max())
        kwargs: dict = {"max_new_tokens": output_limit(n)}
        if self.length_for is not None:
            kwargs["min_new_tokens"] = kwargs["max_new_tokens"] = self.length_for(n)
        criteria = _Stop(stop, loops=self.length_for is None)
        with torch.inference_mode():
            out = self.model.generate(**enc, num_beams=1, do_sample=False, max_length=None,
                                      stopping_criteria=StoppingCriteriaList([criteria]), **kwargs)
        if criteria.stopped:
            return None
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
