"""The «Описание области» tab: the box typed or clicked (two corners, on the picture or its preview), the preview
redrawn, the region described."""

from __future__ import annotations

import gradio as gr

from common.errors import UserError
from common.schemas import JobStatus
from web.queue.box import BoxError, box_text, corners_to_box, parse_box
from web.queue.kinds import REGION
from web.ui import render
from web.ui.preview import make_preview, to_image_coords
from web.ui.tab import SKIP, Outputs, Tab, buttons

RUN = Outputs("text", "status", "run", "stop", "hint", "original", "original_text")
PREVIEW = Outputs("preview", "hint")
IMAGE = Outputs("preview", "hint", "corner")
CLICK = Outputs("box", "corner", "preview", "hint")


class RegionTab(Tab):
    SLOT = "region"

    def preview(self, image: str | None, box: str | None) -> tuple:
        """Redraw the preview for the current box (ignored while it is not valid). → PREVIEW"""
        if not image:
            return PREVIEW(preview=None, hint="")
        try:
            w, h = self.image_size(image)
        except Exception as exc:  # noqa: BLE001
            return PREVIEW(preview=None, hint=render.error_line(self.failure(exc)))
        hint = f"Изображение {w}×{h} пикс. Щёлкните два угла области или введите координаты."
        rect = None
        if (box or "").strip():
            try:
                b = parse_box(box, w, h)
                rect = b.as_tuple()
                hint = f"Область {box_text(b)}: {b.x2 - b.x1}×{b.y2 - b.y1} пикс. на изображении {w}×{h} пикс."
            except UserError as exc:
                hint = render.error_line(exc.message)
        return PREVIEW(preview=make_preview(image, rect), hint=hint)

    def image_changed(self, image: str | None, box: str | None) -> tuple:
        """A new image (upload, example, clear): redraw, forget a half-made click. → IMAGE"""
        preview, hint = self.preview(image, box)
        return IMAGE(preview=preview, hint=hint, corner=None)

    def click(self, image: str | None, corner, evt: gr.SelectData, on_preview: bool) -> tuple:
        """First click = corner 1, second = corner 2 → the box. → CLICK"""
        if not image or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
            return CLICK(corner=corner)
        try:
            w, h = self.image_size(image)
        except Exception as exc:  # noqa: BLE001
            return CLICK(corner=None, hint=render.error_line(self.failure(exc)))
        x, y = (int(v) for v in evt.index)
        point = to_image_coords(x, y, w, h) if on_preview else (min(max(x, 0), w - 1), min(max(y, 0), h - 1))
        if corner is None:
            hint = f"Угол 1: ({point[0]}, {point[1]}). Щёлкните противоположный угол области."
            return CLICK(corner=list(point), preview=make_preview(image, None, point), hint=hint)
        text = box_text(corners_to_box(tuple(corner), point, w, h))
        preview, hint = self.preview(image, text)
        return CLICK(box=text, corner=None, preview=preview, hint=hint)

    def click_image(self, image, corner, evt: gr.SelectData) -> tuple:
        return self.click(image, corner, evt, on_preview=False)

    def click_preview(self, image, corner, evt: gr.SelectData) -> tuple:
        return self.click(image, corner, evt, on_preview=True)

    async def run(self, image: str | None, box: str | None, request: gr.Request = None,
                  language: str | None = None):
        """→ RUN (an async generator: the description streams in; the model's English under it, collapsed).
        language: the page's «Язык ответа» (ru / en)."""
        session = self.session_of(request)
        if self.active.get(session, self.SLOT) is not None:
            yield RUN(status=render.busy_line())
            return
        try:
            ref, w, h = self.image_info(image)
            req = REGION.request(ref, box, w, h, answer_language=language)
        except BoxError as exc:  # the hint under the box already says it: once is enough
            yield RUN(status="", hint=render.error_line(self.failure(exc)))
            return
        except Exception as exc:  # noqa: BLE001
            yield RUN(status=render.error_line(self.failure(exc)))
            return
        self.active.begin(session, self.SLOT, req.job_id, req.kind, self.joined(request))
        try:
            yield RUN(text="", original=gr.Accordion(visible=False), status=render.submitted_line(),
                      **buttons(True))
            async for upd in self.progress(req, request):
                if upd.result is None:
                    yield RUN() if upd.heartbeat else RUN(text=upd.text, status=self.line(upd, req.kind))
                    continue
                self.active.end(session, self.SLOT, req.job_id)
                res = upd.result
                answer = res.answer if res.status != JobStatus.error else SKIP()
                status = self.line(upd, req.kind)
                if res.translation_note:  # the answer is English: why, and what to do
                    status = f"{status}\n\n{render.error_line(res.translation_note)}"
                yield RUN(text=answer, original=gr.Accordion(visible=res.answer_en is not None),
                          original_text=res.answer_en or "", status=status, **buttons(False))
        except Exception as exc:  # noqa: BLE001
            yield RUN(status=render.error_line(self.failure(exc)), **buttons(False))
        finally:
            self.active.end(session, self.SLOT, req.job_id)
