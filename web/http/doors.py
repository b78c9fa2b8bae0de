"""Doors: the first thing every request meets after the Host check.

1. Only the routes the app uses are open (ROUTES): any other path Gradio or FastAPI would serve (process_recording,
   component_server, the run history, the vibe editor, monitoring, the proxy, the OpenAPI schema, …) gets 404 before
   its body is read.
2. With login on (AUTH_USERS, or AUTH_PROXY_HEADER behind TRUSTED_PROXIES) every route but /login needs a person: a
   session cookie, the user header of a trusted proxy, a user's API token, or (for /v1 and /metrics) API_KEY /
   METRICS_TOKEN. Without one: the page redirects to /login, everything else gets 401.
3. Every request is given the person its limits count for (scope["state"]["person"]): the user; without login the
   browser (a random cookie the page sets), else the address. web.http.client.person reads it."""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import quote

from web.http import login
from web.http.asgi import header, refused, respond
from web.http.client import client_address
from web.http.login import cookies, secure

BROWSER_COOKIE = "smolvlm2_browser"
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_\-]{22,64}$")

# (methods, path pattern) of every route the app uses: the page and its assets, the Gradio API the page and
# gradio_client call, the file route, the OpenAI API, metrics, login. Anything else is closed.
ROUTES = [(frozenset(methods.split()), re.compile(pattern)) for methods, pattern in (
    ("GET HEAD", r"/|/config/?|/theme\.css|/gradio_api/theme\.css|/favicon\.ico|/robots\.txt|/manifest\.json"),
    ("GET HEAD", r"/(assets|static|svelte)/.+|/pwa_icon(/\d+)?"),
    ("GET", r"/gradio_api/(info/?|queue/data|heartbeat/[\w\-]+|upload_progress|startup-events|deep_link)"),
    ("GET HEAD", r"/gradio_api/file=.+"),
    ("POST", r"/gradio_api/(upload|queue/join|cancel|reset/?)"),
    ("POST", r"/gradio_api/call/(v2/)?[\w\-]+/?"),
    ("GET", r"/gradio_api/call/(v2/)?[\w\-]+/[\w\-]+"),
    ("GET POST PUT PATCH DELETE", r"/v1/.*"),
    ("GET", r"/metrics"),
    ("GET POST", r"/login"),
    ("GET", r"/logout"),
)]
STARTUP = "/gradio_api/startup-events"
LOOPBACK = frozenset({"127.0.0.1", "::1"})
NOT_FOUND = "Нет такого адреса."
NEED_LOGIN = "Нужен вход: войдите на странице /login (или передайте API-токен пользователя)."


def route_open(method: str, path: str) -> bool:
    return any(method in methods and pattern.fullmatch(path) for methods, pattern in ROUTES)


def bearer(scope) -> str:
    scheme, _, token = (header(scope.get("headers", []), b"authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Doors:
    def __init__(self, app, settings, sessions: login.Sessions | None = None, users=None) -> None:
        self.app, self.settings, self.sessions, self.users = app, settings, sessions, users
        self.trusted = settings.trusted_proxy_set
        self.proxy_header = settings.auth_proxy_header.strip().lower().encode()
        self.login_on = users is not None or bool(self.proxy_header)
        self.page = login.LoginPage(settings, sessions, users, self.trusted) if users is not None else None
        self._launched = False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websocket route is used
            return
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        address = client_address_of(scope, self.trusted)
        if not route_open(method, path) or (path in ("/login", "/logout") and self.page is None):
            refused("route", address, "closed route %s %s from %s", method, path[:80], address)
            await respond(send, 404, NOT_FOUND if method == "GET" else {"error": NOT_FOUND},
                          ((b"connection", b"close"),))
            return
        if path in ("/login", "/logout"):
            await self.page(scope, receive, send, address)
            return
        user, via_key = await self.identify(scope)
        # Gradio's launch() calls this on itself, once, before anyone could log in.
        launch_check = path == STARTUP and address in LOOPBACK and not self._launched
        self._launched = self._launched or launch_check
        if self.login_on and user is None and not via_key and not launch_check:
            await self.turn_away(scope, send, method, path)
            return
        jar = cookies(scope)
        browser = jar[BROWSER_COOKIE].value if BROWSER_COOKIE in jar else ""
        new_browser = not self.login_on and not _COOKIE_VALUE.match(browser) and path == "/" and method == "GET"
        if new_browser:
            browser = secrets.token_urlsafe(18)
        if user is not None:
            person = f"user:{user}"
        elif _COOKIE_VALUE.match(browser) and not self.login_on:
            person = f"browser:{browser}"
        else:
            person = address  # bare, as the limits have always keyed callers by address
        state = scope.setdefault("state", {})
        state.update(person=person, user=user, authenticated=user is not None or via_key)
        if not new_browser:
            await self.app(scope, receive, send)
            return
        flags = "; Secure" if secure(scope, self.trusted) else ""
        cookie = f"{BROWSER_COOKIE}={browser}; Path=/; HttpOnly; SameSite=Lax{flags}".encode()

        async def with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, with_cookie)

    async def identify(self, scope) -> tuple[str | None, bool]:
        """(the user, or None; whether API_KEY / METRICS_TOKEN was given for the route it opens)."""
        path = scope.get("path", "/")
        token = bearer(scope)
        s = self.settings
        key_route = (path.startswith("/v1/") and s.api_key) or (path == "/metrics" and s.metrics_token)
        if token and key_route:
            key = s.api_key if path.startswith("/v1/") else s.metrics_token
            if hmac.compare_digest(token.encode(), key.encode()):
                return None, True
        if self.proxy_header and (scope.get("client") or ("-",))[0] in self.trusted:
            name = (header(scope.get("headers", []), self.proxy_header) or "").strip()
            if name:
                return name[:128], False
        if self.users is not None and token:
            name = self.users.by_token(token)
            if name:
                return name, False
        if self.sessions is not None:
            jar = cookies(scope)
            if login.SESSION_COOKIE in jar:
                name = await self.sessions.user(jar[login.SESSION_COOKIE].value)
                if name:
                    return name, False
        return None, False

    async def turn_away(self, scope, send, method: str, path: str) -> None:
        if method == "GET" and path == "/":  # the page: to the login form, and back here after it
            query = scope.get("query_string", b"").decode("latin-1")
            target = "/login" + (f"?next={quote('/?' + query, safe='')}" if query else "")
            await respond(send, 303, "", ((b"location", target.encode()),))
            return
        if path.startswith("/v1/"):
            body = {"error": {"message": NEED_LOGIN, "type": "invalid_request_error", "code": "invalid_api_key",
                              "param": None}}
            await respond(send, 401, body, ((b"www-authenticate", b"Bearer"),))
            return
        await respond(send, 401, {"error": NEED_LOGIN}, ((b"www-authenticate", b"Bearer"),))


def client_address_of(scope, trusted: frozenset[str]) -> str:
    from starlette.requests import Request

    return client_address(Request(scope), trusted)
