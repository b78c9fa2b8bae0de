"""web.queue.kinds: each kind's request built with its checks in order (file, question, history), its history
rule, its default question, and what its result says."""

import pytest

from common import contract
from common.errors import MediaError, UserError
from common.schemas import JobKind, JobResult, JobStatus, MediaKind, MediaRef, Turn
from common.settings import Settings
from web.queue.box import BoxError
from web.queue.kinds import CHAT, NO_TEXT, OCR, REGION, STOPPED, TRUNCATED

S = Settings(_env_file=None, max_question_chars=20, max_history_turns=2)
IMAGE = MediaRef(path="uploads/a.png", kind=MediaKind.image)
VIDEO = MediaRef(path="uploads/a.mp4", kind=MediaKind.video)


def result(kind: JobKind, **kw) -> JobResult:
    return JobResult(job_id="j", kind=kind, status=kw.pop("status", JobStatus.ok), **kw)


def test_chat_request_checks_the_file_then_the_question_then_trims_the_history():
    with pytest.raises(UserError, match=contract.NEED_MEDIA):
        CHAT.request(S, None, "")
    with pytest.raises(UserError, match=contract.EMPTY_QUESTION):
        CHAT.request(S, VIDEO, "  ")
    with pytest.raises(UserError, match="Вопрос слишком длинный: 21 символов при ограничении 20"):
        CHAT.request(S, IMAGE, "x" * 21)
    turns = [Turn(question=f"q{i}", answer=f"a{i}") for i in range(3)]
    req = CHAT.request(S, IMAGE, "  Что это? ", turns, conversation="c1", max_new_tokens=5)
    assert (req.kind, req.question, req.conversation, req.max_new_tokens) == (JobKind.chat, "Что это?", "c1", 5)
    assert [t.question for t in req.history] == ["q1", "q2"]  # at most MAX_HISTORY_TURNS, the latest


def test_chat_default_question_follows_the_media():
    assert CHAT.default_question(MediaKind.video) == "Опиши видео"
    assert CHAT.is_default(" Опиши изображение ") and not CHAT.is_default("Сколько фигур?")


def test_chat_note_says_a_stop_or_a_cut():
    assert CHAT.note(result(JobKind.chat, status=JobStatus.cancelled, truncated=True)) == STOPPED
    assert CHAT.note(result(JobKind.chat, truncated=True)) == TRUNCATED
    assert CHAT.note(result(JobKind.chat, answer="a")) is None


def test_ocr_takes_an_image_and_gives_its_text_as_a_file(tmp_path):
    from common.store import MediaStore

    with pytest.raises(MediaError, match=contract.IMAGE_ONLY):
        OCR.request(VIDEO)
    assert OCR.request(IMAGE).kind == JobKind.ocr
    store = MediaStore(tmp_path / "media", tmp_path / "results", 1 << 20)
    path = OCR.text_file(result(JobKind.ocr, answer="Строка 1\nСтрока 2"), store)
    assert path.name.startswith("ocr_result_") and path.read_text(encoding="utf-8") == "Строка 1\nСтрока 2"
    assert OCR.note(result(JobKind.ocr, answer="")) == NO_TEXT
    assert OCR.note(result(JobKind.ocr, answer="", status=JobStatus.cancelled)) is None


def test_region_checks_the_box_against_the_image():
    req = REGION.request(IMAGE, " 10, 20 ,110,120", 640, 480)
    assert req.box.as_tuple() == (10, 20, 110, 120)
    with pytest.raises(BoxError, match="выходит за правый край"):
        REGION.request(IMAGE, "10,20,700,120", 640, 480)
    with pytest.raises(MediaError):
        REGION.request(VIDEO, "10,20,110,120", 640, 480)
