"""One greedy generate() call: streaming, stopping (user stop, deadline, loops), the prompt cache, and the CPU
bf16 kernel switch. Fills the job's result with the raw text and what happened; clean-up of the text is the
caller's."""

from __future__ import annotations

import time

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from common.errors import JobTimeout
from common.schemas import JobResult, JobStatus
from worker.model.postprocess import find_cycle
from worker.model.prompt_cache import PromptCache
from worker.model.streamer import TextSoFar

VISION_INPUTS = ("pixel_values", "pixel_attention_mask")
LOOP_REPEATS = 4  # as common.settings' default: warm-up and bench calls use it too


class Stop(StoppingCriteria):
    """Checked after every token: the user's stop (a threading.Event, no I/O here), the deadline, a loop (the last
    1–32 tokens repeated loop_repeats times; 0: not checked). Also called by the OpenVINO loop
    (worker/model/ov_generation.py), with no arguments."""

    def __init__(self, streamer: TextSoFar, stop, deadline: float, limit_s: float,
                 loop_repeats: int = LOOP_REPEATS) -> None:
        self.streamer, self.stop, self.deadline, self.limit_s = streamer, stop, deadline, limit_s
        self.loop_repeats = loop_repeats
        self.stopped = False

    def __call__(self, input_ids=None, scores=None, **kw):
        if self.stop is not None and self.stop.is_set():
            self.stopped = True
            return True
        if time.time() > self.deadline:
            raise JobTimeout(self.limit_s)
        return bool(self.loop_repeats) and find_cycle(self.streamer.ids, max_period=32,
                                                      min_repeats=self.loop_repeats) is not None


def media_end(ids: torch.Tensor, image_token_id: int | None) -> int:
    """One past the last image/video placeholder token: a cache must cover this much to skip the encoder."""
    if image_token_id is None:
        return 0
    where = (ids == image_token_id).nonzero()
    return int(where[-1]) + 1 if where.numel() else 0


def generate(model, tokenizer, inputs, result: JobResult, *, device: str, max_new_tokens: int, deadline: float,
             limit_s: float, on_text=None, stop=None, cache: PromptCache | None = None, media_key: str | None = None,
             conversation: str | None = None, loop_repeats: int = LOOP_REPEATS) -> JobResult:
    """result with the raw answer, the token counts and times, truncated, and status cancelled if the user
    stopped it (the text is then partial)."""
    onednn = torch.backends.mkldnn.enabled
    decode_mode = None
    if device == "cpu" and model.dtype == torch.bfloat16:
        # oneDNN makes the bf16 prefill several times faster, but the one-token decode steps slower than
        # PyTorch's own kernels (docs/bench.md): off from the first new token to the end of the job.
        def decode_mode() -> None:
            torch.backends.mkldnn.enabled = False

    streamer = TextSoFar(tokenizer, on_text, decode_mode)
    stopping = Stop(streamer, stop, deadline, limit_s, loop_repeats)
    inputs = inputs.to(device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    ids = inputs["input_ids"][0]
    use_cache = cache is not None and cache.enabled and media_key is not None
    hit = None
    if use_cache:
        hit = cache.take(media_key, ids.cpu(), media_end(ids.cpu(), model.config.image_token_id), conversation)
    if hit is not None:  # every image token is in the cache: the vision encoder does not run at all
        for name in VISION_INPUTS:
            inputs.pop(name, None)
    try:
        with torch.inference_mode():
            out = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer,
                stopping_criteria=StoppingCriteriaList([stopping]), return_dict_in_generate=True,
                past_key_values=hit.entry.cache if hit else None,
            )
    finally:
        torch.backends.mkldnn.enabled = onednn
    prompt_tokens = int(ids.shape[0])
    new = out.sequences[0, prompt_tokens:]
    if use_cache and out.past_key_values is not None:
        covered = out.past_key_values.get_seq_length()  # the last new token has no keys/values yet
        cache.store(media_key, out.sequences[0, :covered], out.past_key_values, conversation)
    return finish(result, tokenizer, new, prompt_tokens=prompt_tokens, streamer=streamer, stopped=stopping.stopped,
                  max_new_tokens=max_new_tokens, eos=eos_ids(model), cached_tokens=hit.reused if hit else 0)


def eos_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos])


def finish(result: JobResult, tokenizer, new, *, prompt_tokens: int, streamer: TextSoFar, stopped: bool,
           max_new_tokens: int, eos: set[int], cached_tokens: int) -> JobResult:
    """result with the raw answer (new: the generated ids), the counts and times, truncated (the limit reached with
    no end of answer) and status cancelled if the user stopped it."""
    n_new = len(new)
    truncated = not stopped and n_new >= max_new_tokens and int(new[-1]) not in eos
    return result.model_copy(update={
        "answer": tokenizer.decode(new, skip_special_tokens=True), "prompt_tokens": prompt_tokens,
        "generated_tokens": n_new, "first_token_at": streamer.first_token_at, "truncated": truncated,
        "cached_tokens": cached_tokens, "status": JobStatus.cancelled if stopped else result.status,
    })
