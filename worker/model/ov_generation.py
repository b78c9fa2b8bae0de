"""One greedy answer on an OpenVINO model (worker/model/openvino.py), token by token: streaming, stopping (user stop,
deadline, loops) and the prompt cache, as worker/model/generation.py does for torch. The language model is stateful
(its KV cache lives in the infer request): the prompt cache keeps a copy of that state, cropped to the shared prefix
and put back for a follow-up, which then computes only its new tokens (neither the vision encoder nor the old turns)."""

from __future__ import annotations

import numpy as np
import torch

from common.schemas import JobResult
from worker.model.generation import LOOP_REPEATS, Stop, eos_ids, finish, media_end
from worker.model.prompt_cache import PromptCache
from worker.model.streamer import TextSoFar

SEQ_AXIS = 2  # the KV states are [batch, kv heads, tokens, head dim]


class StateCopy:
    """The language model's KV state after some tokens, copied out of the infer request (by state name). Quacks like
    the DynamicCache the prompt cache keeps: get_seq_length(), crop(), nbytes; crop() keeps views of the arrays,
    so a copy handed to another conversation leaves the stored one as it was."""

    def __init__(self, arrays: dict[str, np.ndarray], length: int) -> None:
        self.arrays, self.length = arrays, length

    @classmethod
    def of(cls, lm) -> StateCopy:
        return cls({s.name: np.array(s.state.data, copy=True) for s in lm.request.query_state()}, lm._past_length)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, max_length: int) -> None:
        n = self.length + max_length if max_length < 0 else min(max_length, self.length)
        self.arrays = {k: a[:, :, :n] for k, a in self.arrays.items()}
        self.length = n

    def restore(self, lm) -> None:
        import openvino as ov

        lm.compile()
        for state in lm.request.query_state():
            state.state = ov.Tensor(np.ascontiguousarray(self.arrays[state.name]))
        lm._past_length = self.length


def _step(lm, ids: torch.Tensor, total: int) -> torch.Tensor:
    """ids (1 × n) on top of the state, which then covers total tokens: the last position's logits."""
    embeds = torch.from_numpy(np.asarray(lm.embed_tokens(ids)))
    out = lm.forward(None, inputs_embeds=embeds, attention_mask=torch.ones(1, total, dtype=torch.long),
                     past_key_values=((),))
    return out.logits[0, -1]


def _prefill(model, inputs) -> torch.Tensor:
    """A whole prompt from an empty state: the vision encoder, then the language model; the last logits."""
    ids = inputs["input_ids"]
    embeds, mask, _ = model.get_multimodal_embeddings(
        ids, pixel_values=inputs.get("pixel_values"), attention_mask=inputs["attention_mask"],
        pixel_attention_mask=inputs.get("pixel_attention_mask"))
    out = model.language_model.forward(None, inputs_embeds=embeds, attention_mask=mask, past_key_values=None)
    return out.logits[0, -1]


def generate(model, tokenizer, inputs, result: JobResult, *, max_new_tokens: int, deadline: float, limit_s: float,
             on_text=None, stop=None, cache: PromptCache | None = None, media_key: str | None = None,
             conversation: str | None = None, loop_repeats: int = LOOP_REPEATS, **_) -> JobResult:
    """result with the raw answer, the token counts and times, truncated, and status cancelled if the user stopped
    it (the text is then partial)."""
    lm = model.language_model
    ids = inputs["input_ids"][0]
    streamer = TextSoFar(tokenizer, on_text)
    streamer.put(ids)  # as generate() does: the prompt first
    use_cache = cache is not None and cache.enabled and media_key is not None
    hit = cache.take(media_key, ids, media_end(ids, model.config.image_token_id), conversation) if use_cache else None
    if hit is not None:
        hit.entry.cache.restore(lm)
        logits = _step(lm, ids[None, hit.reused:], int(ids.shape[0]))
    else:
        logits = _prefill(model, inputs)
    eos = eos_ids(model)
    stopping = Stop(streamer, stop, deadline, limit_s, loop_repeats)  # as torch: the stop, the deadline, a loop
    new: list[int] = []
    while True:
        token = int(logits.argmax())
        new.append(token)
        streamer.put(torch.tensor([token]))
        if stopping() or token in eos or len(new) >= max_new_tokens:
            break
        logits = _step(lm, torch.tensor([[token]]), int(ids.shape[0]) + len(new))
    if use_cache:  # the state covers the prompt and every new token but the last (never fed back)
        covered = torch.cat([ids, torch.tensor(new[:-1], dtype=ids.dtype)])
        cache.store(media_key, covered, StateCopy.of(lm), conversation)
    return finish(result, tokenizer, new, prompt_tokens=int(ids.shape[0]), streamer=streamer,
                  stopped=stopping.stopped, max_new_tokens=max_new_tokens, eos=eos,
                  cached_tokens=hit.reused if hit else 0)
