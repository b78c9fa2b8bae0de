"""What every model engine must do in a real worker process (tests/stack/test_int8_engine.py,
test_openvino_engine.py): each check takes a stack whose one serving worker runs the engine, with .image, .text and
.video stored in it."""

from __future__ import annotations

import time

from common.schemas import Box, ChatRequest, JobStatus, OcrRequest, RegionRequest, Turn
from scripts import jobs, samples


def store_media(stack, folder) -> None:
    """stack.image, .text and .video: a scene, a text image and a 3-s clip, in the stack's store."""
    stack.image = stack.store.save_upload(samples.scene_image(folder / "scene.png", (320, 240)))
    stack.text = stack.store.save_upload(samples.text_image(folder / "text.png"))
    stack.video = stack.store.save_upload(samples.video(folder / "clip.mp4", seconds=3, fps=10, size=(160, 120)))


def image_chat_and_a_cached_follow_up(stack, dtype: str) -> None:
    first = jobs.run(stack.client, ChatRequest(media=stack.image, question="Describe it.", conversation="c1",
                                               max_new_tokens=8))
    assert first.status == JobStatus.ok and first.dtype == dtype and first.generated_tokens > 0, first.error
    follow = jobs.run(stack.client, ChatRequest(media=stack.image, question="What colour is it?", conversation="c1",
                                                history=[Turn(question="Describe it.", answer=first.answer)],
                                                max_new_tokens=8))
    assert follow.status == JobStatus.ok, follow.error
    assert follow.cached_tokens > first.prompt_tokens // 2  # the image and the first turn were not computed again


def video_ocr_and_region(stack) -> None:
    video = jobs.run(stack.client, ChatRequest(media=stack.video, question="Describe the video.", max_new_tokens=6))
    assert video.status == JobStatus.ok and video.frames, video.error
    ocr = jobs.run(stack.client, OcrRequest(media=stack.text, max_new_tokens=6))
    plain = jobs.run(stack.client, ChatRequest(media=stack.text, question="Describe it.", max_new_tokens=6))
    assert ocr.status == JobStatus.ok and plain.status == JobStatus.ok, (ocr.error, plain.error)
    assert ocr.prompt_tokens > plain.prompt_tokens  # OCR splits the image into tiles (IMAGE_SPLITTING=auto)
    region = jobs.run(stack.client, RegionRequest(media=stack.image, box=Box(x1=40, y1=40, x2=200, y2=180),
                                                  max_new_tokens=6))
    assert region.status == JobStatus.ok and region.answer.strip(), region.error


def streams_and_stops_at_the_next_token(stack) -> None:
    req = ChatRequest(media=stack.image, question="Describe the image.", max_new_tokens=3000)
    stack.client.submit(req)
    partial_at = None
    for update in jobs.follow(stack.client, req):
        if update.text and partial_at is None:
            partial_at = time.monotonic()
            assert stack.client.cancel(req.job_id)
        if update.result is not None:
            res = update.result
            break
    assert partial_at is not None  # text streamed before the end
    assert res.status == JobStatus.cancelled and res.answer.strip()
    assert res.generated_tokens < 3000 and time.monotonic() - partial_at < 5


def slow_env(endless_env) -> dict[str, str]:
    """A worker whose answer can end only at the time limit: endless, with no length limit."""
    return {**endless_env, "JOB_TIME_LIMIT": "1", "MAX_NEW_TOKENS": "100000"}


def the_time_limit_holds(stack, slow_worker) -> None:
    """slow_worker: started with slow_env; the first worker is stopped."""
    stack.workers[0].stop()  # only the slow worker serves now
    try:
        res = jobs.run(stack.client, ChatRequest(media=stack.image, question="Describe.", max_new_tokens=100000))
        assert res.status == JobStatus.error and "Превышено время обработки (1 с)" in res.error
        assert res.processing_s < 5 and slow_worker.alive
    finally:
        slow_worker.stop()
