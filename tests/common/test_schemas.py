import json

import pytest
from pydantic import ValidationError

from common.schemas import Box, ChatRequest, JobResult, JobStatus, MediaRef, OcrRequest, RegionRequest, parse_request


def test_requests_round_trip_through_json():
    media = MediaRef(path="uploads/a.png", kind="image")
    for req in (
        ChatRequest(media=media, question="Опиши изображение", history=[{"question": "q", "answer": "a"}]),
        OcrRequest(media=media),
        RegionRequest(media=media, box=Box(x1=1, y1=2, x2=30, y2=40)),
    ):
        wire = json.dumps(req.model_dump(mode="json"))
        back = parse_request(json.loads(wire))
        assert type(back) is type(req)
        assert back == req


def test_unknown_kind_rejected():
    with pytest.raises(ValidationError):
        parse_request({"kind": "shell", "media": {"path": "x.png", "kind": "image"}})


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "uploads/../../x.png", "a/\x00b.png", "\\abs.png"])
def test_media_ref_refuses_escaping_paths(path):
    with pytest.raises(ValidationError):
        MediaRef(path=path, kind="image")


@pytest.mark.parametrize("box", [(5, 0, 5, 10), (0, 9, 10, 3), (-1, 0, 4, 4)])
def test_box_must_be_ordered_and_non_negative(box):
    with pytest.raises(ValidationError):
        Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3])


def test_job_id_is_restricted():
    with pytest.raises(ValidationError):
        OcrRequest(job_id="../../x", media=MediaRef(path="a.png", kind="image"))


def test_result_timings():
    r = JobResult(job_id="j", kind="chat", status=JobStatus.ok, queued_at=10.0, started_at=10.5,
                  first_token_at=11.0, finished_at=12.0, generated_tokens=11)
    assert r.queue_wait_s == pytest.approx(0.5)
    assert r.processing_s == pytest.approx(1.5)
    assert r.tokens_per_s == pytest.approx(10.0)
