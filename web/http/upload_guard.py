"""UploadGuard: Gradio's upload route (POST /gradio_api/upload). A request body over 2 × MAX_UPLOAD_MB is refused
by its Content-Length (413), a client over UPLOAD_RATE_MB_PER_MIN in the last minute gets 429; the paths Gradio
returns are remembered, so that web.http.uploads.discard() deletes only files that really came in as uploads. All
messages are Russian (docs/security.md)."""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time

from common import fmt
from common.store import too_large
from web.http import uploads
from web.http.asgi import drain, header, refused, respond
from web.http.client import person

log = logging.getLogger(__name__)

UPLOAD_PATH = "/gradio_api/upload"
RATE_WINDOW_S = 60.0
MULTIPART_SLACK = 1 << 20  # the form's own bytes around the file: a file at Gradio's cap still fits


class RateWindow:
    """Bytes per client over a sliding window, in one-second buckets (at most window_s buckets per client)."""

    def __init__(self, limit_bytes: int, window_s: float = RATE_WINDOW_S, max_clients: int = 100_000) -> None:
        self.limit, self.window, self.max_clients = limit_bytes, window_s, max_clients
        self._lock = threading.Lock()
        self._clients: dict[str, collections.deque] = {}
        self._sums: dict[str, int] = {}

    def _prune(self, client: str, now: float) -> collections.deque:
        buckets = self._clients.get(client)
        if buckets is None:
            while len(self._clients) >= self.max_clients:  # forget the longest-known client
                oldest = next(iter(self._clients))
                self._clients.pop(oldest)
                self._sums.pop(oldest, None)
            buckets = self._clients[client] = collections.deque()
            self._sums[client] = 0
        while buckets and buckets[0][0] <= now - self.window:
            self._sums[client] -= buckets.popleft()[1]
        return buckets

    @property
    def clients(self) -> int:
        """How many clients the window remembers (at most max_clients)."""
        with self._lock:
            return len(self._clients)

    def used(self, client: str, now: float | None = None) -> int:
        with self._lock:
            self._prune(client, time.monotonic() if now is None else now)
            return self._sums[client]

    def take(self, client: str, nbytes: int, now: float | None = None) -> float:
        """Count nbytes for client if they fit in the window: 0.0; else the seconds until they would fit
        (nothing counted)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            buckets = self._prune(client, now)
            total = self._sums[client]
            if total + nbytes > self.limit:
                if nbytes > self.limit:
                    return self.window
                freed = total
                for t, n in buckets:  # the oldest first: when enough of them have left the window
                    freed -= n
                    if freed + nbytes <= self.limit:
                        return max(1.0, t + self.window - now)
                return self.window
            second = math.floor(now)
            if buckets and buckets[-1][0] == second:
                buckets[-1][1] += nbytes
            else:
                buckets.append([second, nbytes])
            self._sums[client] = total + nbytes
            return 0.0

    def add(self, client: str, nbytes: int, now: float | None = None) -> bool:
        """Count nbytes already received; False once the client is over the limit."""
        now = time.monotonic() if now is None else now
        with self._lock:
            buckets = self._prune(client, now)
            second = math.floor(now)
            if buckets and buckets[-1][0] == second:
                buckets[-1][1] += nbytes
            else:
                buckets.append([second, nbytes])
            self._sums[client] += nbytes
            return self._sums[client] <= self.limit


def too_fast(limit_bytes: int, retry_s: float) -> str:
    return (f"Слишком много загрузок с вашего адреса: не больше {fmt.size(limit_bytes)} в минуту. "
            f"Повторите через {math.ceil(retry_s)} с.")


class _Cut(Exception):
    """The body of a request without Content-Length went over a limit while it was being read."""


class UploadGuard:
    """POST /gradio_api/upload: 413 for a body over request_limit (by Content-Length, or counted as it comes),
    429 for a client over rate_bytes in the last minute (rate_bytes 0: no rate limit). The paths of accepted
    uploads are registered with web.http.uploads (for discard)."""

    def __init__(self, app, max_upload_bytes: int, request_limit: int, rate_bytes: int = 0,
                 trusted: frozenset[str] = frozenset(), window_s: float = RATE_WINDOW_S,
                 window: RateWindow | None = None) -> None:
        self.app, self.trusted = app, trusted
        self.max_upload_bytes, self.request_limit = max_upload_bytes, request_limit
        # window: shared with /v1 (web.app), so both routes draw on one budget per person
        self.window = window or (RateWindow(rate_bytes, window_s) if rate_bytes > 0 else None)
        if 0 < rate_bytes < max_upload_bytes:
            log.warning("UPLOAD_RATE_MB_PER_MIN=%g is below MAX_UPLOAD_MB=%g: a file near the limit can never be "
                        "uploaded", rate_bytes / 2**20, max_upload_bytes / 2**20)

    def client(self, scope) -> str:
        from starlette.requests import Request

        return person(Request(scope), self.trusted)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != UPLOAD_PATH:
            await self.app(scope, receive, send)
            return
        raw = header(scope.get("headers", []), b"content-length")
        length = int(raw) if raw and raw.strip().isdigit() else None
        client = self.client(scope)
        uploads.upload_started(client)  # a question sent meanwhile waits for it (web.ui.chat)
        accepted = False
        try:
            accepted = await self._guarded(scope, receive, send, client, length)
        finally:
            uploads.upload_ended(client, accepted)

    async def _guarded(self, scope, receive, send, client: str, length: int | None) -> bool:
        if length is not None and length > self.request_limit:
            refused("size", client, "upload of %s bytes from %s (Content-Length)", length, client)
            await drain(receive, 0)
            await respond(send, 413, too_large(self.max_upload_bytes), ((b"connection", b"close"),))
            return False
        if self.window is not None and (wait := self.window.take(client, length or 0)):
            refused("rate", client, "upload rate of %s (%s bytes in the last minute)", client, self.window.used(client))
            await drain(receive)
            retry = ((b"retry-after", str(math.ceil(wait)).encode()),)
            await respond(send, 429, too_fast(self.window.limit, wait), retry)
            return False
        return await self._receive(scope, receive, send, client, length)

    async def _receive(self, scope, receive, send, client: str, length: int | None) -> bool:
        """Pass the upload to Gradio, within the limits; True if Gradio accepted it."""
        cut: list[int] = []  # the status to answer with, once a body without Content-Length went over a limit
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if length is None and message["type"] == "http.request" and not cut:
                n = len(message.get("body", b""))
                seen += n
                if seen > self.request_limit:
                    cut.append(413)
                elif self.window is not None and not self.window.add(client, n):
                    cut.append(429)
                if cut:
                    refused("cut", client, "upload from %s cut at %s bytes (%s)", client, seen, cut[0])
                    raise _Cut
            return message

        started = False
        status = 0
        body: list[bytes] = []

        async def watched(message: dict) -> None:
            nonlocal started, status
            if cut:
                return  # the app's own answer to the broken body: ours goes instead
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                if status == 413:  # Gradio's own size check (max_file_size), in English: the same in Russian
                    refused("size", client, "upload from %s over Gradio's size cap", client)
                    await respond(send, 413, too_large(self.max_upload_bytes))
                    return
            elif status == 413:
                return
            elif message["type"] == "http.response.body" and status == 200:
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    self.remember(b"".join(body), client)
            await send(message)

        try:
            await self.app(scope, counted if length is None else receive, watched)
        except _Cut:
            pass
        except Exception:
            if not cut:
                raise
        if cut and not started:
            if cut[0] == 413:
                await respond(send, 413, too_large(self.max_upload_bytes), ((b"connection", b"close"),))
            else:
                retry = self.window.window if self.window else RATE_WINDOW_S
                await respond(send, 429, too_fast(self.window.limit, retry), ((b"connection", b"close"),))
        return status == 200 and not cut

    @staticmethod
    def remember(body: bytes, owner: str | None = None) -> None:
        try:
            paths = json.loads(body)
        except ValueError:
            return
        if isinstance(paths, list):
            uploads.register((p for p in paths if isinstance(p, str)), owner)

