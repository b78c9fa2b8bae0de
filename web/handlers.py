"""Gradio event handlers of the three tabs. Job handlers are async generators: queue position, partial text and
the final line stream in without holding a thread, and a stop, a reset or a closed page stops the worker's job.
Shared parts live in web.ui, the chat in web.chat, the region tab in web.region; the public API in web.api."""

from __future__ import annotations

import asyncio

import gradio as gr

from common.schemas import JobStatus, OcrRequest
from web import render
from web.chat import ChatHandlers, new_chat
from web.region import RegionHandlers
from web.ui import OCR, SKIP, buttons

__all__ = ["Handlers", "new_chat"]


class Handlers(ChatHandlers, RegionHandlers):
    """Every tab's handlers on one object (web.app wires them); the «OCR» tab's are here."""

    async def stop_ocr(self, request: gr.Request) -> str:
        return await self.stop(request, OCR)


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
