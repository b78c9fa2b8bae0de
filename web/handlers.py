"""Gradio event handlers of the three tabs. Job handlers are async generators: queue position, partial text and
the final line stream in without holding a thread, and a stop, a reset or a closed page stops the worker's job.

No handler lets an exception reach the UI raw: a UserError's message is shown as is, anything else is logged
and shown as GENERIC_FAILURE. The public API's handlers live in web.api."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import gradio as gr

from common import contract, imaging
from common.errors import GENERIC_FAILURE, QueueUnavailable, UserError
from common.schemas import ChatRequest, JobState, JobStatus, MediaRef, OcrRequest, RegionRequest, Turn
from common.settings import Settings
from common.storage import MediaStore
from web import render
from web.jobs import JobClient, Update
from web.preview import make_preview, to_image_coords
from web.session import ActiveJobs, client_address
from web.uploads import discard_on_refusal
from web.validation import BoxError, box_text, corners_to_box, parse_box

log = logging.getLogger(__name__)

WORKERS_CACHE_S = 0.25  # the model line lags a worker by at most this + STATUS_REFRESH_S (web.app)
HEARTBEAT_S = 1.0
STOP_QUIET_S = 1.0
SKIP = gr.skip
CHAT, OCR, REGION = "chat", "ocr", "region"


def new_chat(media: dict | None = None, display: str | None = None) -> dict:
    return {"media": media, "display": display, "turns": [], "conversation": uuid.uuid4().hex}


CHAT_OUTPUTS = ("chatbot", "state", "question", "status", "send", "stop", "frames", "failed")


def chat_outputs(**values) -> tuple:
    """The chat event's outputs in CHAT_OUTPUTS order; what is not given stays as it is (gr.skip)."""
    unknown = set(values) - set(CHAT_OUTPUTS)
    assert not unknown, unknown
    return tuple(values[name] if name in values else gr.skip() for name in CHAT_OUTPUTS)


def buttons(running: bool) -> tuple:
    """(the tab's run button, its «Остановить» button) while a job runs or after it."""
    return gr.Button(interactive=not running), gr.Button(visible=running)


