"""The conversation prompt cache: the same greedy tokens with and without it, the vision encoder skipped on a
hit, a miss (never an error) where the prefix does not match, bounded bytes, resets. In-process Runtimes on the
tiny model: one with the cache, one without."""

from __future__ import annotations

import pytest
import torch

from common.schemas import ChatRequest, Turn
from scripts import samples
from tests.worker.model.conftest import offline_cpu
from worker.model.prompt_cache import PromptCache, common_prefix
from worker.runtime import Runtime


@pytest.fixture(scope="module")
def env(tmp_path_factory, test_model):
    root = tmp_path_factory.mktemp("prompt-cache")
    s, store = offline_cpu(test_model, root, max_new_tokens=16)
    media = {
        "image": store.save_upload(samples.scene_image(root / "scene.png", (320, 240))),
        "video": store.save_upload(samples.video(root / "clip.mp4", seconds=3, fps=10, size=(160, 120))),
    }
    runtimes = {}
    for dtype in ("float32", "bfloat16"):
        for cached in (True, False):
            rt = Runtime(s.model_copy(update={"model_dtype": dtype, "prompt_cache_mb": None if cached else 0}))
            assert rt.setup(), rt.load_error
            runtimes[dtype, cached] = rt
    return store, media, runtimes


def vision_calls(rt: Runtime) -> list:
    calls: list = []
    rt.model.model.vision_model.register_forward_hook(lambda *_: calls.append(1))
    return calls


def converse(env, kind: str, dtype: str, questions: list[str], conversation: str, trim: int | None = None):
    """Ask questions in turn on both runtimes; yields (with cache, without) predictions of each turn."""
    store, media, runtimes = env
    ref = media[kind]
    history: list[Turn] = []
    for q in questions:
        req = ChatRequest(media=ref, question=q, history=history[-trim:] if trim else history,
                          conversation=conversation)
        with_cache = runtimes[dtype, True].predict(req, store.resolve(ref))
        without = runtimes[dtype, False].predict(req, store.resolve(ref))
        yield with_cache, without
        history.append(Turn(question=q, answer=without.answer))


@pytest.mark.parametrize("kind", ["image", "video"])
def test_three_turns_give_the_same_tokens_and_skip_the_vision_encoder(env, kind):
    rt = env[2]["float32", True]
    calls = vision_calls(rt)
    turns = list(converse(env, kind, "float32", ["Describe it.", "What colour is it?", "Anything else?"],
                          f"three-{kind}"))
    for i, (cached, plain) in enumerate(turns):
        assert cached.answer == plain.answer and cached.generated_tokens == plain.generated_tokens
        assert cached.prompt_tokens == plain.prompt_tokens
        assert (cached.cached_tokens > 0) == (i > 0)  # the first turn computes everything
    assert len(calls) == 1  # the vision encoder ran once, for the first turn only
    assert turns[2][0].cached_tokens > turns[1][0].cached_tokens  # the cache grows with the conversation


def test_bf16_reuses_the_cache_too(env):
    """bf16 on the CPU: the cached prefix was computed in a pass of another length, so its last bits may differ
    and a random-weight model's near-tie may go the other way; the cache is used the same way (docs/bench.md
    measures agreement on real-size models)."""
    rt = env[2]["bfloat16", True]
    calls = vision_calls(rt)
    turns = list(converse(env, "video", "bfloat16", ["Describe it.", "Anything else?"], "bf16"))
    assert turns[0][0].answer == turns[0][1].answer  # no cache involved yet: identical
    assert turns[1][0].cached_tokens > 0 and len(calls) == 1
    assert turns[1][0].prompt_tokens == turns[1][1].prompt_tokens


def test_a_trimmed_history_and_a_changed_question_still_give_the_same_tokens(env):
    # MAX_HISTORY_TURNS = 1: the oldest turn leaves the prompt, so only the media part of the prefix matches.
    turns = list(converse(env, "image", "float32", ["One?", "Two?", "Three?"], "trimmed", trim=1))
    for cached, plain in turns:
        assert cached.answer == plain.answer
    # The same history with another last question: the prefix up to that question is reused.
    again = list(converse(env, "image", "float32", ["One?", "Something else entirely?"], "trimmed"))
    assert again[1][0].answer == again[1][1].answer and again[1][0].cached_tokens > 0


