"""worker.model.streamer.TextSoFar: the text so far after every token, decoded incrementally (O(n), whole chars)."""

import torch

from worker.model.streamer import COMMIT_EVERY, TextSoFar


class CountingTokenizer:
    """Token i → chr(i); token 0 → half of a character (decodes to U+FFFD until the next token completes it)."""

    def __init__(self) -> None:
        self.decoded_tokens = 0

    def decode(self, ids, skip_special_tokens=True) -> str:
        self.decoded_tokens += len(ids)
        out = ""
        for i, t in enumerate(ids):
            if t == 0:
                out += "\ufffd" if i == len(ids) - 1 else ""
            else:
                out += chr(t)
        return out


def test_the_text_so_far_and_the_first_token_callback():
    tok, seen, first = CountingTokenizer(), [], []
    s = TextSoFar(tok, on_text=lambda text, n: seen.append((text, n)), on_first_token=lambda: first.append(1))
    s.put(torch.tensor([[65, 66]]))  # the prompt: ignored
    for t in (ord("п"), ord("р"), ord("и")):
        s.put(torch.tensor([t]))
    assert seen == [("п", 1), ("пр", 2), ("при", 3)] and first == [1] and s.first_token_at is not None
    s.end()


def test_decoding_is_incremental():
    tok = CountingTokenizer()
    s = TextSoFar(tok)
    s.put(torch.tensor([[1]]))
    n = 400
    for i in range(n):
        s.put(torch.tensor([ord("a") + i % 26]))
        s.text()
    assert s.text() == "".join(chr(ord("a") + i % 26) for i in range(n))
    assert tok.decoded_tokens <= COMMIT_EVERY * n < n * n // 2  # only the tail after the last commit, not all


def test_a_split_character_is_not_committed_half_done():
    tok = CountingTokenizer()
    s = TextSoFar(tok)
    s.put(torch.tensor([[1]]))
    for _ in range(COMMIT_EVERY - 1):
        s.put(torch.tensor([ord("x")]))
    s.put(torch.tensor([0]))  # ends on half a character: shown, but kept in the tail
    assert s.text().endswith("\ufffd")
    s.put(torch.tensor([ord("y")]))
    assert s.text() == "x" * (COMMIT_EVERY - 1) + "y"
