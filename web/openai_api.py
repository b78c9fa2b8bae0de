"""The OpenAI-compatible API on the web's own port: GET /v1/models, POST /v1/chat/completions (plain and
stream=true). Same admission, queue and workers as the UI: a request becomes one ChatRequest, submitted with
JobClient.submit and followed with JobClient.afollow (the per-job event stream the UI reads).

Media come inside the request as data: URLs (base64) in image_url / video_url parts (vLLM's convention for
video); they are saved with MediaStore.save_upload, the same checks as an upload. The server never fetches a
URL on a caller's behalf. Errors are OpenAI's error JSON with Russian messages; the status and the retry
advice (x-should-retry, Retry-After: the openai SDK obeys both) follow the error's kind (STATUS below).

A caller that goes away stops the worker's job: the request's disconnect is watched while waiting (Feed), and
closing the job's follow() cancels it. docs/api.md describes the API for its users."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi
from fastapi.responses import JSONResponse, Response, StreamingResponse

from common import contract, fmt
from common.errors import GENERIC_FAILURE, Busy, UserError
from common.schemas import ChatRequest, JobResult, JobStatus, MediaKind, MediaRef, Turn
from common.settings import Settings
from common.storage import SUPPORTED_HINT, MediaStore
from web.jobs import JobClient, Update
from web.metrics import record_rejected
from web.session import client_address

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BODY_FACTOR = 1.4  # base64 is 4/3 of the file, plus the JSON around it
DRAIN_MAX = 16 * MIB  # past the cap, up to this much more is read and dropped so the caller gets the 413
DRAIN_S = 10.0
STREAM_HOLD_S = 15.0  # stream=true: the status line waits this long for the first token (errors keep their status)
KEEPALIVE_S = 15.0  # an SSE comment this often while nothing else is sent
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# Error kind (UserError.code, JobResult.error_code, this module's own) → HTTP status.
STATUS = {
    "bad_request": 400, "bad_media": 400, "invalid_media_url": 400, "remote_url_not_supported": 400,
    "invalid_base64": 400, "unsupported_parameter": 400, "invalid_json": 400, "no_media": 400,
    "invalid_api_key": 401, "not_found": 404, "model_not_found": 404, "method_not_allowed": 405,
    "request_too_large": 413, "file_too_large": 413,
    "busy": 429,
    "internal": 500,
    "queue_unavailable": 503, "no_worker": 503, "model_unavailable": 503,
    "timeout": 504,
}
TYPE = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
        405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
        503: "service_unavailable_error", 504: "timeout_error"}
RETRY_AFTER_S = {"busy": 10, "queue_unavailable": 5}  # worth retrying: the openai SDK waits Retry-After

MIME_EXT = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/pjpeg": ".jpg", "image/webp": ".webp",
    "image/gif": ".gif", "image/bmp": ".bmp", "image/x-bmp": ".bmp", "image/x-ms-bmp": ".bmp",
    "image/tiff": ".tiff", "video/mp4": ".mp4", "video/x-m4v": ".m4v", "video/webm": ".webm",
    "video/quicktime": ".mov", "video/x-matroska": ".mkv", "video/matroska": ".mkv",
}
IGNORED = ("temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty", "frequency_penalty",
           "repetition_penalty", "stop", "logit_bias", "logprobs", "top_logprobs", "response_format", "user",
           "reasoning_effort", "store", "metadata", "service_tier", "parallel_tool_calls")

NO_MEDIA = ("Нужен файл: приложите к сообщению пользователя изображение (image_url) или видео (video_url) как "
            "data:-URL в base64. Модель отвечает на вопросы о файле.")
REMOTE_URL = ("Ссылки на файлы в интернете (http/https) не поддерживаются: сервер не загружает файлы по ссылкам. "
              "Передайте файл в самом запросе как data:-URL в base64, например data:image/jpeg;base64,….")
BAD_URL = "Неверная ссылка на файл: ожидается data:-URL в base64 (data:<тип>;base64,<данные>)."
BAD_BASE64 = "Не удалось декодировать файл: данные в data:-URL — некорректный base64."
BAD_ORDER = ("Неверный порядок сообщений: реплики user и assistant должны чередоваться, начинаться и "
             "заканчиваться сообщением user (сообщения system не учитываются).")
BAD_KEY = ("Неверный или отсутствующий API-ключ: передайте заголовок «Authorization: Bearer <ключ>» "
           "с ключом из настройки API_KEY сервера.")


class ApiError(Exception):
    """An error answered as OpenAI's error JSON: {"error": {"message", "type", "code", "param"}}."""

    def __init__(self, message: str, code: str = "bad_request", param: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param
        self.status = status or STATUS.get(code, 500)

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": TYPE.get(self.status, "server_error"),
                          "code": self.code, "param": self.param}}

    def headers(self) -> dict[str, str]:
        headers = {"x-should-retry": "true" if self.code in RETRY_AFTER_S else "false"}
        if self.code in RETRY_AFTER_S:
            headers["Retry-After"] = str(RETRY_AFTER_S[self.code])
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return headers

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers())

    @classmethod
    def of(cls, exc: UserError, param: str | None = None) -> ApiError:
        return cls(exc.message, exc.code, param)

    @classmethod
    def of_result(cls, result: JobResult) -> ApiError:
        return cls(result.error or GENERIC_FAILURE, result.error_code or "internal")


