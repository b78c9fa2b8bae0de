"""The web's HTTP guards: pure ASGI middleware around the whole app (Gradio's routes and ours).

- SecurityHeaders: CSP frame-ancestors, nosniff, Referrer-Policy on every response.
- HostGuard: X-Forwarded-* only from TRUSTED_PROXIES; a Host (or a trusted X-Forwarded-Host) outside the allowed
  names is refused, so an attacker-chosen name never comes back in /config, the page or the file URLs.
- UploadGuard: Gradio's upload route (POST /gradio_api/upload): a request body over 2 × MAX_UPLOAD_MB is refused
  by its Content-Length (413), a client over UPLOAD_RATE_MB_PER_MIN in the last minute gets 429; the paths Gradio
  returns are remembered, so that web.uploads.discard() deletes only files that really came in as uploads.
- FileInputGuard: file inputs must be uploaded files; a file given by URL (Gradio would download it itself,
  with no size limit) or a path never uploaded (Gradio would refuse it with a traceback) is refused with a
  Russian message before Gradio sees the request.

docs/security.md describes each of them and what stays open by design. All messages are Russian."""

from __future__ import annotations

import collections
import ipaddress
import json
import logging
import math
import os
import re
import socket
import threading
import time
from pathlib import Path

from common import fmt
from web import uploads
from web.session import client_address

log = logging.getLogger(__name__)

API = "/gradio_api/"
UPLOAD_PATH = "/gradio_api/upload"
QUEUE_JOIN = "/gradio_api/queue/join"

CSP = "frame-ancestors 'self'; base-uri 'self'; object-src 'none'; form-action 'self'"
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"SAMEORIGIN"),  # the same rule for browsers without CSP frame-ancestors
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)

# Headers that say where a request came from; believed only from TRUSTED_PROXIES (Gradio builds its root URL
# from X-Forwarded-Host / -Proto and X-Gradio-Server).
FORWARDED = frozenset({
    b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port",
    b"x-forwarded-prefix", b"x-forwarded-server", b"x-real-ip", b"x-gradio-server",
})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})

RATE_WINDOW_S = 60.0
MULTIPART_SLACK = 1 << 20  # the form's own bytes around the file: a file at Gradio's cap still fits
DRAIN_LIMIT = 256 << 20  # a refused body is read and dropped (the browser then sees the answer) up to this size
MAX_JSON_BODY = 8 << 20  # the API's JSON requests are small (the question, the history, file references)

BAD_HOST = ("Неизвестный адрес сервера в заголовке Host. Откройте приложение по его обычному адресу; "
            "администратору: добавьте имя в PUBLIC_HOSTS.")
REMOTE_FILE = ("Файлы по ссылке (URL) не принимаются: загрузите сам файл. В gradio_client передайте "
               "handle_file(\"путь/к/файлу\") с локальным путём, а не адресом в интернете.")
NOT_UPLOADED = ("Файл не найден среди загруженных: сначала загрузите его (в gradio_client — handle_file с путём "
                "к локальному файлу), затем передайте путь, который вернул сервер.")
BODY_TOO_LARGE = "Запрос слишком большой: в запросе к API передаются ссылки на загруженные файлы, а не их содержимое."


# ---------------------------------------------------------------------------------------------------- settings

def _setting(settings, name: str, default, cast):
    """A setting of common.settings.Settings; until Settings has the field, the environment variable."""
    value = getattr(settings, name, None)
    if value is None:
        raw = os.environ.get(name.upper(), "").strip()
        value = cast(raw) if raw else default
    return value


def upload_rate_mb(settings) -> float:
    """UPLOAD_RATE_MB_PER_MIN: megabytes one client may upload in any minute (0: no limit)."""
    return max(0.0, float(_setting(settings, "upload_rate_mb_per_min", 200.0, float)))


def public_hosts(settings) -> str:
    """PUBLIC_HOSTS: the names the app is opened by, comma-separated ("*": any)."""
    return str(_setting(settings, "public_hosts", "", str))


