"""The «Чат» tab: a file, questions about it and follow-ups; «Новый диалог»; the video's frames under the answer.
The conversation is a typed state (ChatState) kept by the page, one per session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import gradio as gr
from pydantic import BaseModel, Field

from common import fmt
from common.errors import UserError
from common.schemas import JobResult, JobStatus, MediaRef, Turn
from web.http import uploads
from web.queue.kinds import CHAT
from web.ui import render
from web.ui.tab import SKIP, Outputs, Tab, buttons

CATCH_UP_S = 3.0  # a reset waits at most this long for the stopped answer's send to see it (web.ui.tab.HEARTBEAT_S)
FILE_WAIT_S = 1.5  # a send with no file yet: how long its upload may take to begin
SETTLE_S = 0.2
UPLOAD_WAIT_S = 600.0  # a send waits at most this long for the upload under way
WAITING_FOR_UPLOAD = "Файл ещё загружается: вопрос уйдёт, как только загрузка закончится."
UPLOAD_FAILED = "Файл не загрузился, вопрос не отправлен: загрузите файл снова и нажмите «Отправить»."


@dataclass
class FileChange:
    at: float  # time.monotonic() when the page's file change was handled
    state: ChatState | None  # the conversation it started; None: the file was refused
    problem: str | None = None  # the refusal, as the page shows it


log = logging.getLogger(__name__)

SEND = Outputs("chatbot", "state", "question", "status", "run", "stop", "frames", "failed")
FILE = Outputs("state", "chatbot", "question", "status")
RESET = Outputs("state", "chatbot", "status", "run", "stop", "frames")


class ChatTurn(Turn):
    """A turn as shown (question and answer in the page's language) and as the model had it."""

    note: str | None = None  # said under the answer: stopped, cut at the token limit, not translated (why)
    question_en: str | None = None  # what the model was asked, when it differs (a translated or UI question)
    answer_en: str | None = None  # what the model wrote, when the answer shown is its translation

    def model_turn(self) -> Turn:
        """The turn the model sees next time: its own English, exactly (its prompt cache stays valid)."""
        return Turn(question=self.question_en or self.question, answer=self.answer_en or self.answer, original=True)


class ChatState(BaseModel):
    media: MediaRef | None = None
    display: str | None = None  # the file as the page shows it (Gradio's copy of the upload)
    turns: list[ChatTurn] = Field(default_factory=list)
    conversation: str = Field(default_factory=lambda: uuid.uuid4().hex)  # the workers' prompt cache key

    def restarted(self) -> ChatState:
        """The same file, no turns, a new conversation."""
        return ChatState(media=self.media, display=self.display)


def answer_with_note(answer: str, note: str | None) -> str:
    return f"{answer}\n\n*— {note}*".strip() if note else answer


def messages(display: str | None, turns: Sequence[ChatTurn], pending: str | None = None,
             partial: str | None = None) -> list[dict]:
    """Messages for gr.Chatbot: the media first, then each turn (with its note); a pending question with its
    partial answer."""
    out: list[dict] = []
    if display:
        out.append({"role": "user", "content": {"path": display}})
    for turn in turns:
        out.append({"role": "user", "content": turn.question})
        out.append({"role": "assistant", "content": answer_with_note(turn.answer, turn.note)
                    + render.original_block(turn.answer_en)})
    if pending is not None:
        out.append({"role": "user", "content": pending})
        out.append({"role": "assistant", "content": partial or "…"})
    return out


class ChatTab(Tab):
    SLOT = "chat"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.files: dict[str, FileChange] = {}  # session → its last file change
        self.caught_up: dict[str, asyncio.Event] = {}  # job id → its send has seen the reset (or ended)

    async def stop_running(self, session: str) -> None:
        """A reset or a new file: the answer still running is stopped (its end must not land in the new chat). Returns
        once its send has seen the reset: a partial answer it yielded just before is then on its way to the page,
        ahead of the caller's cleared chat, which would otherwise be painted over by it."""
        running = self.active.reset(session, self.SLOT)
        if running is None:
            return
        try:
            await asyncio.to_thread(self.client.cancel, running.job_id, running.kind)
        finally:
            if (seen := self.caught_up.get(running.job_id)) is not None:
                with contextlib.suppress(TimeoutError):  # its next update comes within HEARTBEAT_S
                    await asyncio.wait_for(seen.wait(), CATCH_UP_S)

    async def file_changed(self, file: str | None, question: str | None, request: gr.Request = None) -> tuple:
        """A new file (upload, example or clear) starts a new conversation. → FILE"""
        session = self.session_of(request)
        ref = None
        if file:
            try:
                ref = await asyncio.to_thread(self.save, file)
            except Exception as exc:  # noqa: BLE001 - shown to the user, never raised into the UI
                await self._stop_quietly(session)
                line = render.error_line(self.failure(exc))
                return self.file_done(session, None, FILE(state=ChatState(), chatbot=[], status=line), line)
        last = self.files.get(session)
        if last is not None and last.state is not None and last.state.media == ref:
            # Gradio's File fires `change` twice for one upload at times (~0.1 s apart): the second one must not stop
            # the question that went with the file meanwhile, nor clear its answer. The same file (or a second ✕).
            return FILE()
        await self._stop_quietly(session)
        if ref is None:
            return self.file_done(session, ChatState(), FILE(state=ChatState(), chatbot=[], status=""))
        # The box keeps what the user typed (a question sent during the upload may be on its way): only an empty or
        # default one gets this file's default question.
        fill = CHAT.default_question(ref.kind) if not (question or "").strip() or CHAT.is_default(question) else SKIP()
        state = ChatState(media=ref, display=file)
        return self.file_done(session, state, FILE(state=state, chatbot=messages(file, []), question=fill,
                                                   status=render.uploaded_line(ref.kind)))

    async def _stop_quietly(self, session: str) -> None:
        try:
            await self.stop_running(session)
        except UserError:
            pass  # Redis away: the job stops when its page's stream closes or its watch key expires

    def file_done(self, session: str, state: ChatState | None, outputs: tuple, problem: str | None = None) -> tuple:
        """Note what the session's last file change came to: a question sent during its upload goes on with it."""
        self.files[session] = FileChange(time.monotonic(), state, problem)
        while len(self.files) > 10_000:
            self.files.pop(next(iter(self.files)))
        return outputs

    async def after_upload(self, session: str, who: str | None, state: ChatState, since: float):
        """A question sent while its file uploads: yields the waiting line while an upload of this person is under
        way (or, with no file yet, about to begin: the page starts it as the file is set), then the state to send
        with, or the reason it cannot go (a str, already on the page: not to be overwritten)."""
        said = False
        change = self.files.get(session)
        if (change is not None and change.state is not None and state.media is not None
                and change.state.media != state.media):
            # The page sent its state before its last file change came back: a ✕ (the next file may be about to
            # upload; sent with the old file, the question was lost when the new file's change stopped it and cleared
            # the chat), or a file dropped over the old one (the answer about the old file would have appeared under
            # the new one). The server's state is the page's latest.
            state = change.state
        while who is not None and time.monotonic() - since < UPLOAD_WAIT_S:
            under_way, ended_at, accepted = uploads.upload_state(who)
            change = self.files.get(session)
            changed_at = change.at if change else float("-inf")
            now = time.monotonic()
            unseen = ended_at is not None and accepted and changed_at < ended_at and now - ended_at < uploads.SETTLE_S
            # No file and no upload ended since the last change (a fresh page, or right after a ✕): one may begin.
            starting = (state.media is None and (ended_at is None or ended_at < changed_at)
                        and now - since < FILE_WAIT_S)
            refused = (state.media is None and ended_at is not None and ended_at > since - FILE_WAIT_S
                       and not accepted and not under_way)
            if refused:
                yield UPLOAD_FAILED
                return
            if not (under_way or unseen or starting):
                break
            if (under_way or unseen) and not said:
                said = True
                yield None
            await asyncio.sleep(0.05)
        change = self.files.get(session)
        if change is not None and change.at > since:  # the file changed while the question waited: its new state
            await asyncio.sleep(SETTLE_S)  # the change's own outputs reach the page first
            yield change.problem if change.state is None else change.state
            return
        yield state

    async def reset(self, state: ChatState | None, request: gr.Request) -> tuple:
        """«Новый диалог» / 🗑: stop the running answer, forget the turns, keep the file. → RESET"""
        state = state or ChatState()
        try:
            await self.stop_running(self.session_of(request))
            if state.turns:
                await asyncio.to_thread(self.client.forget_conversation, state.conversation)
        except UserError:
            pass  # Redis away: the job stops with its page, the cache entry expires
        fresh = state.restarted()
        return RESET(state=fresh, chatbot=messages(fresh.display, []), status="Начат новый диалог.",
                     frames=gr.Gallery(value=None, visible=False), **buttons(False))

    async def send(self, question: str | None, state: ChatState | None, request: gr.Request = None,
                   language: str | None = None):
        """→ SEND (an async generator: the answer streams). A failed question goes to `failed`, and the page puts
        it back in the box only if the user has not typed the next one meanwhile (web.ui.layout). language: the
        page's «Язык ответа» (ru / en)."""
        state = state or ChatState()
        session = self.session_of(request)
        if self.active.get(session, self.SLOT) is not None:  # sent again while an answer runs: refused, never lost
            yield SEND(status=render.busy_line())
            return
        async for step in self.after_upload(session, self.client_of(request), state, time.monotonic()):
            if step is None:
                yield SEND(status=WAITING_FOR_UPLOAD)  # the question stays in its box meanwhile
            elif isinstance(step, str):
                yield SEND(status=render.error_line(step) if step == UPLOAD_FAILED else SKIP())
                return
            else:
                state = step
        display, turns = state.display, list(state.turns)
        try:
            req = CHAT.request(self.settings, state.media, question, [t.model_turn() for t in turns],
                               conversation=state.conversation, answer_language=language)
        except Exception as exc:  # noqa: BLE001
            yield SEND(status=render.error_line(self.failure(exc)))
            return
        q = req.question
        epoch = self.active.epoch(session, self.SLOT)
        self.active.begin(session, self.SLOT, req.job_id, req.kind, self.joined(request))
        seen = self.caught_up[req.job_id] = asyncio.Event()
        try:
            yield SEND(chatbot=messages(display, turns, q), question="", failed="", status=render.submitted_line(),
                       frames=gr.Gallery(visible=False), **buttons(True))
            async for upd in self.progress(req, request):
                if self.active.epoch(session, self.SLOT) != epoch:
                    seen.set()  # reset: resumed, so the last yield has been sent; nothing of this turn follows it
                if upd.result is None:
                    if upd.heartbeat or seen.is_set():  # nothing new / reset
                        yield SEND()
                        continue
                    yield SEND(chatbot=messages(display, turns, q, upd.text), status=self.line(upd, req.kind))
                    continue
                self.active.end(session, self.SLOT, req.job_id)  # before the last yield: a quick next question goes
                res = upd.result
                if seen.is_set():  # reset while it ran: the old turn is gone
                    yield SEND(**buttons(False))
                elif res.status == JobStatus.error or not res.answer:
                    yield SEND(chatbot=messages(display, turns), failed=q, status=self.line(upd, req.kind),
                               **buttons(False))
                else:
                    turns.append(ChatTurn(question=q, answer=res.answer, note=CHAT.note(res),
                                          question_en=res.question_en if res.question_en != q else None,
                                          answer_en=res.answer_en))
                    yield SEND(chatbot=messages(display, turns), state=state.model_copy(update={"turns": turns}),
                               status=self.line(upd, req.kind), frames=await asyncio.to_thread(self.frames, res),
                               **buttons(False))
        except Exception as exc:  # noqa: BLE001
            self.active.end(session, self.SLOT, req.job_id)
            yield SEND(chatbot=messages(display, turns), failed=q, status=render.error_line(self.failure(exc)),
                       **buttons(False))
        finally:
            self.active.end(session, self.SLOT, req.job_id)
            seen.set()
            self.caught_up.pop(req.job_id, None)

    def frames(self, result: JobResult):
        """The sampled video frames with their times, under the answer; hidden for an image. Each comes from the
        store (a local path on the shared volume; fetched from S3 by this process): a frame it cannot get is left
        out, the answer stays."""
        shots = []
        for f in result.frames:
            if not f.thumbnail:
                continue
            try:
                shots.append((str(self.store.result_path(f.thumbnail)), f"{fmt.number(f.timestamp)} с"))
            except UserError as exc:
                log.warning("job %s: frame %s not shown: %s", result.job_id, f.thumbnail, exc.message)
        if not shots:
            return gr.Gallery(value=None, visible=False)
        return gr.Gallery(value=shots, visible=True, label=render.frames_caption(result))
