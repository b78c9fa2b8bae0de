from common.schemas import MediaKind, Turn
from worker.model import prompts


def test_first_question_carries_the_media():
    msgs = prompts.chat_messages(MediaKind.image, [], "What colour is the car?")
    text = {"type": "text", "text": "What colour is the car?"}
    assert msgs == [{"role": "user", "content": [{"type": "image"}, text]}]


def test_history_is_replayed_with_media_only_once():
    history = [Turn(question="q1", answer="a1"), Turn(question="q2", answer="a2")]
    msgs = prompts.chat_messages(MediaKind.video, history, "q3")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"][0] == {"type": "video"}
    media_items = [c for m in msgs for c in m["content"] if c["type"] in ("image", "video")]
    assert len(media_items) == 1
    assert [m["content"][-1]["text"] for m in msgs] == ["q1", "a1", "q2", "a2", "q3"]


def test_ocr_and_region_prompts():
    ocr = prompts.ocr_messages()
    assert ocr[0]["content"][0] == {"type": "image"}
    assert "no commentary" in ocr[0]["content"][1]["text"]
    assert "object" in prompts.region_messages()[0]["content"][1]["text"]
