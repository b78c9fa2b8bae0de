"""The public Gradio API (/vqa, /ocr, /describe_region). Each call streams the answer as it is generated (the
last value is the final answer, which is what gradio_client's predict() returns) or raises gr.Error with the
Russian message. A caller that cancels (job.cancel()) or goes away stops the worker's job: the handlers yield
at least every second, and Gradio closes a generator whose caller is gone. The docstrings are shown on the
«Использовать через API» page: they are Russian."""

from __future__ import annotations

import asyncio
import json

import gradio as gr

from common.errors import GENERIC_FAILURE, UserError
from common.schemas import JobRequest, JobStatus, Turn
from web.queue.kinds import CHAT, OCR, REGION
from web.ui.tab import Tab

HISTORY_HINT = "История должна быть JSON-списком пар [вопрос, ответ], например [[\"Что на фото?\", \"Кошка.\"]]."


def parse_history(value: object) -> list[Turn]:
    """The API's history: a list (or its JSON text) of [question, answer] pairs; None or "" is empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise UserError(f"Не удалось разобрать историю как JSON. {HISTORY_HINT}") from exc
    if isinstance(value, dict) and not value:
        return []
    if not isinstance(value, list):
        raise UserError(HISTORY_HINT)
    turns = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("question"), str) and isinstance(item.get("answer"), str):
            turns.append(Turn(question=item["question"], answer=item["answer"]))
        elif isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(s, str) for s in item):
            turns.append(Turn(question=item[0], answer=item[1]))
        else:
            raise UserError(HISTORY_HINT)
    return turns


class PublicApi(Tab):
    """Every call is its own slot in its session's registry: a caller whose event stream closes has it stopped
    (web.http.session_gone)."""

    def error(self, exc: Exception) -> gr.Error:
        return gr.Error(self.failure(exc), title="Ошибка", print_exception=False)

    async def stream(self, req: JobRequest, request: gr.Request | None):
        """The text so far while the job runs (None while there is none yet), then the final JobResult."""
        session, slot = self.session_of(request), f"api:{req.job_id}"
        self.active.begin(session, slot, req.job_id, req.kind, self.joined(request))
        try:
            async for update in self.progress(req, request):
                if update.result is None:
                    yield update.text or None
                    continue
                if update.result.status != JobStatus.ok:
                    raise UserError(update.result.error or GENERIC_FAILURE)
                yield update.result
                return
        finally:
            self.active.end(session, slot, req.job_id)

    async def answers(self, req: JobRequest, request: gr.Request | None):
        """stream() as the answer's text: what there is so far (gr.skip() while nothing), then the whole answer."""
        async for out in self.stream(req, request):
            yield out if isinstance(out, str) else (out.answer if out is not None else gr.skip())

    async def vqa(self, file: str | None, question: str | None, history: object = None,
                  request: gr.Request = None):
        """Вопрос по изображению или видео (MP4). history — JSON-список пар [вопрос, ответ] прошлых реплик
        диалога (можно пустой). Возвращает ответ модели (по мере генерации; последнее значение — весь ответ)."""
        try:
            CHAT.question(self.settings, question)  # the question and the history first: the file is saved last
            turns = await asyncio.to_thread(self.client.originals, parse_history(history))
            media = await asyncio.to_thread(self.save, file)
            async for text in self.answers(CHAT.request(self.settings, media, question, turns), request):
                yield text
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None

    async def ocr(self, image: str | None, request: gr.Request = None):
        """Распознавание текста на изображении. Возвращает текст и файл ocr_result_<ГГГГММДД_ЧЧММСС>.txt
        с тем же текстом."""
        try:
            ref, _, _ = await asyncio.to_thread(self.image_info, image)
            async for out in self.stream(OCR.request(ref), request):
                if isinstance(out, str | None):
                    yield out or gr.skip(), gr.skip()
                else:
                    yield out.answer, str(await asyncio.to_thread(self.result_file, out, request))
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None

    async def describe_region(self, image: str | None, box: str | None, request: gr.Request = None):
        """Описание объекта в прямоугольной области изображения. box — «x1,y1,x2,y2» в пикселях от левого
        верхнего угла (x1 < x2, y1 < y2). Возвращает описание."""
        try:
            ref, w, h = await asyncio.to_thread(self.image_info, image)
            async for text in self.answers(REGION.request(ref, box, w, h), request):
                yield text
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc) from None
