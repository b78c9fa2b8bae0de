"""The OpenAI endpoint through a Redis outage, like the UI: a call made while Redis is down waits through
REDIS_OUTAGE_GRACE_S and is answered when it is back (a streaming call keeps its stream open with SSE comments);
past the grace, 503 with the Russian message (issue 20: it answered 503 at once). A real stack: redis-server
stopped and started again on its port, a worker, `python -m web`."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import pytest

from scripts import samples

pytestmark = pytest.mark.integration
GRACE_S = 12


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory):
    st = make_stack(redis_outage_grace_s=GRACE_S)
    st.start_worker("outage", REDIS_OUTAGE_GRACE_S=str(GRACE_S))
    st.start_web(REDIS_OUTAGE_GRACE_S=str(GRACE_S))
    image = samples.scene_image(tmp_path_factory.mktemp("outage") / "scene.png", (160, 120))
    st.body = {"model": "any", "max_tokens": 4, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(
            image.read_bytes()).decode()}}, {"type": "text", "text": "What is it?"}]}]}
    return st


def outage(stack, seconds: float) -> threading.Thread:
    """Stop redis-server now and start it again (same port) after seconds, in the background."""
    stack.redis.stop()

    def back() -> None:
        time.sleep(seconds)
        stack.redis.start()

    t = threading.Thread(target=back, daemon=True)
    t.start()
    return t


def test_a_call_during_a_short_outage_is_answered(stack):
    blink = outage(stack, 5)
    t0 = time.monotonic()
    r = httpx.post(stack.url + "v1/chat/completions", json=stack.body, timeout=120)
    took = time.monotonic() - t0
    blink.join()
    print(f"/v1 through a 5-s Redis blink: {r.status_code} after {took:.1f} s")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["role"] == "assistant" and took >= 4


def test_a_stream_during_a_short_outage_stays_open_with_comments(stack):
    blink = outage(stack, 5)
    comments, chunks = [], []
    with httpx.stream("POST", stack.url + "v1/chat/completions", json={**stack.body, "stream": True},
                      timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    blink.join()
    assert any("Нет связи с очередью" in c for c in comments), comments
    assert chunks and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_past_the_grace_the_answer_is_503_in_russian(stack):
    long = outage(stack, GRACE_S + 6)
    t0 = time.monotonic()
    r = httpx.post(stack.url + "v1/chat/completions", json=stack.body, timeout=120)
    took = time.monotonic() - t0
    long.join()
    print(f"/v1 through a {GRACE_S + 6}-s outage: {r.status_code} after {took:.1f} s")
    assert r.status_code == 503
    assert r.json()["error"]["message"].startswith("Очередь недоступна: нет связи с Redis")
    assert GRACE_S - 1 <= took <= GRACE_S + 4
