"""The public Gradio API (/vqa, /ocr, /describe_region). Each call streams the answer as it is generated (the
last value is the final answer, which is what gradio_client's predict() returns) or raises gr.Error with the
Russian message. A caller that cancels (job.cancel()) or goes away stops the worker's job: the handlers yield
at least every second, and Gradio closes a generator whose caller is gone. The docstrings are shown on the
«Использовать через API» page: they are Russian."""

from __future__ import annotations

import asyncio

import gradio as gr

from common import contract
from common.errors import GENERIC_FAILURE, UserError
from common.schemas import ChatRequest, JobStatus, OcrRequest
from web.handlers import Handlers
from web.validation import parse_history


class Api:
    def __init__(self, h: Handlers) -> None:
        self.h = h

    def error(self, exc: Exception) -> gr.Error:
        return gr.Error(self.h.failure(exc), title="Ошибка", print_exception=False)

    async def stream(self, req, request: gr.Request | None):
        """The text so far while the job runs (None while there is none yet), then the final JobResult. The job
        is registered with its session: a caller whose event stream closes has it stopped (web.session)."""
        session = self.h.session_of(request)
        self.h.active.begin(session, f"api:{req.job_id}", req.job_id, req.kind)
        try:
            async for update in self.h.progress(req, request):
                if update.result is None:
                    yield update.text or None
                    continue
                if update.result.status != JobStatus.ok:
                    raise UserError(update.result.error or GENERIC_FAILURE)
                yield update.result
                return
        finally:
            self.h.active.end(session, f"api:{req.job_id}", req.job_id)

    async def answers(self, req, request: gr.Request | None):
        """stream() as the answer's text: what there is so far (gr.skip() while nothing), then the whole answer."""
        async for out in self.stream(req, request):
            yield out if isinstance(out, str) else (out.answer if out is not None else gr.skip())

    async def vqa(self, file: str | None, question: str | None, history: object = None,
                  request: gr.Request = None):
        """Вопрос по изображению или видео (MP4). history — JSON-список пар [вопрос, ответ] прошлых реплик
        диалога (можно пустой). Возвращает ответ модели (по мере генерации; последнее значение — весь ответ)."""
        s = self.h.settings
        try:
            q = contract.check_question(question, s.max_question_chars)
            turns = contract.trim_history(parse_history(history), s.max_history_turns, s.max_question_chars)
            media = await asyncio.to_thread(self.h.save, file)
            async for text in self.answers(ChatRequest(media=media, history=turns, question=q), request):
                yield text
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None

    async def ocr(self, image: str | None, request: gr.Request = None):
        """Распознавание текста на изображении. Возвращает текст и файл ocr_result_<ГГГГММДД_ЧЧММСС>.txt
        с тем же текстом."""
        try:
            ref, _, _ = await asyncio.to_thread(self.h.image_info, image)
            async for out in self.stream(OcrRequest(media=ref), request):
                if isinstance(out, str | None):
                    yield out or gr.skip(), gr.skip()
                else:
                    yield out.answer, str(await asyncio.to_thread(self.h.store.write_result, out.answer))
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None

    async def describe_region(self, image: str | None, box: str | None, request: gr.Request = None):
        """Описание объекта в прямоугольной области изображения. box — «x1,y1,x2,y2» в пикселях от левого
        верхнего угла (x1 < x2, y1 < y2). Возвращает описание."""
        try:
            req = await asyncio.to_thread(self.h.region_request, image, box)
            async for text in self.answers(req, request):
                yield text
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None
