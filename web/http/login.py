"""The login page (/login, Russian), its check, logout, and the sessions behind the cookie.

A session is a random token in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS); Redis keeps only its SHA-256
→ the user, for AUTH_SESSION_HOURS, so several web processes share sessions and logout ends one everywhere. A
session seen lately is believed for CACHE_S without asking Redis (a short Redis outage keeps people logged in).
Failed logins: each costs the caller FAIL_DELAY_S, and past FAILS_PER_WINDOW in WINDOW_S from one address the
form answers 429 until the window has room again. Logged without the password."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import html
import logging
import secrets
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

import anyio

from common import events, keys
from web.http.asgi import BodyTooLarge, ClientGone, header, read_body, respond

log = logging.getLogger(__name__)

SESSION_COOKIE = "smolvlm2_session"
CACHE_S = 60.0
FAIL_DELAY_S = 1.0
FAILS_PER_WINDOW = 5
WINDOW_S = 300.0
FORM_LIMIT = 8192

BAD_LOGIN = "Неверное имя пользователя или пароль."
TOO_MANY = "Слишком много неудачных попыток входа с вашего адреса. Повторите через {s} с."
LOGGED_OUT = "Вы вышли."


def _key(token: str) -> str:
    return f"{keys.PREFIX}:session:{hashlib.sha256(token.encode()).hexdigest()}"


class Sessions:
    def __init__(self, redis, ttl_s: float) -> None:
        self.redis, self.ttl_s = redis, int(ttl_s)
        self._seen: dict[str, tuple[str, float]] = {}

    async def create(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        await anyio.to_thread.run_sync(lambda: self.redis.set(_key(token), user, ex=self.ttl_s))
        self._seen[token] = (user, time.monotonic())
        return token

    async def user(self, token: str) -> str | None:
        if not token or len(token) > 100:
            return None
        seen = self._seen.get(token)
        if seen and time.monotonic() - seen[1] < CACHE_S:
            return seen[0]
        try:
            raw = await anyio.to_thread.run_sync(self.redis.get, _key(token))
        except events.REDIS_ERRORS:
            return seen[0] if seen else None  # Redis away: a session seen before is still believed
        if raw is None:
            self._seen.pop(token, None)
            return None
        user = raw.decode() if isinstance(raw, bytes) else raw
        self._seen[token] = (user, time.monotonic())
        while len(self._seen) > 10_000:
            self._seen.pop(next(iter(self._seen)))
        return user

    async def end(self, token: str) -> None:
        self._seen.pop(token, None)
        try:
            await anyio.to_thread.run_sync(self.redis.delete, _key(token))
        except events.REDIS_ERRORS:
            log.warning("logout: Redis unavailable, the session ends when its key expires")


class Failures:
    """Failed logins per address in a sliding window."""

    def __init__(self) -> None:
        self._fails: dict[str, collections.deque] = {}

    def wait_s(self, address: str) -> float:
        now = time.monotonic()
        q = self._fails.get(address)
        while q and now - q[0] > WINDOW_S:
            q.popleft()
        return WINDOW_S - (now - q[0]) if q and len(q) >= FAILS_PER_WINDOW else 0.0

    def add(self, address: str) -> None:
        self._fails.setdefault(address, collections.deque()).append(time.monotonic())
        while len(self._fails) > 100_000:
            self._fails.pop(next(iter(self._fails)))

    def clear(self, address: str) -> None:
        self._fails.pop(address, None)


PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Вход — SmolVLM2 — демо</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f5f5f7; display: flex; justify-content: center;
       align-items: center; min-height: 100vh; margin: 0; }}
form {{ background: #fff; padding: 2rem; border-radius: 12px; box-shadow: 0 2px 12px #0002; width: min(22rem, 90vw); }}
h1 {{ font-size: 1.3rem; margin: 0 0 1rem; }}
label {{ display: block; margin: .8rem 0 .3rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .55rem; font-size: 1rem; border: 1px solid #bbb;
        border-radius: 6px; }}
button {{ margin-top: 1.2rem; width: 100%; padding: .6rem; font-size: 1rem; border: 0; border-radius: 6px;
         background: #ea580c; color: #fff; cursor: pointer; }}
#login-error {{ color: #b91c1c; margin: .8rem 0 0; min-height: 1.2em; }}
</style></head>
<body><form method="post" action="/login">
<h1>SmolVLM2 — демо: вход</h1>
<input type="hidden" name="next" value="{next}">
<label for="username">Имя пользователя</label>
<input id="username" name="username" autocomplete="username" required autofocus value="{username}">
<label for="password">Пароль</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="login-submit">Войти</button>
<p id="login-error" role="alert">{error}</p>
</form></body></html>
"""


