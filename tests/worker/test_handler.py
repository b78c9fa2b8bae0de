from common.schemas import ChatRequest, MediaRef, Turn
from common.settings import Settings
from worker.handler import HISTORY_CHARS_PER_QUESTION, _check_request


def _req(history):
    return ChatRequest(media=MediaRef(path="a.png", kind="image"), question="q", history=history)


def test_history_is_capped_by_turns_then_by_size():
    s = Settings(_env_file=None, max_history_turns=3, max_question_chars=10)
    req = _req([Turn(question=f"q{i}", answer="a") for i in range(6)])
    _check_request(req, s)
    assert [t.question for t in req.history] == ["q3", "q4", "q5"]
    huge = "x" * (HISTORY_CHARS_PER_QUESTION * 10)
    req = _req([Turn(question="old", answer=huge), Turn(question="new", answer="ok")])
    _check_request(req, s)
    assert [t.question for t in req.history] == ["new"]
