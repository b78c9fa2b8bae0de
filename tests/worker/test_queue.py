"""Through the real queue: redis-server + `python -m worker` on the tiny test model."""

from __future__ import annotations

import pytest

from common import events
from common.schemas import (
    Box,
    ChatRequest,
    EventType,
    JobKind,
    JobState,
    JobStatus,
    MediaRef,
    OcrRequest,
    RegionRequest,
    Turn,
)
from scripts import jobs, samples

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image_ref(store, tmp_path_factory) -> MediaRef:
    src = samples.text_image(tmp_path_factory.mktemp("img") / "text.png")
    return store.save_upload(src)


@pytest.fixture(scope="module")
def video_ref(store, tmp_path_factory) -> MediaRef:
    src = samples.video(tmp_path_factory.mktemp("vid") / "clip.mp4", seconds=5, fps=10, size=(320, 240))
    return store.save_upload(src)


def test_image_chat(client, image_ref, test_model):
    res = jobs.run(client, ChatRequest(media=image_ref, question="Опиши изображение"))
    assert res.status == JobStatus.ok, res.error
    assert res.answer.strip()
    assert 0 < res.generated_tokens <= 12
    assert res.prompt_tokens > 10 and res.device == "cpu" and res.model_id == str(test_model)
    assert res.queued_at <= res.started_at <= res.finished_at


def test_video_chat_uses_sampled_frames_with_timestamps(client, video_ref):
    res = jobs.run(client, ChatRequest(media=video_ref, question="Опиши видео"))
    assert res.status == JobStatus.ok, res.error
    assert res.answer.strip()
    stamps = [f.timestamp for f in res.frames]
    assert len(stamps) == 5 and stamps == sorted(stamps) and stamps[-1] > 3.5  # 1 fps over 5 s


def test_three_turn_conversation_on_one_image(client, image_ref):
    history: list[Turn] = []
    prompt_sizes = []
    for question in ("Опиши изображение", "What colour is the circle?", "Is there any text?"):
        res = jobs.run(client, ChatRequest(media=image_ref, question=question, history=history))
        assert res.status == JobStatus.ok, res.error
        prompt_sizes.append(res.prompt_tokens)
        history.append(Turn(question=question, answer=res.answer))
    # Every turn carries the earlier ones: the prompt grows.
    assert prompt_sizes[0] < prompt_sizes[1] < prompt_sizes[2]


def test_ocr(client, image_ref):
    res = jobs.run(client, OcrRequest(media=image_ref))
    assert res.status == JobStatus.ok, res.error
    assert res.kind == JobKind.ocr and res.generated_tokens > 0
    assert "```" not in res.answer


def test_region(client, image_ref):
    res = jobs.run(client, RegionRequest(media=image_ref, box=Box(x1=460, y1=200, x2=600, y2=330)))
    assert res.status == JobStatus.ok, res.error
    assert res.answer.strip()
    bad = jobs.run(client, RegionRequest(media=image_ref, box=Box(x1=10, y1=10, x2=700, y2=50)))
    assert bad.status == JobStatus.error and "640×360" in bad.error


def test_partial_text_arrives_before_the_result(client, image_ref):
    req = ChatRequest(media=image_ref, question="Describe the image.")
    client.submit(req)
    seen = []
    for update in jobs.follow(client, req):
        seen.append(update)
    assert seen[-1].state == JobState.done and seen[-1].result.status == JobStatus.ok
    running = [u for u in seen if u.state == JobState.running]
    assert running[0].text == ""  # "started": taken by a worker, no token yet
    assert any(u.text for u in running[1:])
    # The partial events were published while generating, before the worker finished.
    stream = events.read_events(client.redis, req.job_id, "0", block_ms=10)
    t_partial = min(e.t for e in stream if e.type == EventType.partial)
    assert t_partial < seen[-1].result.finished_at


def test_video_rejected_outside_chat(client, video_ref):
    res = jobs.run(client, OcrRequest(media=video_ref))
    assert res.status == JobStatus.error and "изображение" in res.error
