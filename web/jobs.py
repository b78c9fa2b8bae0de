"""The web's side of the queue: send a job, follow it (queue position, partial text, result).

Talks to the worker only through Redis: Celery messages, the job's event stream, heartbeats."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from kombu.exceptions import OperationalError

from common import events
from common.errors import QueueUnavailable
from common.queue import QUEUE, TASK_NAME, make_celery
from common.schemas import ChatRequest, JobResult, JobStatus, OcrRequest, RegionRequest, WorkerInfo
from common.settings import Settings

log = logging.getLogger(__name__)

Request = ChatRequest | OcrRequest | RegionRequest
NO_WORKER = (
    "Нет доступных обработчиков: задание не взято в работу за {s} с. "
    "Проверьте, что обработчик (worker) запущен, и попробуйте ещё раз."
)
LOST_RESULT = "Ответ обработчика потерян или устарел. Попробуйте ещё раз."
POSITION_WINDOW = 200
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError, OSError)


@dataclass
class Update:
    state: str  # queued | running | done
    position: int = 0  # 1 = next in line; 0 = being handed to a worker
    workers: int = 0
    text: str = ""
    result: JobResult | None = None


class JobClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings)
        self.redis = events.connect(settings.redis_url)

    # ------------------------------------------------------------ status

    def workers(self) -> list[WorkerInfo]:
        try:
            return events.list_workers(self.redis)
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc

    def position(self, job_id: str) -> tuple[int, str | None]:
        """1-based place in line (workers take from the right end), or 0 if no longer queued.

        Only the POSITION_WINDOW jobs nearest the head are read, so a long queue costs each waiting
        user a bounded read; further back it reports POSITION_WINDOW + 1 ("more than")."""
        items = self.redis.lrange(QUEUE, -POSITION_WINDOW, -1)
        for i, raw in enumerate(reversed(items)):
            try:
                if json.loads(raw).get("headers", {}).get("id") == job_id:
                    return i + 1, raw
            except ValueError:
                continue
        if len(items) == POSITION_WINDOW and self.redis.llen(QUEUE) > POSITION_WINDOW:
            return POSITION_WINDOW + 1, None
        return 0, None

    # ------------------------------------------------------------ jobs

    def submit(self, req: Request) -> None:
        try:
            self.redis.ping()
            self.app.send_task(
                TASK_NAME, args=[req.model_dump(mode="json")], task_id=req.job_id, queue=QUEUE,
                expires=self.settings.queue_wait_timeout + 5,
            )
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc

    def _meta(self, job_id: str) -> dict:
        return self.app.backend.get_task_meta(job_id)

    def _result(self, req: Request, meta: dict) -> JobResult:
        if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
            return JobResult.model_validate(meta["result"])
        if meta.get("status") == "REVOKED":  # expired in the queue: no worker took it in time
            error = NO_WORKER.format(s=self.settings.queue_wait_timeout)
            return JobResult(job_id=req.job_id, kind=req.kind, status=JobStatus.error, error=error)
        return JobResult(job_id=req.job_id, kind=req.kind, status=JobStatus.error, error=LOST_RESULT)

    def follow(self, req: Request, queue_wait_s: float | None = None) -> Iterator[Update]:
        """Updates until the result; every path ends in a done update with a result."""
        wait_s = self.settings.queue_wait_timeout if queue_wait_s is None else queue_wait_s
        give_up = time.time() + wait_s
        last_id, text, started, done_seen = "0", "", False, False
        last_queued: tuple[int, int] | None = None
        last_check = 0.0
        try:
            while True:
                # After "done" nothing more comes on the stream: poll the backend instead of blocking.
                new = [] if done_seen else events.read_events(
                    self.redis, req.job_id, last_id, block_ms=100 if started else 250)
                for ev in new:
                    last_id = ev.id
                    if ev.type == "started":
                        started = True
                    elif ev.type == "partial":
                        started, text = True, ev.text
                        yield Update("running", text=text)
                    elif ev.type == "done":
                        done_seen = True
                        if ev.result:  # the worker sent the result along: no need to wait for the backend
                            yield Update("done", text=text, result=JobResult.model_validate_json(ev.result))
                            return
                meta = self._meta(req.job_id)
                state = meta.get("status")
                if state in ("SUCCESS", "FAILURE", "REVOKED"):
                    yield Update("done", text=text, result=self._result(req, meta))
                    return
                if done_seen:
                    time.sleep(0.002)  # the result lands right after the done event
                    continue
                if not started and time.monotonic() - last_check > 0.5:
                    last_check = time.monotonic()
                    position, raw = self.position(req.job_id)
                    workers = len(events.list_workers(self.redis))
                    if (position, workers) != last_queued:
                        last_queued = (position, workers)
                        yield Update("queued", position=position, workers=workers)
                    # Withdraw the job; one too far back to be read expires in the queue by itself.
                    if time.time() > give_up and (
                        position > POSITION_WINDOW or (raw is not None and self.redis.lrem(QUEUE, 1, raw))
                    ):
                        msg = NO_WORKER.format(s=round(wait_s))
                        yield Update("done", result=JobResult(
                            job_id=req.job_id, kind=req.kind, status=JobStatus.error, error=msg))
                        return
        except REDIS_ERRORS as exc:
            raise QueueUnavailable() from exc

    def run(self, req: Request, queue_wait_s: float | None = None) -> JobResult:
        """Submit and wait for the final result (no partial updates)."""
        self.submit(req)
        for update in self.follow(req, queue_wait_s):
            if update.result is not None:
                return update.result
        raise AssertionError("follow() ended without a result")  # pragma: no cover
