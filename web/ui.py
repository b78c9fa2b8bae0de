"""What the tabs' handlers share: inputs checked and saved, the job followed (progress), its status line, the
«Остановить» button, the model status line. No handler lets an exception reach the UI raw: a UserError's message is
shown as is (one log line), anything else is logged and shown as GENERIC_FAILURE."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import gradio as gr

from common import contract, imaging
from common.errors import GENERIC_FAILURE, QueueUnavailable, UserError
from common.schemas import JobState, MediaRef
from common.settings import Settings
from common.storage import MediaStore
from web import render
from web.jobs import JobClient
from web.session import ActiveJobs, client_address
from web.tracker import Update
from web.uploads import discard_on_refusal

log = logging.getLogger("web.handlers")

CHAT, OCR, REGION = "chat", "ocr", "region"
WORKERS_CACHE_S = 0.25  # the model line lags a worker by at most this + STATUS_REFRESH_S (web.app)
HEARTBEAT_S = 1.0
STOP_QUIET_S = 1.0
SKIP = gr.skip


def buttons(running: bool) -> tuple:
    """(the tab's run button, its «Остановить» button) while a job runs or after it."""
    return gr.Button(interactive=not running), gr.Button(visible=running)


class HandlerBase:
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
