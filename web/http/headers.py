"""SecurityHeaders: CSP frame-ancestors, nosniff, Referrer-Policy on every HTTP response (docs/security.md)."""

from __future__ import annotations

CSP = "frame-ancestors 'self'; base-uri 'self'; object-src 'none'; form-action 'self'"
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"SAMEORIGIN"),  # the same rule for browsers without CSP frame-ancestors
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)


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
