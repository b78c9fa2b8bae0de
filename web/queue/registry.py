"""What each page is running: the job each session runs in each of its slots (a slot, or one public API call), so
«Остановить», «Новый диалог» and a closed page can stop it; and whether each session's event stream is open, so a
job whose caller never opened one (it died right after queue/join, or never meant to read) can be stopped."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from common.schemas import JobKind


@dataclass
class Running:
    job_id: str
    kind: JobKind
    begun: float = field(default_factory=time.monotonic)
    watched: bool = False  # its caller reads it through a session's event stream (queue/join): see unfollowed()


class ActiveJobs:
    """(session, slot) → the job running there, and an epoch that «Новый диалог» moves on: a job that ends after
    a reset must not bring the old conversation back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], Running] = {}
        self._epochs: dict[tuple[str, str], int] = {}
        self._streams: dict[str, int] = {}  # session → event streams open now
        self._opened: dict[str, float] = {}  # session → when its last stream opened

    def begin(self, session: str, slot: str, job_id: str, kind: JobKind, watched: bool = False) -> bool:
        """Register the slot's job; False if another one runs there already. watched: it came through queue/join,
        whose caller must open the session's event stream to read it."""
        with self._lock:
            if (session, slot) in self._jobs:
                return False
            self._jobs[(session, slot)] = Running(job_id, kind, watched=watched)
            return True

    def end(self, session: str, slot: str, job_id: str) -> None:
        with self._lock:
            if (running := self._jobs.get((session, slot))) and running.job_id == job_id:
                del self._jobs[(session, slot)]

    def get(self, session: str, slot: str) -> Running | None:
        with self._lock:
            return self._jobs.get((session, slot))

    def epoch(self, session: str, slot: str) -> int:
        with self._lock:
            return self._epochs.get((session, slot), 0)

    def of_session(self, session: str) -> list[Running]:
        with self._lock:
            return [r for (sess, _), r in self._jobs.items() if sess == session]

    def stream_opened(self, session: str) -> None:
        with self._lock:
            self._streams[session] = self._streams.get(session, 0) + 1
            self._opened[session] = time.monotonic()
            while len(self._opened) > 100_000:
                self._opened.pop(next(iter(self._opened)))

    def stream_closed(self, session: str) -> None:
        with self._lock:
            left = self._streams.get(session, 1) - 1
            if left > 0:
                self._streams[session] = left
            else:
                self._streams.pop(session, None)

    def unfollowed(self, after_s: float, now: float | None = None) -> list[Running]:
        """Jobs begun more than after_s ago whose session has not opened an event stream since (and has none open):
        nobody will ever read their answer."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return [r for (session, _), r in self._jobs.items()
                    if r.watched and now - r.begun > after_s and not self._streams.get(session)
                    and self._opened.get(session, float("-inf")) < r.begun]

    def reset(self, session: str, slot: str) -> Running | None:
        """Move the epoch on; returns the job that was running (to be stopped)."""
        with self._lock:
            self._epochs[(session, slot)] = self._epochs.get((session, slot), 0) + 1
            while len(self._epochs) > 10_000:  # sessions come and go: forget the oldest
                self._epochs.pop(next(iter(self._epochs)))
            return self._jobs.get((session, slot))