class ClientGone(Exception):
    """The caller closed the connection."""


# ------------------------------------------------------------------ the request


@dataclass
class Media:
    url: str
    param: str  # where it was, for the error JSON
    mime: str = ""
    ext: str = ""
    kind: MediaKind = MediaKind.image
    start: int = 0  # where the base64 data begins in url


@dataclass
class Parsed:
    question: str
    history: list[Turn]
    media: Media
    max_new_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    ignored: list[str] = field(default_factory=list)


def media_header(url: Any, param: str) -> Media:
    """Check a data: URL's header (cheap: the data is decoded later); http(s) and other schemes are refused."""
    if not isinstance(url, str) or not url:
        raise ApiError(BAD_URL, "invalid_media_url", param)
    head = url[:16].lower()
    if head.startswith(("http://", "https://")):
        raise ApiError(REMOTE_URL, "remote_url_not_supported", param)
    comma = url.find(",", 0, 1024)
    if not head.startswith("data:") or comma < 0:
        raise ApiError(BAD_URL, "invalid_media_url", param)
    parts = [p.strip().lower() for p in url[5:comma].split(";")]
    if "base64" not in parts[1:]:
        raise ApiError(BAD_URL, "invalid_media_url", param)
    mime = parts[0]
    ext = MIME_EXT.get(mime)
    if ext is None:
        shown = f"«{mime}»" if mime else "тип не указан"
        raise ApiError(f"Неподдерживаемый тип файла ({shown}). Поддерживаются {SUPPORTED_HINT}.", "bad_media", param)
    kind = MediaKind.video if mime.startswith("video/") else MediaKind.image
    return Media(url, param, mime, ext, kind, comma + 1)


