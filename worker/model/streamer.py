"""A generate() streamer that publishes the answer so far, decoding incrementally."""

from __future__ import annotations

import time

from transformers.generation.streamers import BaseStreamer

COMMIT_EVERY = 8  # tokens decoded again at most, per update


class TextSoFar(BaseStreamer):
    """Receives new tokens from generate() and calls on_text(text so far, token count).

    Decoding is incremental: text is committed once it ends on a whole character, and only the tokens
    after that point are decoded again, so a long answer costs O(n), not O(n²)."""

    def __init__(self, tokenizer, on_text=None, on_first_token=None) -> None:
        self.tokenizer, self.on_text, self.on_first_token = tokenizer, on_text, on_first_token
        self.ids: list[int] = []
        self.first_token_at: float | None = None
        self._prompt_seen = False
        self._committed = ""
        self._offset = 0

    def text(self) -> str:
        tail = self.tokenizer.decode(self.ids[self._offset :], skip_special_tokens=True)
        if tail and not tail.endswith("\ufffd") and len(self.ids) - self._offset >= COMMIT_EVERY:
            self._committed += tail
            self._offset = len(self.ids)
            return self._committed
        return self._committed + tail

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        if self.first_token_at is None:
            self.first_token_at = time.time()
            if self.on_first_token is not None:
                self.on_first_token()
        if self.on_text is not None:
            self.on_text(self.text(), len(self.ids))

    def end(self) -> None:
        pass