class Handlers:
    def __init__(self, settings: Settings, client: JobClient, store: MediaStore,
                 active: ActiveJobs | None = None) -> None:
        self.settings, self.client, self.store = settings, client, store
        self.active = active or ActiveJobs()
        self._workers: tuple[float, list | None, int, str | None] = (0.0, None, 0, None)
        self._workers_lock = asyncio.Lock()

    # ------------------------------------------------------------ helpers

    def save(self, path: str | Path | None, need: str = contract.NEED_MEDIA) -> MediaRef:
        """Copy a Gradio upload into MEDIA_DIR (content-addressed: the same file is stored once)."""
        if not path:
            raise UserError(need)
        with discard_on_refusal(path):  # refused for what it is: Gradio's copy goes now, not at the hourly sweep
            return self.store.save_upload(Path(path))

    def image_size(self, path: str | Path | None) -> tuple[int, int]:
        """The checks of an image input, without copying it (previews call this on every change)."""
        if not path:
            raise UserError(contract.NEED_IMAGE)
        with discard_on_refusal(path):
            kind = self.store.check_upload(Path(path))
        contract.require_image(kind)  # a video is refused here, but the chat tab may show the same upload: kept
        with discard_on_refusal(path):
            return imaging.image_size(path, self.settings.max_image_pixels)

    def image_info(self, path: str | Path | None) -> tuple[MediaRef, int, int]:
        w, h = self.image_size(path)
        return self.save(path, contract.NEED_IMAGE), w, h

    def client_of(self, request: gr.Request | None) -> str | None:
        return client_address(request, self.settings.trusted_proxy_set) if request is not None else None

    @staticmethod
    def session_of(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "-"

    @staticmethod
    def failure(exc: Exception) -> str:
        if isinstance(exc, UserError):
            log.info("refused: %s", exc.message)  # the user's mistake: one line, no traceback
            return exc.message
        log.exception("web handler failed", exc_info=exc)
        return GENERIC_FAILURE

    async def progress(self, req, request: gr.Request | None) -> AsyncIterator[Update]:
        """Submit (waiting through a short Redis outage) and follow the job to its result. Heartbeat updates come
        every HEARTBEAT_S when nothing happens: a caller that went away is noticed at the next yield."""
        client = self.client_of(request)
        give_up = time.monotonic() + self.settings.redis_outage_grace_s
        while True:
            try:
                await asyncio.to_thread(self.client.submit, req, client)
                break
            except QueueUnavailable:
                if time.monotonic() > give_up:
                    raise
                yield Update(JobState.queued, reconnecting=True)
                await asyncio.sleep(1.0)
        async for update in self.client.afollow(req, client=client, heartbeat_s=HEARTBEAT_S):
            yield update

    def line(self, update: Update, kind: str) -> str:
        if update.reconnecting:
            return render.reconnecting_line()
        if update.result is not None:
            return render.done_line(update.result, self.settings.max_new_tokens)
        if update.state == JobState.queued:
            return render.queued_line(update.position, update.workers, update.eta_s)
        return render.running_line(kind)

    async def stop_chat(self, request: gr.Request) -> str:
        return await self.stop(request, CHAT)

    async def stop_ocr(self, request: gr.Request) -> str:
        return await self.stop(request, OCR)

    async def stop_region(self, request: gr.Request) -> str:
        return await self.stop(request, REGION)

    async def stop(self, request: gr.Request, tab: str) -> str:
        """«Остановить»: the tab's job leaves the queue, or stops at its next token. The job's own handler says
        «Остановлено…» when it ends: a quick stop (the usual case) leaves that line alone instead of racing it with
        «Останавливаю…», which is shown only while the job takes longer than STOP_QUIET_S to end."""
        session = self.session_of(request)
        running = self.active.get(session, tab)
        if running is None:
            return SKIP()
        try:
            await asyncio.to_thread(self.client.cancel, running.job_id, running.kind)
        except UserError as exc:
            return render.error_line(self.failure(exc))
        deadline = time.monotonic() + STOP_QUIET_S
        while time.monotonic() < deadline:
            now = self.active.get(session, tab)
            if now is None or now.job_id != running.job_id:
                return SKIP()
            await asyncio.sleep(0.05)
        return "Останавливаю…"

    # ------------------------------------------------------------ status line

    async def model_status(self) -> str:
        """Workers and the queue, refreshed twice a second; one Redis read per WORKERS_CACHE_S for all pages."""
        async with self._workers_lock:
            at, workers, waiting, error = self._workers
            if time.monotonic() - at > WORKERS_CACHE_S:
                try:
                    workers = await asyncio.to_thread(self.client.workers)
                    waiting, error = await asyncio.to_thread(self.client.queue_length), None
                except Exception as exc:  # noqa: BLE001 - the status line says what is wrong instead
                    workers, error = None, self.failure(exc)
                self._workers = (time.monotonic(), workers, waiting, error)
        return render.error_line(error) if error else render.workers_line(workers or [], waiting)

    # ------------------------------------------------------------ chat

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

    # ------------------------------------------------------------ OCR

    async def ocr_ui(self, image: str | None, request: gr.Request):
        """→ text, download button, status, run, stop (an async generator: the text streams in)."""
        session = self.session_of(request)
        if self.active.get(session, OCR) is not None:
            yield SKIP(), SKIP(), render.busy_line(), SKIP(), SKIP()
            return
        try:
            ref, _, _ = self.image_info(image)
            req = OcrRequest(media=ref)
        except Exception as exc:  # noqa: BLE001
            yield SKIP(), SKIP(), render.error_line(self.failure(exc)), SKIP(), SKIP()
            return
        self.active.begin(session, OCR, req.job_id, req.kind)
        try:
            yield "", gr.DownloadButton(visible=False, value=None), render.submitted_line(), *buttons(True)
            async for upd in self.progress(req, request):
                if upd.result is None:
                    yield (SKIP(),) * 5 if upd.heartbeat else (upd.text, SKIP(), self.line(upd, OCR), SKIP(), SKIP())
                    continue
                self.active.end(session, OCR, req.job_id)
                res, status = upd.result, self.line(upd, OCR)
                if res.status == JobStatus.error:
                    yield SKIP(), SKIP(), status, *buttons(False)
                    continue
                path = await asyncio.to_thread(self.store.write_result, res.answer)
                if not res.answer and res.status == JobStatus.ok:
                    status += " · текст на изображении не найден"
                button = gr.DownloadButton(label=f"Скачать {path.name}", value=str(path), visible=True)
                yield res.answer, button, status, *buttons(False)
        except Exception as exc:  # noqa: BLE001
            yield SKIP(), SKIP(), render.error_line(self.failure(exc)), *buttons(False)
        finally:
            self.active.end(session, OCR, req.job_id)

    # ------------------------------------------------------------ region

    def region_preview(self, image: str | None, box: str | None, corner=None):
        """Redraw the preview for the current box (ignored while it is not valid). → preview, hint"""
        if not image:
            return None, ""
        try:
            w, h = self.image_size(image)
        except Exception as exc:  # noqa: BLE001
            return None, render.error_line(self.failure(exc))
        hint = f"Изображение {w}×{h} пикс. Щёлкните два угла области или введите координаты."
        rect = None
        if (box or "").strip():
            try:
                b = parse_box(box, w, h)
                rect = b.as_tuple()
                hint = f"Область {box_text(b)}: {b.x2 - b.x1}×{b.y2 - b.y1} пикс. на изображении {w}×{h} пикс."
            except UserError as exc:
                hint = render.error_line(exc.message)
        return make_preview(image, rect, corner), hint

    def region_image_changed(self, image: str | None, box: str | None):
        """A new image (upload, example, clear): redraw, forget a half-made click. → preview, hint, corner"""
        return (*self.region_preview(image, box), None)

    def region_click(self, image: str | None, corner, evt: gr.SelectData, on_preview: bool):
        """First click = corner 1, second = corner 2 → the box. → box, corner, preview, hint"""
        if not image or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
            return SKIP(), corner, SKIP(), SKIP()
        try:
            w, h = self.image_size(image)
        except Exception as exc:  # noqa: BLE001
            return SKIP(), None, SKIP(), render.error_line(self.failure(exc))
        x, y = (int(v) for v in evt.index)
        point = to_image_coords(x, y, w, h) if on_preview else (min(max(x, 0), w - 1), min(max(y, 0), h - 1))
        if corner is None:
            hint = f"Угол 1: ({point[0]}, {point[1]}). Щёлкните противоположный угол области."
            return SKIP(), list(point), make_preview(image, None, point), hint
        text = box_text(corners_to_box(tuple(corner), point, w, h))
        preview, hint = self.region_preview(image, text)
        return text, None, preview, hint

    def region_click_image(self, image, corner, evt: gr.SelectData):
        return self.region_click(image, corner, evt, on_preview=False)

    def region_click_preview(self, image, corner, evt: gr.SelectData):
        return self.region_click(image, corner, evt, on_preview=True)

    def region_request(self, image: str | None, box: str | None) -> RegionRequest:
        ref, w, h = self.image_info(image)
        return RegionRequest(media=ref, box=parse_box(box, w, h))

    async def region_ui(self, image: str | None, box: str | None, request: gr.Request):
        """→ description, status, run, stop, hint (an async generator: the description streams in)."""
        session = self.session_of(request)
        if self.active.get(session, REGION) is not None:
            yield SKIP(), render.busy_line(), SKIP(), SKIP(), SKIP()
            return
        try:
            req = self.region_request(image, box)
        except BoxError as exc:  # the hint under the box already says it: once is enough
            yield SKIP(), "", SKIP(), SKIP(), render.error_line(self.failure(exc))
            return
        except Exception as exc:  # noqa: BLE001
            yield SKIP(), render.error_line(self.failure(exc)), SKIP(), SKIP(), SKIP()
            return
        self.active.begin(session, REGION, req.job_id, req.kind)
        try:
            yield "", render.submitted_line(), *buttons(True), SKIP()
            async for upd in self.progress(req, request):
                if upd.result is None:
                    yield (SKIP(),) * 5 if upd.heartbeat else (upd.text, self.line(upd, REGION), SKIP(), SKIP(), SKIP())
                    continue
                self.active.end(session, REGION, req.job_id)
                answer = upd.result.answer if upd.result.status != JobStatus.error else SKIP()
                yield answer, self.line(upd, REGION), *buttons(False), SKIP()
        except Exception as exc:  # noqa: BLE001
            yield SKIP(), render.error_line(self.failure(exc)), *buttons(False), SKIP()
        finally:
            self.active.end(session, REGION, req.job_id)
