"""HostGuard: X-Forwarded-* only from TRUSTED_PROXIES; a Host (or a trusted X-Forwarded-Host) outside the names
HostPolicy allows is refused (400, in Russian), so an attacker-chosen name never comes back in /config, the page or
the file URLs (docs/security.md)."""

from __future__ import annotations

import ipaddress
import re
import socket

from web.http.asgi import header, refused, respond

# Headers that say where a request came from; believed only from TRUSTED_PROXIES (Gradio builds its root URL
# from X-Forwarded-Host / -Proto and X-Gradio-Server).
FORWARDED = frozenset({
    b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port",
    b"x-forwarded-prefix", b"x-forwarded-server", b"x-real-ip", b"x-gradio-server",
})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
PRIVATE_SUFFIXES = (".local", ".internal", ".home.arpa")  # names only a local network resolves (RFC 6762, 8375)

BAD_HOST = ("Неизвестный адрес сервера в заголовке Host. Откройте приложение по его обычному адресу; "
            "администратору: добавьте имя в PUBLIC_HOSTS.")

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