def trust_no_proxy_headers() -> None:
    """uvicorn (under Gradio) rewrites the client address from X-Forwarded-For for any peer on 127.0.0.1 before
    the app sees the request: a local process could then pose as any client. Switch that off (before launch);
    HostGuard and web.session.client_address believe these headers from TRUSTED_PROXIES only."""
    os.environ["FORWARDED_ALLOW_IPS"] = ""


def security_middleware(settings) -> list:
    """The guards, outermost first (starlette Middleware entries for FastAPI(middleware=...))."""
    from starlette.middleware import Middleware

    trusted = settings.trusted_proxy_set
    rate = upload_rate_mb(settings)
    if rate and rate < settings.max_upload_mb:
        log.warning("UPLOAD_RATE_MB_PER_MIN=%s is below MAX_UPLOAD_MB=%s: a file near the limit can never be "
                    "uploaded", rate, settings.max_upload_mb)
    return [
        Middleware(SecurityHeaders),
        Middleware(HostGuard, policy=HostPolicy(settings.app_host, public_hosts(settings)), trusted=trusted),
        Middleware(UploadGuard, max_upload_bytes=settings.max_upload_bytes,
                   request_limit=2 * settings.max_upload_bytes + MULTIPART_SLACK,
                   rate_bytes=int(rate * 1024 * 1024), trusted=trusted),
        Middleware(FileInputGuard),
    ]


# ---------------------------------------------------------------------------------------------------- helpers

def _header(headers, name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


async def _respond(send, status: int, body: str | dict, headers: tuple = ()) -> None:
    if isinstance(body, str):
        data, ctype = body.encode(), b"text/plain; charset=utf-8"
    else:
        data, ctype = json.dumps(body, ensure_ascii=False).encode(), b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data})


async def _drain(receive, limit: int = DRAIN_LIMIT) -> None:
    """Read and drop what is left of a refused request's body (up to limit): a client still sending it then
    reads the answer instead of a reset connection."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body"):
            return


# ---------------------------------------------------------------------------------------------------- headers

class SecurityHeaders:
    """Adds HEADERS to every HTTP response (replacing the same headers set further in)."""

    def __init__(self, app) -> None:
        self.app = app
        self.names = {k for k, _ in HEADERS}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self.names]
                message = {**message, "headers": [*kept, *HEADERS]}
            await send(message)

        await self.app(scope, receive, wrapped)


# ---------------------------------------------------------------------------------------------------- host

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?")


def split_host(value: str) -> str | None:
    """A Host header value → its host name or IP, lower-case, without the port; None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not re.fullmatch(r":\d{1,5}", value[end + 1:])):
            return None
        host = value[1:end]
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    host, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return host.rstrip(".") if host and len(host) <= 253 and _NAME.fullmatch(host) else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class HostPolicy:
    """Which Host names the app answers to.

    Always: localhost (and *.localhost), 127.0.0.1, ::1, APP_HOST when it names one address, this machine's
    host name, and the address the connection came in on. Then:
    - PUBLIC_HOSTS empty (the default): any IP address too (a LAN or Docker host opened by its IP), but no other
      DNS name: a name pointed at this server (DNS rebinding, a poisoned cache) is refused;
    - PUBLIC_HOSTS set: only its names ("example.com", "*.example.com", IP addresses) besides the above;
      "*" allows any Host (the reverse proxy in front checks it)."""

    def __init__(self, app_host: str = "", public: str = "") -> None:
        entries = [e.strip().lower().rstrip(".") for e in public.split(",") if e.strip()]
        self.any = "*" in entries
        self.strict = bool(entries)
        self.names = set(LOCAL_NAMES)
        if app_host.strip().lower() not in WILDCARD_BINDS:
            self.names.add(app_host.strip().lower())
        try:
            self.names.add(socket.gethostname().lower())
        except OSError:
            pass
        self.suffixes = tuple(e[1:] for e in entries if e.startswith("*."))
        self.names.update(e for e in entries if not e.startswith("*."))
        self.names = {split_host(n) or n for n in self.names}

    def allows(self, host: str, server: str | None = None) -> bool:
        if self.any:
            return True
        if host in self.names or host.endswith(".localhost") or host == server:
            return True
        if any(host == s[1:] or host.endswith(s) for s in self.suffixes):
            return True
        return not self.strict and _is_ip(host)


