"""What the user sees of one followed job: Update (one line of news) and Tracker, the state machine that turns
what the watcher saw (events, queue status, outages, the result) into updates. No I/O: web.queue.client feeds it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from common import events
from common.errors import ErrorCode, QueueUnavailable
from common.schemas import EventType, JobRequest, JobResult, JobState, JobStatus

POSITION_WINDOW = 200  # queue positions are read this far from the head; further back: "more than"
NO_WORKER = (
    "Нет доступных обработчиков: задание не взято в работу за {s} с. "
    "Проверьте, что обработчик (worker) запущен, и попробуйте ещё раз."
)


# What the watcher (web.queue.watcher) sees and feeds in, beside JobEvent and JobResult:


@dataclass
class QueueStatus:
    position: int  # 1 = next in line; 0 = no longer in the index (being handed to a worker)
    waiting: int  # queued jobs in all
    workers: int  # workers online (loading, ready or busy)
    eta_s: float | None  # a guess from recent jobs of the same kind


@dataclass
class Outage:
    since: float  # time.monotonic() of the first failure


class Recovered:
    pass


@dataclass
class Update:
    state: JobState
    position: int = 0  # 1 = next in line; 0 = being handed to a worker
    waiting: int = 0
    workers: int = 0
    eta_s: float | None = None
    text: str = ""
    result: JobResult | None = None
    # How much of text will not change (a translated answer's finished sentences; the rest is English still being
    # written and is replaced by its translation). None: text only grows.
    stable: int | None = None
    reconnecting: bool = False  # Redis is away: following resumes when it is back
    heartbeat: bool = False  # nothing new: lets a Gradio generator yield, so a gone caller is noticed


class Tracker:
    """One followed job as a state machine: fed what the watcher saw, it says what the user sees. No I/O."""

    SETTLE_S = 2.0  # after Redis is back, before looking for the job's message

    def __init__(self, req: JobRequest, wait_s: float, grace_s: float, now: float | None = None,
                 verify_every_s: float = 30.0) -> None:
        self.req, self.grace_s, self.verify_every_s = req, grace_s, verify_every_s
        now = now if now is not None else time.monotonic()
        self.give_up = now + wait_s
        self.verify_at = now + verify_every_s
        self.wait_s = wait_s
        self.text, self.started, self.result = "", False, None
        self.outage_since: float | None = None
        self._last_queue: tuple | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def feed(self, item, now: float | None = None) -> list[Update]:
        now = time.monotonic() if now is None else now
        if self.done:
            return []
        if isinstance(item, JobResult):
            return self._end(item)
        if isinstance(item, events.JobEvent):
            if item.type == EventType.done and item.result:
                return self._end(JobResult.model_validate_json(item.result))
            if item.type == EventType.started:
                self.started = True
                return [Update(JobState.running, text=self.text)]
            if item.type == EventType.partial:
                self.started, self.text = True, item.text
                return [Update(JobState.running, text=self.text, stable=item.stable)]
            return []
        if isinstance(item, QueueStatus) and not self.started:
            key = (item.position, item.workers, round(item.eta_s or 0))
            if key == self._last_queue:
                return []
            self._last_queue = key
            return [Update(JobState.queued, item.position, item.waiting, item.workers, item.eta_s, self.text)]
        if isinstance(item, Outage):
            self.outage_since = item.since
            state = JobState.running if self.started else JobState.queued
            return [Update(state, text=self.text, reconnecting=True)]
        if isinstance(item, Recovered):
            self.outage_since = None
            self.verify_at = min(self.verify_at, now + self.SETTLE_S)  # an outage can lose a message in flight
            self._last_queue = None
            return [Update(JobState.running if self.started else JobState.queued, text=self.text)]
        return self.check(now)

    def check(self, now: float) -> list[Update]:
        """Time-driven endings: Redis away past the grace period."""
        if self.outage_since is not None and now - self.outage_since > self.grace_s:
            return self._end(self._error(QueueUnavailable().message, ErrorCode.queue_unavailable))
        return []

    def verify_due(self, now: float) -> bool:
        """Time to check that the queued job's message still exists (see JobClient.resend_if_lost)."""
        return not self.started and not self.done and self.outage_since is None and now >= self.verify_at

    def overdue(self, now: float) -> bool:
        """No worker took the job in time: withdraw it."""
        return not self.started and not self.done and self.outage_since is None and now > self.give_up

    def no_worker(self) -> JobResult:
        return self._error(NO_WORKER.format(s=round(self.wait_s)), ErrorCode.no_worker)

    def _error(self, message: str, code: ErrorCode) -> JobResult:
        return JobResult(job_id=self.req.job_id, kind=self.req.kind, status=JobStatus.error, error=message,
                         error_code=code, queued_at=self.req.queued_at)

    def _end(self, result: JobResult) -> list[Update]:
        self.result = result
        return [Update(JobState.done, text=self.text, result=result)]
