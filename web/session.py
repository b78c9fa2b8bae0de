"""Who is asking and what each page is running: the client address (for the per-client limit) and the job each
session's tab runs now, so «Остановить» and «Новый диалог» can stop it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

import anyio

log = logging.getLogger(__name__)


def client_address(request, trusted: frozenset[str]) -> str:
    """The caller's IP; behind a trusted reverse proxy, the last address in X-Forwarded-For it did not add."""
    peer = getattr(getattr(request, "client", None), "host", None) or "-"
    if peer not in trusted:
        return peer
    headers = getattr(request, "headers", None) or {}
    hops = [h.strip() for h in (headers.get("x-forwarded-for") or "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return peer


@dataclass
class Running:
    job_id: str
    kind: str


class ActiveJobs:
    """(session, tab) → the job running there, and an epoch that «Новый диалог» moves on: a job that ends after
    a reset must not bring the old conversation back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], Running] = {}
        self._epochs: dict[tuple[str, str], int] = {}

    def begin(self, session: str, tab: str, job_id: str, kind: str) -> bool:
        """Register the tab's job; False if another one runs there already."""
        with self._lock:
            if (session, tab) in self._jobs:
                return False
            self._jobs[(session, tab)] = Running(job_id, kind)
            return True

    def end(self, session: str, tab: str, job_id: str) -> None:
        with self._lock:
            if (running := self._jobs.get((session, tab))) and running.job_id == job_id:
                del self._jobs[(session, tab)]

    def get(self, session: str, tab: str) -> Running | None:
        with self._lock:
            return self._jobs.get((session, tab))

    def epoch(self, session: str, tab: str) -> int:
        with self._lock:
            return self._epochs.get((session, tab), 0)

    def of_session(self, session: str) -> list[Running]:
        with self._lock:
            return [r for (sess, _), r in self._jobs.items() if sess == session]

    def reset(self, session: str, tab: str) -> Running | None:
        """Move the epoch on; returns the job that was running (to be stopped)."""
        with self._lock:
            self._epochs[(session, tab)] = self._epochs.get((session, tab), 0) + 1
            while len(self._epochs) > 10_000:  # sessions come and go: forget the oldest
                self._epochs.pop(next(iter(self._epochs)))
            return self._jobs.get((session, tab))


class SessionGone:
    """ASGI middleware: a Gradio session's event stream (GET /gradio_api/queue/data?session_hash=…) that closes
    before it ended means the page was closed or the API caller went away: that session's jobs are stopped
    (Gradio itself only drops the stream; a job waiting in Redis would otherwise run for nobody)."""

    PATH = "/gradio_api/queue/data"

    def __init__(self, app, active: ActiveJobs, cancel) -> None:
        self.app, self.active, self.cancel = app, active, cancel

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.PATH:
            await self.app(scope, receive, send)
            return
        session = (parse_qs(scope.get("query_string", b"").decode()).get("session_hash") or [""])[0]
        ended = False

        async def watched_send(message) -> None:
            nonlocal ended
            if message["type"] == "http.response.body" and not message.get("more_body"):
                ended = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            if not ended and session:
                await self._stop(session)

    async def _stop(self, session: str) -> None:
        jobs = self.active.of_session(session)
        if jobs:
            log.info("session %s: event stream closed early, stopping %d job(s)", session[:8], len(jobs))
        for running in jobs:
            try:
                await anyio.to_thread.run_sync(self.cancel, running.job_id, running.kind)
            except Exception:  # noqa: BLE001 - Redis away: the job is stopped when its watch key expires
                log.warning("job %s of a closed session could not be stopped", running.job_id)