class HostGuard:
    """X-Forwarded-* / Forwarded / X-Gradio-Server only from TRUSTED_PROXIES; the Host the app will put in its
    URLs (X-Forwarded-Host from a trusted proxy, else Host) must be allowed by the policy, else 400."""

    def __init__(self, app, policy: HostPolicy, trusted: frozenset[str] = frozenset()) -> None:
        self.app, self.policy, self.trusted = app, policy, trusted

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = (scope.get("client") or ("",))[0]
        headers = scope.get("headers", [])
        if peer in self.trusted:
            forwarded = _header(headers, b"x-forwarded-host")
            shown = forwarded.split(",")[0] if forwarded else _header(headers, b"host")
        else:
            if any(k in FORWARDED for k, _ in headers):
                scope = {**scope, "headers": [(k, v) for k, v in headers if k not in FORWARDED]}
            shown = _header(headers, b"host")
        if shown is not None:
            host = split_host(shown)
            server = (scope.get("server") or (None,))[0]
            if host is None or not self.policy.allows(host, server):
                log.info("refused: Host %r from %s", shown[:100], peer)
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await _respond(send, 400, BAD_HOST)
                return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------------------------- uploads

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


def too_large(max_upload_bytes: int) -> str:
    return f"Файл слишком большой: можно загружать файлы до {fmt.size(max_upload_bytes)}."


def too_fast(limit_bytes: int, retry_s: float) -> str:
    return (f"Слишком много загрузок с вашего адреса: не больше {fmt.size(limit_bytes)} в минуту. "
            f"Повторите через {math.ceil(retry_s)} с.")


class _Cut(Exception):
    """The body of a request without Content-Length went over a limit while it was being read."""


class UploadGuard:
    """POST /gradio_api/upload: 413 for a body over request_limit (by Content-Length, or counted as it comes),
    429 for a client over rate_bytes in the last minute (rate_bytes 0: no rate limit). The paths of accepted
    uploads are registered with web.uploads (for discard)."""

    def __init__(self, app, max_upload_bytes: int, request_limit: int, rate_bytes: int = 0,
                 trusted: frozenset[str] = frozenset(), window_s: float = RATE_WINDOW_S) -> None:
        self.app, self.trusted = app, trusted
        self.max_upload_bytes, self.request_limit = max_upload_bytes, request_limit
        self.window = RateWindow(rate_bytes, window_s) if rate_bytes > 0 else None

    def client(self, scope) -> str:
        from starlette.requests import Request

        return client_address(Request(scope), self.trusted)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != UPLOAD_PATH:
            await self.app(scope, receive, send)
            return
        raw = _header(scope.get("headers", []), b"content-length")
        length = int(raw) if raw and raw.strip().isdigit() else None
        client = self.client(scope)
        if length is not None and length > self.request_limit:
            log.info("refused: upload of %s bytes from %s (Content-Length)", length, client)
            await _drain(receive, 0)
            await _respond(send, 413, too_large(self.max_upload_bytes), ((b"connection", b"close"),))
            return
        if self.window is not None and (wait := self.window.take(client, length or 0)):
            log.info("refused: upload rate of %s (%s bytes in the window)", client, self.window.used(client))
            await _drain(receive)
            retry = ((b"retry-after", str(math.ceil(wait)).encode()),)
            await _respond(send, 429, too_fast(self.window.limit, wait), retry)
            return

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
                    log.info("refused: upload from %s cut at %s bytes (%s)", client, seen, cut[0])
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
            elif message["type"] == "http.response.body" and status == 200:
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    self.remember(b"".join(body))
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
                await _respond(send, 413, too_large(self.max_upload_bytes), ((b"connection", b"close"),))
            else:
                retry = self.window.window if self.window else RATE_WINDOW_S
                await _respond(send, 429, too_fast(self.window.limit, retry), ((b"connection", b"close"),))

    @staticmethod
    def remember(body: bytes) -> None:
        try:
            paths = json.loads(body)
        except ValueError:
            return
        if isinstance(paths, list):
            uploads.register(p for p in paths if isinstance(p, str))


