"""The model status line at the top of the page: workers by state, the queue, loading progress, load errors."""

from __future__ import annotations

import asyncio
import time

from web.queue.client import JobClient
from web.ui import render
from web.ui.tab import failure

WORKERS_CACHE_S = 0.25  # the line lags a worker by at most this + STATUS_REFRESH_S (web.ui.layout)


class ModelStatus:
    def __init__(self, client: JobClient) -> None:
        self.client = client
        self._workers: tuple[float, list | None, int, str | None] = (0.0, None, 0, None)
        self._lock = asyncio.Lock()

    async def line(self) -> str:
        """Refreshed twice a second by every page; one Redis read per WORKERS_CACHE_S for all of them."""
        async with self._lock:
            at, workers, waiting, error = self._workers
            if time.monotonic() - at > WORKERS_CACHE_S:
                try:
                    workers = await asyncio.to_thread(self.client.workers)
                    waiting, error = await asyncio.to_thread(self.client.queue_length), None
                except Exception as exc:  # noqa: BLE001 - the status line says what is wrong instead
                    workers, error = None, failure(exc)
                self._workers = (time.monotonic(), workers, waiting, error)
        return render.error_line(error) if error else render.workers_line(workers or [], waiting)
