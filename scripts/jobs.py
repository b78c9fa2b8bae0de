"""Jobs from synchronous code — tests, benchmarks, scripts — through the web's own queue client: JobClient.afollow
driven, one step per next(), on an event loop of this module's own thread (the web itself follows jobs from its
async handlers). Closing a follow early stops its job, as in the web."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from common.schemas import JobRequest, JobResult
from web.queue.client import JobClient
from web.queue.tracker import Update

_END = object()
_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _running_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="jobs-loop", daemon=True).start()
        return _loop


def follow(client: JobClient, req: JobRequest, queue_wait_s: float | None = None) -> Iterator[Update]:
    """The updates of a submitted job until its result."""
    loop = _running_loop()
    updates = client.afollow(req, queue_wait_s)

    async def step():
        try:
            return await anext(updates)
        except StopAsyncIteration:
            return _END

    try:
        while (update := asyncio.run_coroutine_threadsafe(step(), loop).result()) is not _END:
            yield update
    finally:
        asyncio.run_coroutine_threadsafe(updates.aclose(), loop).result()


def run(client: JobClient, req: JobRequest, queue_wait_s: float | None = None) -> JobResult:
    """Submit the job and wait for its result."""
    client.submit(req)
    return result(client, req, queue_wait_s)


def result(client: JobClient, req: JobRequest, queue_wait_s: float | None = None) -> JobResult:
    """The result of a submitted job."""
    updates = follow(client, req, queue_wait_s)
    try:
        return next(u.result for u in updates if u.result is not None)
    finally:
        updates.close()