# ---------------------------------------------------------------------------------------------------- file inputs

_SCHEME = re.compile(r"\s*[a-zA-Z][a-zA-Z0-9+.\-]*://")


def is_remote(path: object) -> bool:
    """A file reference Gradio would fetch from elsewhere (http://, https://, any scheme://, data:)."""
    return isinstance(path, str) and (bool(_SCHEME.match(path)) or path.lstrip().lower().startswith("data:"))


def file_refs(value: object, limit: int = 10_000) -> list[tuple[object, str]]:
    """(top-level index in "data", or None; path) of each Gradio FileData in a request (at most limit nodes
    visited: Gradio's requests are flat)."""
    found: list[tuple[object, str]] = []
    start = value.get("data") if isinstance(value, dict) and isinstance(value.get("data"), list) else None
    stack: list[tuple[object, object]] = [(i, v) for i, v in enumerate(start)] if start is not None else []
    stack.append((None, value if start is None else {k: v for k, v in value.items() if k != "data"}))
    seen = 0
    while stack and seen < limit:
        where, item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            meta = item.get("meta")
            if isinstance(meta, dict) and meta.get("_type") == "gradio.FileData" and isinstance(item.get("path"), str):
                found.append((where, item["path"]))
            stack.extend((where, v) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((where, v) for v in item if isinstance(v, dict | list))
    return found


def remote_files(value: object) -> list[tuple[object, str]]:
    return [(where, path) for where, path in file_refs(value) if is_remote(path)]


def refusal(path: str, upload_root: Path) -> str | None:
    """Why Gradio would refuse this file input (None: it is an upload). Gradio itself downloads a URL (no size
    limit) and refuses any other path outside its upload cache with a traceback in the log: both are answered
    here, in one line of log and a Russian message."""
    if is_remote(path):
        return REMOTE_FILE
    try:
        inside = Path(os.path.abspath(path)).resolve().is_relative_to(upload_root)
    except (OSError, ValueError):
        inside = False
    return None if inside else NOT_UPLOADED


class FileInputGuard:
    """Requests to Gradio's API (POST /gradio_api/..., JSON) whose file inputs are URLs, or paths that were never
    uploaded, are refused before Gradio sees them. /gradio_api/queue/join (gradio_client, the page) answers 422
    in Gradio's own validation format: gradio_client raises ValidationError with the message; the other routes
    (/call/, /run/, the curl API) answer 400 {"error": message}."""

    def __init__(self, app, max_body: int = MAX_JSON_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope.get("method") != "POST" or not path.startswith(API)
                or path == UPLOAD_PATH):
            await self.app(scope, receive, send)
            return
        ctype = (_header(scope.get("headers", []), b"content-type") or "").lower()
        if ctype.startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                if message.get("more_body"):
                    await _drain(receive)
                await _respond(send, 413, {"error": BODY_TOO_LARGE, "detail": BODY_TOO_LARGE})
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if found := self.inspect(body):
            index, ref, message = found
            log.info("refused: file input %r on %s (%s)", ref[:100], path,
                     "URL" if message == REMOTE_FILE else "not uploaded")
            if path == QUEUE_JOIN:
                name = f"параметр {index + 1}" if isinstance(index, int) else "файл"
                detail = [{"__type__": "validate", "is_valid": False, "message": message, "parameter_name": name}]
                await _respond(send, 422, {"detail": detail, "error": message})
            else:
                await _respond(send, 400, {"error": message, "detail": message})
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def inspect(body: bytes) -> tuple[object, str, str] | None:
        """The first refused file input: (index in "data" or None, its path, the message)."""
        try:  # always parsed: "gradio.FileData" may be written with JSON escapes
            value = json.loads(body)
        except (ValueError, RecursionError):
            return None  # not JSON: Gradio refuses it itself
        refs = file_refs(value)
        if not refs:
            return None
        root = uploads.upload_folder()
        for where, ref in refs:
            if (message := refusal(ref, root)) is not None:
                return where, ref, message
        return None
