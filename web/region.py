"""The «Описание области» tab: the box typed or clicked (two corners, on the picture or its preview), the preview
redrawn, the region described."""

from __future__ import annotations

import gradio as gr

from common.errors import UserError
from common.schemas import JobStatus, RegionRequest
from web import render
from web.preview import make_preview, to_image_coords
from web.ui import REGION, SKIP, HandlerBase, buttons
from web.validation import BoxError, box_text, corners_to_box, parse_box


class RegionHandlers(HandlerBase):
    async def stop_region(self, request: gr.Request) -> str:
        return await self.stop(request, REGION)


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
