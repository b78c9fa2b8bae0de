"""What the web's HTTP layers share, and nothing else (a leaf: it imports no other part of the web): the log of
refusals, a header read, a plain answer, and the one loop that reads (or drains) a request body."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

log = logging.getLogger("web.http")

DRAIN_LIMIT = 256 << 20  # a refused body is read and dropped (the client then reads the answer) up to this size


class ClientGone(Exception):
    """The caller closed the connection."""


class BodyTooLarge(Exception):
    """The request body went past its limit (what was left of it has been read and dropped, up to a limit)."""


class Refusals:
    """The log of refusals: one INFO line per refusal, but a client refused again and again (a flood) gets one
    line per kind every every_s, with the count of those left out."""

    def __init__(self, every_s: float = 10.0, max_keys: int = 10_000) -> None:
        self.every_s, self.max_keys = every_s, max_keys
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], list] = {}  # (kind, client) → [time of the last line, left out since]

    def __call__(self, kind: str, client: str, msg: str, *args, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._last.get((kind, client))
            if entry is not None and now - entry[0] < self.every_s:
                entry[1] += 1
                return
            skipped = entry[1] if entry else 0
            self._last[(kind, client)] = [now, 0]
            while len(self._last) > self.max_keys:
                self._last.pop(next(iter(self._last)))
        log.info("refused: " + msg + (f" (and {skipped} more like it)" if skipped else ""), *args)


refused = Refusals()


def header(headers, name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


async def respond(send, status: int, body: str | dict, headers: tuple = ()) -> None:
    if isinstance(body, str):
        data, ctype = body.encode(), b"text/plain; charset=utf-8"
    else:
        data, ctype = json.dumps(body, ensure_ascii=False).encode(), b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data})


async def read_body(receive, limit: int, *, declared: int | None = None, drain_max: int = DRAIN_LIMIT,
                    drain_s: float | None = None) -> bytes:
    """The request body. Past limit bytes (by its Content-Length, declared, or counted as it comes) BodyTooLarge,
    once up to drain_max more bytes have been read and dropped (for at most drain_s): a client still sending then
    reads the answer instead of a reset connection. ClientGone if the client leaves while it is read."""
    over = declared is not None and declared > limit
    if over and declared > limit + drain_max:
        raise BodyTooLarge  # too much to drain: the answer goes at once
    deadline = time.monotonic() + drain_s if drain_s is not None else None
    buf, total = bytearray(), 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit and not over:
            over, buf = True, bytearray()
        if not over:
            buf += chunk
        if not message.get("more_body", False):
            break
        if over and (total > limit + drain_max or (deadline is not None and time.monotonic() > deadline)):
            break
    if over:
        raise BodyTooLarge
    return bytes(buf)


async def drain(receive, limit: int = DRAIN_LIMIT) -> None:
    """Read and drop what is left of a refused request's body (up to limit)."""
    with contextlib.suppress(BodyTooLarge, ClientGone):
        await read_body(receive, 0, drain_max=limit)