def _content(content: Any, param: str) -> tuple[str, list[Media]]:
    """A message's text (its text parts joined by newlines) and its media parts."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise ApiError("Содержимое сообщения (content) должно быть строкой или списком частей.", "bad_request", param)
    texts: list[str] = []
    media: list[Media] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ApiError("В части type=text нет строки text.", "bad_request", where)
            texts.append(part["text"])
        elif kind in ("image_url", "video_url"):
            ref = part.get(kind)
            url = ref.get("url") if isinstance(ref, dict) else ref
            media.append(media_header(url, f"{where}.{kind}"))
        else:
            shown = f"«{kind}»" if isinstance(kind, str) else "не указан"
            raise ApiError(f"Неподдерживаемый тип части сообщения ({shown}): допустимы text, image_url и video_url.",
                           "bad_request", where)
    return "\n".join(t for t in texts if t.strip()), media


def _int_param(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(f"Параметр {name} должен быть целым числом не меньше 1.", "bad_request", name)
    return value


def parse(body: Any, settings: Settings) -> Parsed:
    """An OpenAI chat request → the question, the history and the one media item; ApiError (400) if it cannot be."""
    if not isinstance(body, dict):
        raise ApiError("Тело запроса должно быть JSON-объектом.", "invalid_json")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError("Поле messages должно быть непустым списком сообщений.", "bad_request", "messages")
    n = body.get("n")
    if n is not None and n != 1:
        raise ApiError(f"Параметр n = {n} не поддерживается: ответ всегда один (n = 1).", "unsupported_parameter", "n")
    for name in ("tools", "functions"):
        if body.get(name):
            raise ApiError(f"Параметр {name} не поддерживается: модель не вызывает инструменты.",
                           "unsupported_parameter", name)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ApiError("Параметр stream должен быть true или false.", "bad_request", "stream")
    options = body.get("stream_options")
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    max_new = _int_param(body, "max_completion_tokens") or _int_param(body, "max_tokens")

    turns: list[tuple[str, str, list[Media], int]] = []  # role, text, media, index
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ApiError("Каждое сообщение должно быть JSON-объектом с полями role и content.", "bad_request",
                           f"messages[{i}]")
        role = msg.get("role")
        if role in ("system", "developer"):
            continue  # ignored: the prompts are the worker's (see docs/api.md)
        if role not in ("user", "assistant"):
            shown = f"«{role}»" if isinstance(role, str) else "не указана"
            raise ApiError(f"Роль сообщения {shown} не поддерживается: допустимы user, assistant и system.",
                           "bad_request", f"messages[{i}].role")
        text, media = _content(msg.get("content"), f"messages[{i}].content")
        if role == "assistant" and media:
            raise ApiError("Файлы допустимы только в сообщениях user.", "bad_request", f"messages[{i}].content")
        turns.append((role, text, media, i))
    roles = [t[0] for t in turns]
    if not roles or roles[-1] != "user" or any(r != ("user" if k % 2 == 0 else "assistant")
                                               for k, r in enumerate(roles)):
        raise ApiError(BAD_ORDER, "bad_request", "messages")

    found: dict[str, Media] = {}
    for _, _, media, _ in turns:
        for m in media:
            found.setdefault(m.url, m)  # the same file sent again (some clients repeat it) is one file
    if not found:
        raise ApiError(NO_MEDIA, "no_media", "messages")
    if len(found) > 1:
        raise ApiError(f"В диалоге может быть только один файл (изображение или видео), а их {len(found)}. "
                       "Для другого файла начните новый диалог.", "bad_request", "messages")
    the_media = next(iter(found.values()))

    def question(text: str, media: list[Media]) -> str:
        # A message with only the file asks the UI's default question about it.
        return text.strip() or (contract.DEFAULT_QUESTION[the_media.kind] if media else "")

    *earlier, last = turns
    try:
        q = contract.check_question(question(last[1], last[2]), settings.max_question_chars)
    except UserError as exc:
        raise ApiError.of(exc, f"messages[{last[3]}].content") from None
    history = [Turn(question=question(u[1], u[2]), answer=a[1]) for u, a in zip(earlier[::2], earlier[1::2],
                                                                                  strict=True)]
    history = contract.trim_history(history, settings.max_history_turns, settings.max_question_chars)
    ignored = [k for k in IGNORED if k in body]
    return Parsed(q, history, the_media, max_new, bool(stream), include_usage, ignored)


def too_large(size: float, limit: float) -> str:
    return f"Файл слишком большой: {fmt.megabytes(size)} при ограничении {fmt.number(limit / MIB)} МБ."


def save_media(store: MediaStore, media: Media) -> MediaRef:
    """Decode the data: URL into a temporary file, save it like an upload (size and type checks), delete it."""
    data = media.url[media.start:]
    if any(c in data for c in " \n\r\t"):
        data = "".join(data.split())
    estimate = len(data) * 3 // 4 - data[-2:].count("=")
    if estimate > store.max_upload_bytes:
        raise ApiError(too_large(estimate, store.max_upload_bytes), "file_too_large", media.param)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(BAD_BASE64, "invalid_base64", media.param) from None
    # In MEDIA_DIR (writable wherever the web runs; a hidden name, removed by the age cleanup if ever left over).
    uploads = store.media_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".openai-", suffix=media.ext, dir=uploads)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        del raw
        return store.save_upload(Path(tmp), name=f"upload{media.ext}")
    except UserError as exc:
        raise ApiError.of(exc, media.param) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


async def read_body(receive, headers, limit: int) -> bytes:
    """The request body, refused (413) past limit bytes before it is all read: by Content-Length, else counted.
    The rest of a refused body (up to DRAIN_MAX) is read and dropped, so that the caller reads the 413."""
    declared = headers.get("content-length")
    try:
        declared_n = int(declared) if declared is not None else None
    except ValueError:
        raise ApiError("Неверный заголовок Content-Length.", "bad_request") from None
    refused = declared_n is not None and declared_n > limit
    if refused and declared_n > limit + DRAIN_MAX:
        raise ApiError(_body_too_large(limit), "request_too_large")
    buf, total, deadline = bytearray(), 0, time.monotonic() + DRAIN_S
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit and not refused:
            refused, buf = True, bytearray()
        if not refused:
            buf += chunk
        if not message.get("more_body", False):
            break
        if refused and (total > limit + DRAIN_MAX or time.monotonic() > deadline):
            break
    if refused:
        raise ApiError(_body_too_large(limit), "request_too_large")
    return bytes(buf)


def _body_too_large(limit: int) -> str:
    return (f"Запрос слишком большой: больше {fmt.megabytes(limit)}. Файл в запросе не должен превышать "
            f"MAX_UPLOAD_MB ({fmt.number(limit / MIB / BODY_FACTOR)} МБ; в base64 он на треть больше).")


# ------------------------------------------------------------------ following the job


_END = object()


async def _step(updates: AsyncIterator[Update]):
    try:
        return await anext(updates)
    except StopAsyncIteration:
        return _END


async def _disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class Feed:
    """The job's updates (JobClient.afollow), read with a timeout while the request's disconnect is watched.
    close() ends the follow, which stops the worker's job unless it ended: call it whatever happens."""

    def __init__(self, updates: AsyncIterator[Update], receive) -> None:
        self.updates = updates
        self.gone = asyncio.ensure_future(_disconnect(receive))
        self.pending: asyncio.Future | None = None

    async def next(self, timeout: float | None = None) -> Update | None:
        """The next update; None after timeout s; ClientGone when the caller has gone."""
        if self.pending is None:
            self.pending = asyncio.ensure_future(_step(self.updates))
        await asyncio.wait({self.pending, self.gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self.pending.done():
            step, self.pending = self.pending, None
            item = step.result()
            if item is _END:
                raise RuntimeError("the job's follow ended without a result")
            return item
        if self.gone.done():
            raise ClientGone()
        return None

    async def result(self) -> JobResult:
        while True:
            update = await self.next()
            if update is not None and update.result is not None:
                return update.result

    async def close(self) -> None:
        self.gone.cancel()
        if self.pending is not None:
            self.pending.cancel()  # CancelledError inside afollow: its finally cancels the job and releases
            await asyncio.wait({self.pending})
            self.pending = None
        await self.updates.aclose()


class EventStream(StreamingResponse):
    """An SSE response whose body generator is closed whatever happens (the job stops with it)."""

    async def __call__(self, scope, receive, send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the connection broke while writing
            log.info("stream: the client went away")
        finally:
            await self.body_iterator.aclose()


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def finish_reason(result: JobResult) -> str:
    if result.status == JobStatus.cancelled:
        return "abort"  # stopped before its end (vLLM's word); the text so far is kept
    return "length" if result.truncated else "stop"


def usage(result: JobResult) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.generated_tokens,
            "total_tokens": result.prompt_tokens + result.generated_tokens,
            "prompt_tokens_details": {"cached_tokens": result.cached_tokens}}


# ------------------------------------------------------------------ routes


class OpenAIApi:
    def __init__(self, settings: Settings, client: JobClient, store: MediaStore) -> None:
        self.settings, self.client, self.store = settings, client, store
        self.model_id = settings.smolvlm2_model_id
        self.body_limit = int(settings.max_upload_mb * BODY_FACTOR * MIB) + MIB
        self.created = int(time.time())

    def authorize(self, request: fastapi.Request) -> None:
        key = self.settings.api_key
        if not key:
            return  # no API_KEY: open, as the UI is
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ApiError(BAD_KEY, "invalid_api_key")

    def model_card(self) -> dict:
        org, sep, name = self.model_id.partition("/")
        owner = org if sep and name and "/" not in name and not org.startswith(".") and org else "smolvlm2-demo"
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": owner}

    async def models(self, request: fastapi.Request) -> Response:
        try:
            self.authorize(request)
        except ApiError as exc:
            return exc.response()
        return JSONResponse({"object": "list", "data": [self.model_card()]})

    async def model(self, model_id: str, request: fastapi.Request) -> Response:
        try:
            self.authorize(request)
            if model_id != self.model_id:
                raise ApiError(f"Модель «{model_id}» не найдена: здесь отвечает {self.model_id}.",
                               "model_not_found", "model")
        except ApiError as exc:
            return exc.response()
        return JSONResponse(self.model_card())

    async def other(self, path: str, request: fastapi.Request) -> Response:
        """Any other /v1/ path: OpenAI's error JSON instead of Gradio's page."""
        try:
            self.authorize(request)
        except ApiError as exc:
            return exc.response()
        known = {"models": "GET", "chat/completions": "POST"}
        if path in known:
            return ApiError(f"Метод {request.method} не поддерживается для /v1/{path}: используйте {known[path]}.",
                            "method_not_allowed").response()
        return ApiError(f"Нет такого метода API: /v1/{path}. Поддерживаются GET /v1/models и "
                        "POST /v1/chat/completions.", "not_found").response()

    async def prepare(self, request: fastapi.Request) -> tuple[ChatRequest, str, Parsed]:
        """Check, decode and submit: (the queued job, the client, the request's options), or ApiError."""
        self.authorize(request)
        raw = await read_body(request.receive, request.headers, self.body_limit)
        try:
            body = await asyncio.to_thread(json.loads, raw) if len(raw) > MIB else json.loads(raw)
        except ValueError:
            raise ApiError("Тело запроса — некорректный JSON.", "invalid_json") from None
        p = parse(body, self.settings)
        if p.ignored:
            log.debug("ignored parameters: %s", ", ".join(p.ignored))
        ref = await asyncio.to_thread(save_media, self.store, p.media)
        p.media.url = ""  # the request body: not kept while the job runs
        req = ChatRequest(media=ref, history=p.history, question=p.question, max_new_tokens=p.max_new_tokens)
        who = client_address(request, self.settings.trusted_proxy_set)
        try:
            await asyncio.to_thread(self.client.submit, req, who)
        except Busy as exc:
            if not getattr(exc, "counted", False):  # JobClient.submit may count its refusals itself
                await asyncio.to_thread(record_rejected, self.client.redis, req.kind)
            raise
        return req, who, p

    async def chat_completions(self, request: fastapi.Request) -> Response:
        try:
            req, who, p = await self.prepare(request)
        except ClientGone:
            return Response(status_code=499)
        except ApiError as exc:
            log.info("openai: refused (%s): %s", exc.status, exc.message)
            return exc.response()
        except UserError as exc:
            log.info("openai: refused: %s", exc.message)
            return ApiError.of(exc).response()
        except Exception:
            log.exception("openai: request failed")
            return ApiError(GENERIC_FAILURE, "internal").response()
        feed = Feed(self.client.afollow(req, client=who), request.receive)
        created = int(time.time())
        if p.stream:
            return await self.stream(req, p, feed, created)
        try:
            result = await feed.result()
        except ClientGone:
            return Response(status_code=499)  # nobody reads it; closing the feed stopped the job
        except Exception:
            log.exception("openai: job %s: following failed", req.job_id)
            return ApiError(GENERIC_FAILURE, "internal").response()
        finally:
            await feed.close()
        if result.status == JobStatus.error:
            log.info("openai: job %s failed: %s", req.job_id, result.error)
            return ApiError.of_result(result).response()
        return JSONResponse({
            "id": f"chatcmpl-{req.job_id}", "object": "chat.completion", "created": created, "model": self.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer, "refusal": None},
                         "logprobs": None, "finish_reason": finish_reason(result)}],
            "usage": usage(result), "system_fingerprint": None,
        }, headers={"x-request-id": req.job_id})

    async def stream(self, req: ChatRequest, p: Parsed, feed: Feed, created: int) -> Response:
        """Hold the status line until the first token, the end, or STREAM_HOLD_S: an error before any text
        keeps its HTTP status; later ones travel in the stream."""
        first: Update | None = None
        hold_until = time.monotonic() + STREAM_HOLD_S
        try:
            while first is None and (left := hold_until - time.monotonic()) > 0:
                update = await feed.next(timeout=left)
                if update is not None and (update.result is not None or update.text):
                    first = update
        except ClientGone:
            await feed.close()
            return Response(status_code=499)
        except Exception:
            await feed.close()
            log.exception("openai: job %s: following failed", req.job_id)
            return ApiError(GENERIC_FAILURE, "internal").response()
        if first is not None and first.result is not None and first.result.status == JobStatus.error:
            await feed.close()
            log.info("openai: job %s failed: %s", req.job_id, first.result.error)
            return ApiError.of_result(first.result).response()
        return EventStream(self.chunks(req, p, feed, created, first), media_type="text/event-stream",
                           headers={**SSE_HEADERS, "x-request-id": req.job_id})

    async def chunks(self, req: ChatRequest, p: Parsed, feed: Feed, created: int,
                     update: Update | None) -> AsyncIterator[bytes]:
        base = {"id": f"chatcmpl-{req.job_id}", "object": "chat.completion.chunk", "created": created,
                "model": self.model_id, "system_fingerprint": None}

        def chunk(delta: dict, reason: str | None = None) -> bytes:
            return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]})

        sent = ""
        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                if update is None:
                    update = await feed.next(timeout=KEEPALIVE_S)
                    if update is None:
                        yield b": keep-alive\n\n"
                        continue
                result = update.result
                if result is not None and result.status == JobStatus.error:
                    log.info("openai: job %s failed mid-stream: %s", req.job_id, result.error)
                    yield _sse(ApiError.of_result(result).body())
                    break
                # Stripped like the final answer (clean_answer): a space at either end waits for what follows
                # it. The final clean-up can only shorten the text (a collapsed loop): nothing is taken back.
                text = (result.answer if result is not None else update.text).strip()
                if len(text) > len(sent) and text.startswith(sent):
                    yield chunk({"content": text[len(sent):]})
                    sent = text
                if result is not None:
                    yield chunk({}, finish_reason(result))
                    if p.include_usage:
                        yield _sse({**base, "choices": [], "usage": usage(result)})
                    break
                update = None
            yield _sse("[DONE]")
        except ClientGone:
            return
        except Exception:
            log.exception("openai: job %s: stream failed", req.job_id)
            yield _sse(ApiError(GENERIC_FAILURE, "internal").body())
            yield _sse("[DONE]")
        finally:
            await feed.close()


def router(settings: Settings, client: JobClient, store: MediaStore) -> fastapi.APIRouter:
    api = OpenAIApi(settings, client, store)
    r = fastapi.APIRouter()
    r.add_api_route("/v1/models", api.models, methods=["GET"], include_in_schema=False)
    r.add_api_route("/v1/models/{model_id:path}", api.model, methods=["GET"], include_in_schema=False)
    r.add_api_route("/v1/chat/completions", api.chat_completions, methods=["POST"], include_in_schema=False)
    r.add_api_route("/v1/{path:path}", api.other, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                    include_in_schema=False)
    return r

