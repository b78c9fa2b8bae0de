"""The web's HTTP guards: pure ASGI middleware around the whole app (Gradio's routes and ours), put together by
security_middleware(), and what they share (the refusal log, plain answers).

- SecurityHeaders: CSP frame-ancestors, nosniff, Referrer-Policy on every response.
- HostGuard: X-Forwarded-* only from TRUSTED_PROXIES; a Host (or a trusted X-Forwarded-Host) outside the allowed
  names is refused, so an attacker-chosen name never comes back in /config, the page or the file URLs.
- UploadGuard (web.upload_guard): size and rate limits on Gradio's upload route; remembers what was uploaded.
- FileInputGuard (web.file_input_guard): file inputs must be uploaded files, never URLs or other paths.

docs/security.md describes each of them and what stays open by design. All messages are Russian."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time

log = logging.getLogger(__name__)

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
PRIVATE_SUFFIXES = (".local", ".internal", ".home.arpa")  # names only a local network resolves (RFC 6762, 8375)

DRAIN_LIMIT = 256 << 20  # a refused body is read and dropped (the browser then sees the answer) up to this size

BAD_HOST = ("Неизвестный адрес сервера в заголовке Host. Откройте приложение по его обычному адресу; "
            "администратору: добавьте имя в PUBLIC_HOSTS.")


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

    # Imported here: both guards import this module's helpers.
    from web.file_input_guard import FileInputGuard
    from web.upload_guard import MULTIPART_SLACK, UploadGuard

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

class _Refusals:
    """The log of refusals: one INFO line per refusal, but a client refused again and again (a flood) gets one
    line per kind every LOG_EVERY_S, with the count of those left out."""

    def __init__(self, every_s: float = 10.0, max_keys: int = 10_000) -> None:
        self.every_s, self.max_keys = every_s, max_keys
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], list] = {}  # (kind, client) → [time of the last line, left out since]

    def __call__(self, kind: str, client: str, msg: str, *args) -> None:
        now = time.monotonic()
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


refused = _Refusals()


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


async def drain(receive, limit: int = DRAIN_LIMIT) -> None:
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
    - PUBLIC_HOSTS empty (the default): also any IP address and any name no one outside the local network can
      own: a name without a dot (a compose service, a LAN host) or under .local, .internal, .home.arpa. A public
      DNS name pointed at this server (DNS rebinding, a poisoned cache) is refused;
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
        return not self.strict and (_is_ip(host) or "." not in host or host.endswith(PRIVATE_SUFFIXES))


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
            forwarded = header(headers, b"x-forwarded-host")
            shown = forwarded.split(",")[0] if forwarded else header(headers, b"host")
        else:
            if any(k in FORWARDED for k, _ in headers):
                scope = {**scope, "headers": [(k, v) for k, v in headers if k not in FORWARDED]}
            shown = header(headers, b"host")
        if shown is not None:
            host = split_host(shown)
            server = (scope.get("server") or (None,))[0]
            if host is None or not self.policy.allows(host, server):
                refused("host", peer, "Host %r from %s", shown[:100], peer)
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await respond(send, 400, BAD_HOST)
                return
        await self.app(scope, receive, send)