def cookies(scope) -> SimpleCookie:
    jar = SimpleCookie()
    raw = header(scope.get("headers", []), b"cookie")
    if raw:
        try:
            jar.load(raw)
        except Exception:  # noqa: BLE001 - a malformed Cookie header counts as none
            return SimpleCookie()
    return jar


def secure(scope, trusted: frozenset[str]) -> bool:
    """Served over HTTPS: directly, or behind a trusted proxy that says so."""
    if scope.get("scheme") == "https":
        return True
    peer = (scope.get("client") or ("-",))[0]
    return peer in trusted and (header(scope.get("headers", []), b"x-forwarded-proto") or "").lower() == "https"


def safe_next(value: str) -> str:
    """Only a path on this site (no scheme, no //host): an open redirect would lend the login page to phishing."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value or "\n" in value or "\r" in value:
        return "/"
    return value


class LoginPage:
    def __init__(self, settings, sessions: Sessions, users, trusted: frozenset[str]) -> None:
        self.sessions, self.users, self.trusted = sessions, users, trusted
        self.failures = Failures()

    def cookie(self, scope, token: str, max_age: int) -> bytes:
        flags = "; Secure" if secure(scope, self.trusted) else ""
        return f"{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{flags}".encode()

    async def page(self, send, status: int, error: str = "", username: str = "", target: str = "/",
                   extra: tuple = ()) -> None:
        body = PAGE.format(next=html.escape(target), username=html.escape(username), error=html.escape(error))
        data = body.encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"no-store"), *extra]})
        await send({"type": "http.response.body", "body": data})

    async def __call__(self, scope, receive, send, address: str) -> None:
        if scope["path"] == "/logout":
            jar = cookies(scope)
            if SESSION_COOKIE in jar:
                await self.sessions.end(jar[SESSION_COOKIE].value)
            await respond(send, 303, "", ((b"location", b"/login"), (b"set-cookie", self.cookie(scope, "", 0))))
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["method"] == "GET":
            await self.page(send, 200, target=safe_next((query.get("next") or ["/"])[0]))
            return
        origin = header(scope.get("headers", []), b"origin")
        host = header(scope.get("headers", []), b"host") or ""
        if origin and origin.split("://", 1)[-1] != host:
            await respond(send, 403, "Запрос входа с чужого сайта отклонён.")
            return
        try:
            form = parse_qs((await read_body(receive, FORM_LIMIT)).decode("utf-8", "replace"))
        except (BodyTooLarge, ClientGone):
            await respond(send, 413, "Слишком большой запрос.")
            return
        username = (form.get("username") or [""])[0].strip()[:64]
        password = (form.get("password") or [""])[0][:1024]
        target = safe_next((form.get("next") or ["/"])[0])
        if wait := self.failures.wait_s(address):
            log.info("login refused: too many failures from %s", address)
            await self.page(send, 429, TOO_MANY.format(s=int(wait) + 1), username, target,
                            ((b"retry-after", str(int(wait) + 1).encode()),))
            return
        ok = await anyio.to_thread.run_sync(self.users.check_password, username, password)
        if not ok:
            self.failures.add(address)
            log.info("login failed for %r from %s", username, address)
            await asyncio.sleep(FAIL_DELAY_S)
            await self.page(send, 401, BAD_LOGIN, username, target)
            return
        self.failures.clear(address)
        token = await self.sessions.create(username)
        log.info("login: %s from %s", username, address)
        await respond(send, 303, "", ((b"location", target.encode()),
                                      (b"set-cookie", self.cookie(scope, token, self.sessions.ttl_s))))
