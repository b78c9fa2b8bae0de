"""FileInputGuard: file inputs must be uploaded files. A file given by URL (Gradio would
download it itself, with no size limit) or a path never uploaded (Gradio would refuse it with a traceback) is
refused with a Russian message before Gradio sees the request."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from web.http import uploads
from web.http.asgi import BodyTooLarge, ClientGone, header, read_body, refused, respond
from web.http.upload_guard import UPLOAD_PATH

API = "/gradio_api/"
QUEUE_JOIN = "/gradio_api/queue/join"
# The API's JSON requests are small: the question, the history (of which the model sees MAX_HISTORY_TURNS turns),
# file references. An 8-MB history took the event loop ~2 s to parse and check (issue 20): 1 MB is plenty.
MAX_JSON_BODY = 1 << 20

REMOTE_FILE = ("Файлы по ссылке (URL) не принимаются: загрузите сам файл. В gradio_client передайте "
               "handle_file(\"путь/к/файлу\") с локальным путём, а не адресом в интернете.")
NOT_UPLOADED = ("Файл не найден среди загруженных: сначала загрузите его (в gradio_client — handle_file с путём "
                "к локальному файлу), затем передайте путь, который вернул сервер.")
BODY_TOO_LARGE = ("Запрос слишком большой (больше 1 МБ): передавайте только последние реплики истории диалога — модель "
                  "видит не больше MAX_HISTORY_TURNS; файлы передаются ссылками на загруженные файлы, а не содержимым.")


_SCHEME = re.compile(r"\s*[a-zA-Z][a-zA-Z0-9+.\-]*://")


def is_remote(path: object) -> bool:
    """A file reference Gradio would fetch from elsewhere (http://, https://, any scheme://, data:)."""
    return isinstance(path, str) and (bool(_SCHEME.match(path)) or path.lstrip().lower().startswith("data:"))


def file_refs(value: object, limit: int = 10_000) -> list[tuple[object, str]]:
    """(top-level index in "data", or None; path) of each Gradio FileData in a request (at most limit nodes
    visited: Gradio's requests are flat). A FileData whose url is inline data (data:..., which gr.Image would
    decode into a new file) counts with that url as its path."""
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
            if isinstance(meta, dict) and meta.get("_type") == "gradio.FileData":
                url = item.get("url")
                if isinstance(url, str) and url.lstrip().lower().startswith("data:"):
                    found.append((where, url))
                elif isinstance(item.get("path"), str):
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
        ctype = (header(scope.get("headers", []), b"content-type") or "").lower()
        if ctype.startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive, self.max_body)
        except ClientGone:
            return
        except BodyTooLarge:
            await respond(send, 413, {"error": BODY_TOO_LARGE, "detail": BODY_TOO_LARGE})
            return
        if found := self.inspect(body):
            index, ref, message = found
            peer = (scope.get("client") or ("-",))[0]
            refused("file", peer, "file input %r on %s (%s)", ref[:100], path,
                    "URL" if message == REMOTE_FILE else "not uploaded")
            if path == QUEUE_JOIN:
                name = f"параметр {index + 1}" if isinstance(index, int) else "файл"
                detail = [{"__type__": "validate", "is_valid": False, "message": message, "parameter_name": name}]
                await respond(send, 422, {"detail": detail, "error": message})
            else:
                await respond(send, 400, {"error": message, "detail": message})
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
