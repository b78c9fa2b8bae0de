"""Two conversations about the same image each keep their own prompt-cache entry: the second one reuses the
image's part of the first one's cache without taking it away (issue 20: the first client's next turn found a few
cached tokens instead of its whole previous turn). An in-process Runtime on the tiny model."""

from __future__ import annotations

import pytest

from common.schemas import ChatRequest, JobStatus, Turn
from scripts import samples
from tests.worker.model.conftest import offline_cpu
from worker.media import image as media
from worker.model.generation import media_end
from worker.runtime import Runtime


@pytest.fixture(scope="module")
def env(tmp_path_factory, test_model):
    root = tmp_path_factory.mktemp("cache-sharing")
    s, store = offline_cpu(test_model, root, max_new_tokens=8, model_dtype="float32")
    image = store.save_upload(samples.scene_image(root / "scene.png", (320, 240)))
    rt = Runtime(s)
    assert rt.setup(), rt.load_error
    return rt, store, image


def ask(env, conversation: str, question: str, history=()):
    rt, store, image = env
    req = ChatRequest(media=image, question=question, history=list(history), conversation=conversation)
    result = rt.predict(req, store.resolve(image))
    assert result.status == JobStatus.ok, result.error
    return result


def image_tokens(env) -> int:
    rt, store, image = env
    text = rt.processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}])
    inputs = rt.processor(text=[text], images=[[media.load_image(store.resolve(image), 10**8)]],
                          return_tensors="pt", do_image_splitting=rt._splitting("chat"))
    return media_end(inputs["input_ids"][0], rt.model.config.image_token_id)


def test_a_second_conversation_does_not_take_the_first_ones_entry(env):
    first = ask(env, "alice", "Describe it.")
    other = ask(env, "bob", "What is in the picture?")
    assert other.cached_tokens >= image_tokens(env)  # bob still skips the image: its part of alice's cache
    follow = ask(env, "alice", "And the colours?", [Turn(question="Describe it.", answer=first.answer)])
    # alice's whole first turn (its prompt, at least) is reused, not only the image part bob left behind.
    assert follow.cached_tokens >= first.prompt_tokens, (follow.cached_tokens, first.prompt_tokens)
    again = ask(env, "bob", "Anything else?", [Turn(question="What is in the picture?", answer=other.answer)])
    assert again.cached_tokens >= other.prompt_tokens
    assert env[0].cache.stats()[0] == 2  # one entry per conversation
