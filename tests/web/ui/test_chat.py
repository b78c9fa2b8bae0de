"""web.ui.chat without a queue: the typed conversation state and the chatbot's messages."""

from common.schemas import MediaKind, MediaRef
from web.queue.kinds import STOPPED
from web.ui.chat import ChatState, ChatTurn, messages


def test_chat_messages():
    msgs = messages("/tmp/a.png", [ChatTurn(question="q1", answer="a1")], pending="q2", partial="a2…")
    assert msgs[0] == {"role": "user", "content": {"path": "/tmp/a.png"}}
    assert [m["content"] for m in msgs[1:]] == ["q1", "a1", "q2", "a2…"]
    assert messages(None, [], pending="q")[-1]["content"] == "…"


def test_chat_turns_carry_their_note():
    msgs = messages(None, [ChatTurn(question="q", answer="частичный ответ", note=STOPPED)])
    assert msgs[-1]["content"] == "частичный ответ\n\n*— остановлено*"


def test_a_new_conversation_keeps_the_file_and_forgets_the_turns():
    state = ChatState(media=MediaRef(path="uploads/a.png", kind=MediaKind.image), display="/tmp/a.png",
                      turns=[ChatTurn(question="q", answer="a")])
    fresh = state.restarted()
    assert (fresh.media, fresh.display, fresh.turns) == (state.media, state.display, [])
    assert fresh.conversation != state.conversation  # the workers' prompt cache of the old one is not reused
    assert ChatState().conversation != ChatState().conversation
