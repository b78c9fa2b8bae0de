"""What the tabs' handlers share (Tab): inputs checked and saved, the job followed (progress), its status line, the
«Остановить» button; and Outputs, an event's outputs by name. No handler lets an exception reach the UI raw: a
UserError's message is shown as is (one log line), anything else is logged and shown as GENERIC_FAILURE."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import gradio as gr

from common import contract, imaging
from common.errors import GENERIC_FAILURE, ErrorCode, QueueUnavailable, UserError
from common.schemas import JobKind, JobRequest, JobState, MediaRef
from common.settings import Settings
from common.store import MediaStore
from web.http.artefacts import Owners, artefact_of
from web.http.client import person
from web.http.uploads import discard, discard_on_refusal
from web.queue.client import JobClient
from web.queue.kinds import OCR
from web.queue.registry import ActiveJobs
from web.queue.tracker import Update
from web.ui import render

log = logging.getLogger("web.ui")

HEARTBEAT_S = 1.0
JOIN_PATH = "/gradio_api/queue/join"
SOURCES_KEPT = 10_000
_SOURCES: dict[str, str] = {}  # a stored upload (MEDIA_DIR path) → the Gradio copy it came from, the latest ones
STOP_QUIET_S = 1.0
SKIP = gr.skip


class Outputs:
    """An event's outputs by name, in the order the layout wires them: a handler gives values by name, and what it
    does not give stays as it is (gr.skip)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def __call__(self, **values) -> tuple:
        unknown = set(values) - set(self.names)
        assert not unknown, unknown
        return tuple(values[name] if name in values else SKIP() for name in self.names)

    def of(self, components: dict) -> list:
        """The components these outputs name, in this order, from all of a tab's (by name)."""
        return [components[name] for name in self.names]


def failure(exc: Exception) -> str:
    """What the user is shown for an exception: a UserError's message, else GENERIC_FAILURE (logged in full)."""
    if isinstance(exc, UserError):
        log.info("refused: %s", exc.message)  # the user's mistake: one line, no traceback
        return exc.message
    log.exception("web handler failed", exc_info=exc)
    return GENERIC_FAILURE


def buttons(running: bool) -> dict:
    """The tab's run button and its «Остановить» button while a job runs or after it."""
    return {"run": gr.Button(interactive=not running), "stop": gr.Button(visible=running)}


class Tab:
    """One tab's handlers; SLOT names its job in the session's registry (one job at a time per tab)."""

    SLOT = ""

    def __init__(self, settings: Settings, client: JobClient, store: MediaStore,
                 active: ActiveJobs | None = None) -> None:
        self.settings, self.client, self.store = settings, client, store
        self.active = active or ActiveJobs()
        self.owners = Owners(client.redis, settings.media_ttl_hours * 3600)

    # ------------------------------------------------------------ inputs

    def save(self, path: str | Path | None, need: str = contract.NEED_MEDIA) -> MediaRef:
        """Copy a Gradio upload into MEDIA_DIR (content-addressed: the same file is stored once)."""
        if not path:
            raise UserError(need)
        with discard_on_refusal(path):  # refused for what it is: Gradio's copy goes now, not at the hourly sweep
            ref = self.store.save_upload(Path(path))
        _SOURCES[ref.path] = str(path)
        while len(_SOURCES) > SOURCES_KEPT:
            _SOURCES.pop(next(iter(_SOURCES)))
        return ref

    def result_file(self, result, request: gr.Request | None) -> Path:
        """The OCR text as a file, served to this caller only (web.http.artefacts)."""
        path = OCR.text_file(result, self.store)
        client = self.client_of(request)
        if client is not None and (artefact := artefact_of(path.resolve(), self.store.results_dir.resolve())):
            self.owners.set(artefact, client)
        return path

    def forget_refused(self, req: JobRequest, result) -> None:
        """A chat job's file the worker refused for what it is (unreadable, frames too large, too long): both copies
        go at once, the one in MEDIA_DIR and Gradio's. (A chat takes images and videos alike: such a refusal is about
        the file, never about where it was sent.)"""
        if result is None or result.error_code != ErrorCode.bad_media or req.kind != JobKind.chat:
            return
        self.store.remove(req.media)
        discard(_SOURCES.pop(req.media.path, None))

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
        return person(request, self.settings.trusted_proxy_set) if request is not None else None

    @staticmethod
    def joined(request: gr.Request | None) -> bool:
        """The call came through /gradio_api/queue/join: its caller reads it on the session's event stream."""
        url = getattr(getattr(request, "request", None), "url", None)
        return getattr(url, "path", "") == JOIN_PATH

    @staticmethod
    def session_of(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "-"

    failure = staticmethod(failure)

    # ------------------------------------------------------------ the job

    async def progress(self, req: JobRequest, request: gr.Request | None) -> AsyncIterator[Update]:
        """Submit (waiting through a short Redis outage) and follow the job to its result. Heartbeat updates come
        every HEARTBEAT_S when nothing happens: a caller that went away is noticed at the next yield."""
        client = self.client_of(request)
        if client is not None:  # the job's frames: served to this caller only (web.http.artefacts)
            await asyncio.to_thread(self.owners.set, req.job_id, client)
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
            if update.result is not None:
                await asyncio.to_thread(self.forget_refused, req, update.result)
            yield update

    def line(self, update: Update, kind: JobKind) -> str:
        if update.reconnecting:
            return render.reconnecting_line()
        if update.result is not None:
            return render.done_line(update.result, self.settings.max_new_tokens)
        if update.state == JobState.queued:
            return render.queued_line(update.position, update.workers, update.eta_s)
        return render.running_line(kind)

    async def stop(self, request: gr.Request) -> str:
        """«Остановить»: the tab's job leaves the queue, or stops at its next token. The job's own handler says
        «Остановлено…» when it ends: a quick stop (the usual case) leaves that line alone instead of racing it with
        «Останавливаю…», which is shown only while the job takes longer than STOP_QUIET_S to end."""
        session = self.session_of(request)
        running = self.active.get(session, self.SLOT)
        if running is None:
            return SKIP()
        try:
            await asyncio.to_thread(self.client.cancel, running.job_id, running.kind)
        except UserError as exc:
            return render.error_line(self.failure(exc))
        deadline = time.monotonic() + STOP_QUIET_S
        while time.monotonic() < deadline:
            now = self.active.get(session, self.SLOT)
            if now is None or now.job_id != running.job_id:
                return SKIP()
            await asyncio.sleep(0.05)
        return "Останавливаю…"
