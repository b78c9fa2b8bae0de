"""SessionGone: a page closed, or an API caller gone, stops that session's jobs; a job whose caller never opened its
event stream is stopped too, and counted as abandoned."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import parse_qs

import anyio

from web.queue.registry import ActiveJobs

log = logging.getLogger(__name__)


class SessionGone:
    """ASGI middleware: a Gradio session's event stream (GET /gradio_api/queue/data?session_hash=…) that closes
    before it ended means the page was closed or the API caller went away: that session's jobs are stopped
    (Gradio itself only drops the stream; a job waiting in Redis would otherwise run for nobody)."""

    PATH = "/gradio_api/queue/data"

    def __init__(self, app, active: ActiveJobs, cancel, abandon=None, abandon_after_s: float = 15.0) -> None:
        self.app, self.active, self.cancel = app, active, cancel
        if abandon is not None:
            # Gradio runs a queue/join's handler whether or not its caller ever reads the answer: a caller that died
            # right after joining (or never meant to read) would have its job run in full for nobody.
            threading.Thread(target=self._watch, args=(abandon, abandon_after_s), name="abandoned-jobs",
                             daemon=True).start()

    def _watch(self, abandon, after_s: float) -> None:
        while True:
            time.sleep(min(1.0, after_s / 4))
            for running in self.active.unfollowed(after_s):
                log.info("job %s: no event stream opened in %.0f s: stopped as abandoned", running.job_id, after_s)
                try:
                    abandon(running.job_id, running.kind)
                except Exception:  # noqa: BLE001 - Redis away: the job is stopped when its watch key expires
                    log.warning("job %s: could not be stopped as abandoned", running.job_id)

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

        if session:
            self.active.stream_opened(session)
        try:
            await self.app(scope, receive, watched_send)
        finally:
            if session:
                self.active.stream_closed(session)
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
