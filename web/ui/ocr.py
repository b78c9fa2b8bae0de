"""The «OCR» tab: all readable text of an image, streamed in, then as a .txt file to download."""

from __future__ import annotations

import asyncio

import gradio as gr

from common.schemas import JobStatus
from web.queue.kinds import OCR
from web.ui import render
from web.ui.tab import Outputs, Tab, buttons

OUTPUTS = Outputs("text", "download", "status", "run", "stop")


class OcrTab(Tab):
    SLOT = "ocr"

    async def run(self, image: str | None, request: gr.Request):
        """→ OUTPUTS (an async generator: the text streams in)."""
        session = self.session_of(request)
        if self.active.get(session, self.SLOT) is not None:
            yield OUTPUTS(status=render.busy_line())
            return
        try:
            ref, _, _ = self.image_info(image)
            req = OCR.request(ref)
        except Exception as exc:  # noqa: BLE001
            yield OUTPUTS(status=render.error_line(self.failure(exc)))
            return
        self.active.begin(session, self.SLOT, req.job_id, req.kind, self.joined(request))
        try:
            yield OUTPUTS(text="", download=gr.DownloadButton(visible=False, value=None),
                          status=render.submitted_line(), **buttons(True))
            async for upd in self.progress(req, request):
                if upd.result is None:
                    yield OUTPUTS() if upd.heartbeat else OUTPUTS(text=upd.text, status=self.line(upd, req.kind))
                    continue
                self.active.end(session, self.SLOT, req.job_id)
                res, status = upd.result, self.line(upd, req.kind)
                if res.status == JobStatus.error:
                    yield OUTPUTS(status=status, **buttons(False))
                    continue
                path = await asyncio.to_thread(self.result_file, res, request)
                if note := OCR.note(res):
                    status += f" · {note}"
                button = gr.DownloadButton(label=f"Скачать {path.name}", value=str(path), visible=True)
                yield OUTPUTS(text=res.answer, download=button, status=status, **buttons(False))
        except Exception as exc:  # noqa: BLE001
            yield OUTPUTS(status=render.error_line(self.failure(exc)), **buttons(False))
        finally:
            self.active.end(session, self.SLOT, req.job_id)
