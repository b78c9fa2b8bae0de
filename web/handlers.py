"""Gradio event handlers. UI handlers are generators that stream queue position, partial text and the final
status line; API handlers block until the answer and raise gr.Error with the same Russian messages.

No handler lets an exception reach the UI raw: a UserError's message is shown as is, anything else is logged
and shown as GENERIC_FAILURE. Waiting is I/O on Redis, so many handlers run side by side."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from common import contract, imaging
from common.errors import GENERIC_FAILURE, UserError
from common.schemas import ChatRequest, JobResult, JobState, JobStatus, MediaRef, OcrRequest, RegionRequest, Turn
from common.settings import Settings
from common.storage import MediaStore
from web import render
from web.jobs import JobClient
from web.preview import make_preview, to_image_coords
from web.validation import box_text, corners_to_box, parse_box, parse_history

log = logging.getLogger(__name__)

WORKERS_CACHE_S = 1.0


def new_chat() -> dict:
    return {"media": None, "display": None, "turns": []}


class Handlers:
    def __init__(self, settings: Settings, client: JobClient, store: MediaStore) -> None:
        self.settings, self.client, self.store = settings, client, store
        self._lock = threading.Lock()
        self._workers: tuple[float, list | None, str | None] = (0.0, None, None)

    # ------------------------------------------------------------ helpers

    def save(self, path: str | Path | None, need: str = contract.NEED_MEDIA) -> MediaRef:
        """Copy a Gradio upload into MEDIA_DIR (content-addressed: the same file is stored once)."""
        if not path:
            raise UserError(need)
        return self.store.save_upload(Path(path))

    def image_size(self, path: str | Path | None) -> tuple[int, int]:
        """The checks of an image input, without copying it (previews call this on every change)."""
        if not path:
            raise UserError(contract.NEED_IMAGE)
        contract.require_image(self.store.check_upload(Path(path)))
        return imaging.image_size(path, self.settings.max_image_pixels)

    def image_info(self, path: str | Path | None) -> tuple[MediaRef, int, int]:
        w, h = self.image_size(path)
        return self.save(path, contract.NEED_IMAGE), w, h

    def progress(self, req) -> Iterator[tuple[str, str, JobResult | None]]:
        """(status line, text so far, final result or None) for each update of the job."""
        self.client.submit(req)
        for upd in self.client.follow(req):
            if upd.state == JobState.queued:
                yield render.queued_line(upd.position, upd.workers), upd.text, None
            elif upd.state == JobState.running:
                yield render.running_line(req.kind), upd.text, None
            elif upd.result is not None:
                yield render.done_line(upd.result), upd.result.answer or upd.text, upd.result
                return

    def run(self, req) -> str:
        """The API's blocking call: the answer, or gr.Error with the Russian message."""
        result = self.client.run(req)
        if result.status != JobStatus.ok:
            raise UserError(result.error or GENERIC_FAILURE)
        return result.answer

    def recent(self, turns: list[Turn]) -> list[Turn]:
        s = self.settings
        return contract.trim_history(turns, s.max_history_turns, s.max_question_chars)

    @staticmethod
    def failure(exc: Exception) -> str:
        if isinstance(exc, UserError):
            return exc.message
        log.exception("web handler failed", exc_info=exc)
        return GENERIC_FAILURE

    @classmethod
    def api_error(cls, exc: Exception) -> gr.Error:
        return gr.Error(cls.failure(exc), title="Ошибка")

    # ------------------------------------------------------------ status line

    def model_status(self) -> str:
        now = time.monotonic()
        with self._lock:
            at, workers, error = self._workers
        if now - at > WORKERS_CACHE_S:  # many open pages refresh together: one Redis scan per second
            try:
                workers, error = self.client.workers(), None
            except Exception as exc:  # noqa: BLE001 - the status line says what is wrong instead
                workers, error = None, self.failure(exc)
            with self._lock:
                self._workers = (now, workers, error)
        return render.error_line(error) if error else render.workers_line(workers or [])

    # ------------------------------------------------------------ chat

    def chat_file(self, file: str | None, question: str | None):
        """A new file (upload, example or clear) starts a new conversation. → state, chatbot, question, status"""
        if not file:
            return new_chat(), [], question, ""
        try:
            ref = self.save(file)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never raised into the UI
            return new_chat(), [], question, render.error_line(self.failure(exc))
        if not (question or "").strip() or question.strip() in contract.DEFAULT_QUESTION.values():
            question = contract.DEFAULT_QUESTION[ref.kind]
        state = {"media": ref.model_dump(mode="json"), "display": file, "turns": []}
        return state, render.chat_messages(file, []), question, render.uploaded_line(ref.kind)

    def chat_reset(self, state: dict | None):
        """«Новый диалог»: forget the turns, keep the file. → state, chatbot, status"""
        state = {**(state or new_chat()), "turns": []}
        return state, render.chat_messages(state["display"], []), "Начат новый диалог."

    def chat_ui(self, question: str | None, state: dict | None):
        """→ chatbot, state, question box, status (a generator: the answer streams in)."""
        state = state or new_chat()
        display, turns = state.get("display"), [list(t) for t in state.get("turns", [])]
        try:
            if not state.get("media"):
                raise UserError(contract.NEED_MEDIA)
            q = contract.check_question(question, self.settings.max_question_chars)
            history = self.recent([Turn(question=a, answer=b) for a, b in turns])
            req = ChatRequest(media=MediaRef.model_validate(state["media"]), history=history, question=q)
        except Exception as exc:  # noqa: BLE001
            yield gr.skip(), gr.skip(), gr.skip(), render.error_line(self.failure(exc))
            return
        yield render.chat_messages(display, turns, q), gr.skip(), "", render.submitted_line()
        try:
            for status, text, result in self.progress(req):
                if result is None:
                    yield render.chat_messages(display, turns, q, text), gr.skip(), gr.skip(), status
                elif result.status == JobStatus.ok:
                    turns.append([q, result.answer])
                    yield render.chat_messages(display, turns), {**state, "turns": turns}, gr.skip(), status
                else:
                    yield render.chat_messages(display, turns, q, status), gr.skip(), q, status
        except Exception as exc:  # noqa: BLE001
            line = render.error_line(self.failure(exc))
            yield render.chat_messages(display, turns, q, line), gr.skip(), q, line

    def api_vqa(self, file: str | None, question: str | None, history: object = None) -> str:
        """Ask about an image or a video; history is a JSON list of [question, answer] pairs."""
        try:
            q = contract.check_question(question, self.settings.max_question_chars)
            turns = self.recent(parse_history(history))
            return self.run(ChatRequest(media=self.save(file), history=turns, question=q))
        except Exception as exc:  # noqa: BLE001
            raise self.api_error(exc) from None

    # ------------------------------------------------------------ OCR

    def ocr_ui(self, image: str | None):
        """→ text, download button, status (a generator: the text streams in)."""
        try:
            ref, _, _ = self.image_info(image)
            req = OcrRequest(media=ref)
            yield "", gr.DownloadButton(visible=False, value=None), render.submitted_line()
            for status, text, result in self.progress(req):
                if result is None:
                    yield text, gr.skip(), status
                elif result.status == JobStatus.ok:
                    path = self.store.write_result(result.answer)
                    if not result.answer:
                        status += " · текст на изображении не найден"
                    button = gr.DownloadButton(label=f"Скачать {path.name}", value=str(path), visible=True)
                    yield result.answer, button, status
                else:
                    yield gr.skip(), gr.skip(), status
        except Exception as exc:  # noqa: BLE001
            yield gr.skip(), gr.skip(), render.error_line(self.failure(exc))

    def api_ocr(self, image: str | None) -> tuple[str, str]:
        """Recognise the text on an image → (text, path of ocr_result_<YYYYMMDD_HHMMSS>.txt)."""
        try:
            ref, _, _ = self.image_info(image)
            text = self.run(OcrRequest(media=ref))
            return text, str(self.store.write_result(text))
        except Exception as exc:  # noqa: BLE001
            raise self.api_error(exc) from None

    # ------------------------------------------------------------ region

    def region_request(self, image: str | None, box: str | None) -> RegionRequest:
        ref, w, h = self.image_info(image)
        return RegionRequest(media=ref, box=parse_box(box, w, h))

    def region_preview(self, image: str | None, box: str | None, corner=None):
        """Redraw the preview for the current box (ignored while it is not valid). → preview, hint"""
        if not image:
            return None, ""
        try:
            w, h = self.image_size(image)
        except Exception as exc:  # noqa: BLE001
            return None, render.error_line(self.failure(exc))
        hint = f"Изображение {w}×{h} px. Щёлкните два угла области или введите координаты."
        rect = None
        if (box or "").strip():
            try:
                b = parse_box(box, w, h)
                rect = b.as_tuple()
                hint = f"Область {box_text(b)}: {b.x2 - b.x1}×{b.y2 - b.y1} px на изображении {w}×{h} px."
            except UserError as exc:
                hint = render.error_line(exc.message)
        return make_preview(image, rect, corner), hint

    def region_image_changed(self, image: str | None, box: str | None):
        """A new image (upload, example, clear): redraw, forget a half-made click. → preview, hint, corner"""
        return (*self.region_preview(image, box), None)

    def region_click(self, image: str | None, corner, evt: gr.SelectData, on_preview: bool):
        """First click = corner 1, second = corner 2 → the box. → box, corner, preview, hint"""
        if not image or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
            return gr.skip(), corner, gr.skip(), gr.skip()
        try:
            w, h = self.image_size(image)
        except Exception as exc:  # noqa: BLE001
            return gr.skip(), None, gr.skip(), render.error_line(self.failure(exc))
        x, y = (int(v) for v in evt.index)
        point = to_image_coords(x, y, w, h) if on_preview else (min(max(x, 0), w - 1), min(max(y, 0), h - 1))
        if corner is None:
            hint = f"Угол 1: ({point[0]}, {point[1]}). Щёлкните противоположный угол области."
            return gr.skip(), list(point), make_preview(image, None, point), hint
        text = box_text(corners_to_box(tuple(corner), point, w, h))
        preview, hint = self.region_preview(image, text)
        return text, None, preview, hint

    def region_click_image(self, image, corner, evt: gr.SelectData):
        return self.region_click(image, corner, evt, on_preview=False)

    def region_click_preview(self, image, corner, evt: gr.SelectData):
        return self.region_click(image, corner, evt, on_preview=True)

    def region_ui(self, image: str | None, box: str | None):
        """→ description, status (a generator: the description streams in)."""
        try:
            req = self.region_request(image, box)
            yield "", render.submitted_line()
            for status, text, result in self.progress(req):
                if result is None:
                    yield text, status
                elif result.status == JobStatus.ok:
                    yield result.answer, status
                else:
                    yield gr.skip(), status
        except Exception as exc:  # noqa: BLE001
            yield gr.skip(), render.error_line(self.failure(exc))

    def api_describe_region(self, image: str | None, box: str | None) -> str:
        """Describe the area "x1,y1,x2,y2" (pixels, x1<x2, y1<y2) of an image."""
        try:
            return self.run(self.region_request(image, box))
        except Exception as exc:  # noqa: BLE001
            raise self.api_error(exc) from None
