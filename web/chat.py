"""The «Чат» tab: a file, questions about it and follow-ups; «Новый диалог»; the video's frames under the answer."""

from __future__ import annotations

import asyncio
import uuid

import gradio as gr

from common import contract
from common.errors import UserError
from common.schemas import ChatRequest, JobStatus, MediaRef, Turn
from web import render
from web.ui import CHAT, HandlerBase, buttons


def new_chat(media: dict | None = None, display: str | None = None) -> dict:
    return {"media": media, "display": display, "turns": [], "conversation": uuid.uuid4().hex}


CHAT_OUTPUTS = ("chatbot", "state", "question", "status", "send", "stop", "frames", "failed")


def chat_outputs(**values) -> tuple:
    """The chat event's outputs in CHAT_OUTPUTS order; what is not given stays as it is (gr.skip)."""
    unknown = set(values) - set(CHAT_OUTPUTS)
    assert not unknown, unknown
    return tuple(values[name] if name in values else gr.skip() for name in CHAT_OUTPUTS)



class ChatHandlers(HandlerBase):
    async def stop_chat(self, request: gr.Request) -> str:
        return await self.stop(request, CHAT)


    async def chat_file(self, file: str | None, question: str | None, request: gr.Request = None):
        """A new file (upload, example or clear) starts a new conversation; an answer still running about the old
        one is stopped (its end must not land in the new chat). → state, chatbot, question, status"""
        running = self.active.reset(self.session_of(request), CHAT)
        if running is not None:
            try:
                await asyncio.to_thread(self.client.cancel, running.job_id, running.kind)
            except UserError:
                pass  # Redis away: the job stops when its page's stream closes or its watch key expires
        if not file:
            return new_chat(), [], question, ""
        try:
            ref = await asyncio.to_thread(self.save, file)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never raised into the UI
            return new_chat(), [], question, render.error_line(self.failure(exc))
        if not (question or "").strip() or question.strip() in contract.DEFAULT_QUESTION.values():
            question = contract.DEFAULT_QUESTION[ref.kind]
        state = new_chat(ref.model_dump(mode="json"), file)
        return state, render.chat_messages(file, []), question, render.uploaded_line(ref.kind)

    async def chat_reset(self, state: dict | None, request: gr.Request):
        """«Новый диалог» / 🗑: stop the running answer, forget the turns, keep the file.
        → state, chatbot, status, send, stop, frames"""
        state = state or new_chat()
        running = self.active.reset(self.session_of(request), CHAT)
        try:
            if running is not None:
                await asyncio.to_thread(self.client.cancel, running.job_id, running.kind)
            if state.get("turns") and state.get("conversation"):
                await asyncio.to_thread(self.client.forget_conversation, state["conversation"])
        except UserError:
            pass  # Redis away: the job stops with its page, the cache entry expires
        fresh = new_chat(state.get("media"), state.get("display"))
        return (fresh, render.chat_messages(fresh["display"], []), "Начат новый диалог.", *buttons(False),
                gr.Gallery(value=None, visible=False))

    async def chat_ui(self, question: str | None, state: dict | None, request: gr.Request):
        """→ chat_outputs() (an async generator: the answer streams). A failed question goes to `failed`, and the
        page puts it back in the box only if the user has not typed the next one meanwhile (web.app)."""
        state = state or new_chat()
        session = self.session_of(request)
        display, turns = state.get("display"), [list(t) for t in state.get("turns", [])]
        if self.active.get(session, CHAT) is not None:  # sent again while an answer runs: refused, never lost
            yield chat_outputs(status=render.busy_line())
            return
        try:
            if not state.get("media"):
                raise UserError(contract.NEED_MEDIA)
            q = contract.check_question(question, self.settings.max_question_chars)
            history = contract.trim_history([Turn(question=t[0], answer=t[1]) for t in turns],
                                            self.settings.max_history_turns, self.settings.max_question_chars)
            req = ChatRequest(media=MediaRef.model_validate(state["media"]), history=history, question=q,
                              conversation=state.get("conversation"))
        except Exception as exc:  # noqa: BLE001
            yield chat_outputs(status=render.error_line(self.failure(exc)))
            return
        epoch = self.active.epoch(session, CHAT)
        self.active.begin(session, CHAT, req.job_id, req.kind)
        running, idle = buttons(True), buttons(False)
        try:
            yield chat_outputs(chatbot=render.chat_messages(display, turns, q), question="", failed="",
                               status=render.submitted_line(), send=running[0], stop=running[1],
                               frames=gr.Gallery(visible=False))
            async for upd in self.progress(req, request):
                if upd.result is None:
                    if upd.heartbeat or self.active.epoch(session, CHAT) != epoch:  # nothing new / reset
                        yield chat_outputs()
                        continue
                    yield chat_outputs(chatbot=render.chat_messages(display, turns, q, upd.text),
                                       status=self.line(upd, CHAT))
                    continue
                self.active.end(session, CHAT, req.job_id)  # before the last yield: a quick next question goes
                res = upd.result
                if self.active.epoch(session, CHAT) != epoch:  # reset while it ran: the old turn is gone
                    yield chat_outputs(send=idle[0], stop=idle[1])
                elif res.status == JobStatus.error or not res.answer:
                    yield chat_outputs(chatbot=render.chat_messages(display, turns), failed=q,
                                       status=self.line(upd, CHAT), send=idle[0], stop=idle[1])
                else:
                    note = render.STOPPED if res.status == JobStatus.cancelled else (
                        "ответ обрезан: достигнут предел длины" if res.truncated else None)
                    turns.append([q, res.answer, note] if note else [q, res.answer])
                    yield chat_outputs(chatbot=render.chat_messages(display, turns), state={**state, "turns": turns},
                                       status=self.line(upd, CHAT), send=idle[0], stop=idle[1],
                                       frames=self.frames(res))
        except Exception as exc:  # noqa: BLE001
            self.active.end(session, CHAT, req.job_id)
            yield chat_outputs(chatbot=render.chat_messages(display, turns), failed=q, send=idle[0], stop=idle[1],
                               status=render.error_line(self.failure(exc)))
        finally:
            self.active.end(session, CHAT, req.job_id)

    def frames(self, result):
        """The sampled video frames with their times, under the answer; hidden for an image."""
        shots = [(str(self.settings.results_dir / f.thumbnail), f"{render.number(f.timestamp)} с")
                 for f in result.frames if f.thumbnail]
        if not shots:
            return gr.Gallery(value=None, visible=False)
        return gr.Gallery(value=shots, visible=True, label=render.frames_caption(result))
