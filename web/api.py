"""The public Gradio API (/vqa, /ocr, /describe_region): async calls that return the final answer or raise
gr.Error with the Russian message. A caller that cancels (gradio_client job.cancel()) or goes away stops the
worker's job. The docstrings are shown on the «Использовать через API» page: they are Russian."""

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

    async def answer(self, req, request: gr.Request | None) -> str:
        result = None
        async for update in self.h.progress(req, request):
            result = update.result or result
        if result is None or result.status != JobStatus.ok:
            raise UserError((result.error if result else None) or GENERIC_FAILURE)
        return result.answer

    async def vqa(self, file: str | None, question: str | None, history: object = None,
                  request: gr.Request = None) -> str:
        """Вопрос по изображению или видео (MP4). history — JSON-список пар [вопрос, ответ] прошлых реплик
        диалога (можно пустой). Возвращает ответ модели."""
        s = self.h.settings
        try:
            q = contract.check_question(question, s.max_question_chars)
            turns = contract.trim_history(parse_history(history), s.max_history_turns, s.max_question_chars)
            media = await asyncio.to_thread(self.h.save, file)
            return await self.answer(ChatRequest(media=media, history=turns, question=q), request)
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None

    async def ocr(self, image: str | None, request: gr.Request = None) -> tuple[str, str]:
        """Распознавание текста на изображении. Возвращает текст и файл ocr_result_<ГГГГММДД_ЧЧММСС>.txt
        с тем же текстом."""
        try:
            ref, _, _ = await asyncio.to_thread(self.h.image_info, image)
            text = await self.answer(OcrRequest(media=ref), request)
            return text, str(await asyncio.to_thread(self.h.store.write_result, text))
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None

    async def describe_region(self, image: str | None, box: str | None, request: gr.Request = None) -> str:
        """Описание объекта в прямоугольной области изображения. box — «x1,y1,x2,y2» в пикселях от левого
        верхнего угла (x1 < x2, y1 < y2). Возвращает описание."""
        try:
            req = await asyncio.to_thread(self.h.region_request, image, box)
            return await self.answer(req, request)
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None
