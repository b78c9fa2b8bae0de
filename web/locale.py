"""Gradio translates its own strings («Drop File Here», «Clear», «Use via API», …) by the browser's language,
read once when its scripts start. The page is Russian throughout, so an ASGI middleware puts a tiny script at
the top of every HTML page that reports Russian before Gradio's i18n starts (launch(head=...) comes too late)."""

from __future__ import annotations

SCRIPT = (
    b"<script>for (const [k, v] of [['language', 'ru-RU'], ['languages', ['ru-RU', 'ru']]]) {"
    b" try { Object.defineProperty(navigator, k, { get: () => v, configurable: true }); } catch (e) {} }</script>"
)


class RussianPage:
    """Pure ASGI middleware: buffers only uncompressed text/html responses and inserts SCRIPT after <head>."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def wrapped(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                html = headers.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in headers:
                    start = message  # hold it until the body is complete
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = inject(b"".join(chunks))
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, wrapped)


def inject(body: bytes) -> bytes:
    at = body.find(b"<head>")
    if at < 0:
        return body
    at += len(b"<head>")
    return body[:at] + SCRIPT + body[at:]