def test_a_miss_is_a_full_prefill_never_an_error(env):
    store, _media, runtimes = env
    rt = runtimes["float32", True]
    other = store.save_upload(samples.scene_image(store.media_dir.parent / "other.png", (200, 200)))
    calls = vision_calls(rt)
    res = rt.predict(ChatRequest(media=other, question="Describe it."), store.resolve(other))
    assert res.cached_tokens == 0 and len(calls) == 1  # another picture: nothing reused


def test_lcp_and_crop():
    assert common_prefix(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 9])) == 2
    assert common_prefix(torch.tensor([1, 2]), torch.tensor([1, 2, 3])) == 2
    assert common_prefix(torch.tensor([], dtype=torch.long), torch.tensor([1])) == 0


class FakeLayer:
    def __init__(self, n: int) -> None:
        self.keys = torch.zeros(1, 1, n, 4)
        self.values = torch.zeros(1, 1, n, 4)


class FakeCache:
    """Just what PromptCache touches: layers of keys/values, get_seq_length, crop(negative)."""

    def __init__(self, n: int) -> None:
        self.layers = [FakeLayer(n)]

    def get_seq_length(self) -> int:
        return self.layers[0].keys.shape[2]

    def crop(self, remove: int) -> None:
        assert remove <= 0
        for layer in self.layers:
            n = layer.keys.shape[2] + remove
            layer.keys, layer.values = layer.keys[:, :, :n], layer.values[:, :, :n]


def test_eviction_by_bytes_least_recently_used_first():
    per_entry = 2 * 10 * 4 * 4  # keys + values, 10 tokens × 4 floats
    cache = PromptCache(max_bytes=2 * per_entry)
    for i in range(3):
        assert cache.store(f"m{i}|image|0", torch.arange(10), FakeCache(10), conversation=f"c{i}")
    assert cache.stats() == (2, 2 * per_entry)  # the oldest went
    assert cache.take("m0|image|0", torch.arange(12), media_end=2) is None
    hit = cache.take("m1|image|0", torch.arange(12), media_end=2)
    assert hit is not None and hit.reused == 10 and hit.entry.cache.get_seq_length() == 10
    assert not cache.store("big|image|0", torch.arange(100), FakeCache(100))  # larger than the budget
    assert PromptCache(0).store("x", torch.arange(3), FakeCache(3)) is False  # PROMPT_CACHE_MB=0: off


def test_take_crops_to_the_prefix_and_needs_the_media_covered():
    cache = PromptCache(10**6)
    cache.store("m|image|0", torch.tensor([5, 6, 7, 8, 9]), FakeCache(5))
    assert cache.take("m|image|0", torch.tensor([5, 6, 1, 1]), media_end=3) is None  # image tokens differ
    hit = cache.take("m|image|0", torch.tensor([5, 6, 7, 1, 1]), media_end=3)
    assert hit.reused == 3 and hit.entry.cache.get_seq_length() == 3
    cache.store("m|image|0", torch.tensor([5, 6, 7]), FakeCache(3))
    same = cache.take("m|image|0", torch.tensor([5, 6, 7]), media_end=1)
    assert same.reused == 2  # the identical prompt: one token is computed again for its logits


def test_reset_and_media_expiry_drop_entries():
    cache = PromptCache(10**6)
    cache.store("a.png|image|0", torch.arange(4), FakeCache(4), conversation="keep")
    cache.store("a.png|image|0", torch.arange(4), FakeCache(4), conversation="reset")
    cache.store("b.png|image|0", torch.arange(4), FakeCache(4), conversation="other")
    assert cache.drop(conversation="reset") == 1
    assert cache.drop(media="b.png") == 1
    assert cache.stats()[0] == 1 and cache.media_paths() == {"a.png"}
    cache.store("a.png|image|0", torch.arange(6), FakeCache(6), conversation="keep")  # supersedes its old state
    assert cache.stats()[0] == 1
