"""Who is asking and what each page is running: the client address (for the per-client limit) and the job each
session's tab runs now, so «Остановить» and «Новый диалог» can stop it."""

from __future__ import annotations

import threading
from dataclasses import dataclass


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

    def reset(self, session: str, tab: str) -> Running | None:
        """Move the epoch on; returns the job that was running (to be stopped)."""
        with self._lock:
            self._epochs[(session, tab)] = self._epochs.get((session, tab), 0) + 1
            while len(self._epochs) > 10_000:  # sessions come and go: forget the oldest
                self._epochs.pop(next(iter(self._epochs)))
            return self._jobs.get((session, tab))
