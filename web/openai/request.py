"""A request to the OpenAI-compatible API (web.openai.routes), checked and decoded: the API key, the body (refused
past its cap before it is all read), the messages (→ the question, the history and the one media item: the chat
kind's rules, web.queue.kinds) and the data: URL (→ a file saved like an upload, the same checks). The server
never fetches a URL on a caller's behalf. Every refusal is an ApiError (web.openai.response)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi

from common import fmt
from common.errors import ErrorCode, UserError
from common.schemas import MediaKind, MediaRef, Turn
from common.settings import Settings
from common.store import SUPPORTED_HINT, MediaStore, too_large
from web.http import asgi
from web.openai.response import ApiCode, ApiError
from web.queue.kinds import CHAT

MIB = 1024 * 1024
BODY_FACTOR = 1.4  # base64 is 4/3 of the file, plus the JSON around it
DRAIN_MAX = 16 * MIB  # past the cap, up to this much more is read and dropped so the caller gets the 413
DRAIN_S = 10.0
MAX_MESSAGES = 1000  # messages in one request: far beyond MAX_HISTORY_TURNS, which is all the model sees

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


@dataclass
class Media:
    url: str
    param: str  # where it was, for the error JSON
    mime: str = ""
    ext: str = ""
    kind: MediaKind = MediaKind.image
    start: int = 0  # where the base64 data begins in url

    @property
    def size(self) -> int:
        """The file's size, from its base64 length (before decoding it)."""
        return (len(self.url) - self.start) * 3 // 4


@dataclass
class Parsed:
    question: str
    history: list[Turn]
    media: Media
    max_new_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    ignored: list[str] = field(default_factory=list)
    answer_language: str | None = None  # "ru" / "en": overrides ANSWER_LANGUAGE (docs/translation.md)


def media_header(url: Any, param: str) -> Media:
    """Check a data: URL's header (cheap: the data is decoded later); http(s) and other schemes are refused."""
    if not isinstance(url, str) or not url:
        raise ApiError(BAD_URL, ApiCode.invalid_media_url, param)
    head = url[:16].lower()
    if head.startswith(("http://", "https://")):
        raise ApiError(REMOTE_URL, ApiCode.remote_url_not_supported, param)
    comma = url.find(",", 0, 1024)
    if not head.startswith("data:") or comma < 0:
        raise ApiError(BAD_URL, ApiCode.invalid_media_url, param)
    parts = [p.strip().lower() for p in url[5:comma].split(";")]
    if "base64" not in parts[1:]:
        raise ApiError(BAD_URL, ApiCode.invalid_media_url, param)
    mime = parts[0]
    ext = MIME_EXT.get(mime)
    if ext is None:
        shown = f"«{mime}»" if mime else "тип не указан"
        raise ApiError(f"Неподдерживаемый тип файла ({shown}). Поддерживаются {SUPPORTED_HINT}.", ErrorCode.bad_media,
                       param)
    kind = MediaKind.video if mime.startswith("video/") else MediaKind.image
    return Media(url, param, mime, ext, kind, comma + 1)


def _content(content: Any, param: str) -> tuple[str, list[Media]]:
    """A message's text (its text parts joined by newlines) and its media parts."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise ApiError("Содержимое сообщения (content) должно быть строкой или списком частей.", ErrorCode.bad_request,
                       param)
    texts: list[str] = []
    media: list[Media] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ApiError("В части type=text нет строки text.", ErrorCode.bad_request, where)
            texts.append(part["text"])
        elif kind in ("image_url", "video_url"):
            ref = part.get(kind)
            url = ref.get("url") if isinstance(ref, dict) else ref
            media.append(media_header(url, f"{where}.{kind}"))
        else:
            shown = f"«{kind}»" if isinstance(kind, str) else "не указан"
            raise ApiError(f"Неподдерживаемый тип части сообщения ({shown}): допустимы text, image_url и video_url.",
                           ErrorCode.bad_request, where)
    return "\n".join(t for t in texts if t.strip()), media


def _int_param(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(f"Параметр {name} должен быть целым числом не меньше 1.", ErrorCode.bad_request, name)
    return value


def parse(body: Any, settings: Settings) -> Parsed:
    """An OpenAI chat request → the question, the history and the one media item; ApiError (400) if it cannot be."""
    if not isinstance(body, dict):
        raise ApiError("Тело запроса должно быть JSON-объектом.", ApiCode.invalid_json)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError("Поле messages должно быть непустым списком сообщений.", ErrorCode.bad_request, "messages")
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):  # true == 1 in Python, not in the API
        raise ApiError(f"Параметр n = {n} не поддерживается: ответ всегда один (n = 1).",
                       ApiCode.unsupported_parameter, "n")
    for name in ("tools", "functions"):
        if body.get(name):
            raise ApiError(f"Параметр {name} не поддерживается: модель не вызывает инструменты.",
                           ApiCode.unsupported_parameter, name)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ApiError("Параметр stream должен быть true или false.", ErrorCode.bad_request, "stream")
    options = body.get("stream_options")
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    max_new = _int_param(body, "max_completion_tokens") or _int_param(body, "max_tokens")
    language = body.get("answer_language")
    if language is not None and language not in ("ru", "en"):
        raise ApiError("Параметр answer_language должен быть \"ru\" (ответ по-русски) или \"en\" (по-английски, "
                       "как пишет модель).", ErrorCode.bad_request, "answer_language")

    turns: list[tuple[str, str, list[Media], int]] = []  # role, text, media, index
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ApiError("Каждое сообщение должно быть JSON-объектом с полями role и content.", ErrorCode.bad_request,
                           f"messages[{i}]")
        role = msg.get("role")
        if role in ("system", "developer"):
            continue  # ignored: the prompts are the worker's (see docs/api.md)
        if role not in ("user", "assistant"):
            shown = f"«{role}»" if isinstance(role, str) else "не указана"
            raise ApiError(f"Роль сообщения {shown} не поддерживается: допустимы user, assistant и system.",
                           ErrorCode.bad_request, f"messages[{i}].role")
        text, media = _content(msg.get("content"), f"messages[{i}].content")
        if role == "assistant" and media:
            raise ApiError("Файлы допустимы только в сообщениях user.", ErrorCode.bad_request, f"messages[{i}].content")
        turns.append((role, text, media, i))
    roles = [t[0] for t in turns]
    if not roles or roles[-1] != "user" or any(r != ("user" if k % 2 == 0 else "assistant")
                                               for k, r in enumerate(roles)):
        raise ApiError(BAD_ORDER, ErrorCode.bad_request, "messages")

    found: dict[str, Media] = {}
    for _, _, media, _ in turns:
        for m in media:
            found.setdefault(m.url, m)  # the same file sent again (some clients repeat it) is one file
    if not found:
        raise ApiError(NO_MEDIA, ApiCode.no_media, "messages")
    if len(found) > 1:
        raise ApiError(f"В диалоге может быть только один файл (изображение или видео), а их {len(found)}. "
                       "Для другого файла начните новый диалог.", ErrorCode.bad_request, "messages")
    the_media = next(iter(found.values()))

    def question(text: str, media: list[Media]) -> str:
        # A message with only the file asks the UI's default question about it.
        return text.strip() or (CHAT.default_question(the_media.kind) if media else "")

    *earlier, last = turns
    try:
        q = CHAT.question(settings, question(last[1], last[2]))
    except UserError as exc:
        raise ApiError.of(exc, f"messages[{last[3]}].content") from None
    history = CHAT.history(settings, [Turn(question=question(u[1], u[2]), answer=a[1])
                                      for u, a in zip(earlier[::2], earlier[1::2], strict=True)])
    ignored = [k for k in IGNORED if k in body]
    return Parsed(q, history, the_media, max_new, bool(stream), include_usage, ignored, language)


def save_media(store: MediaStore, media: Media) -> MediaRef:
    """Decode the data: URL into a temporary file, save it like an upload (size and type checks), delete it."""
    data = media.url[media.start:]
    if any(c in data for c in " \n\r\t"):
        data = "".join(data.split())
    estimate = len(data) * 3 // 4 - data[-2:].count("=")
    if estimate > store.max_upload_bytes:
        raise ApiError(too_large(store.max_upload_bytes, estimate), ApiCode.file_too_large, media.param)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(BAD_BASE64, ApiCode.invalid_base64, media.param) from None
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
    The rest of a refused body (up to DRAIN_MAX, for DRAIN_S) is read and dropped, so that the caller reads the
    413."""
    declared = headers.get("content-length")
    try:
        declared_n = int(declared) if declared is not None else None
    except ValueError:
        raise ApiError("Неверный заголовок Content-Length.", ErrorCode.bad_request) from None
    try:
        return await asgi.read_body(receive, limit, declared=declared_n, drain_max=DRAIN_MAX, drain_s=DRAIN_S)
    except asgi.BodyTooLarge:
        raise ApiError(_body_too_large(limit), ApiCode.request_too_large) from None


def _body_too_large(limit: int) -> str:
    return (f"Запрос слишком большой: больше {fmt.megabytes(limit)}. Файл в запросе не должен превышать "
            f"MAX_UPLOAD_MB ({fmt.number(limit / MIB / BODY_FACTOR)} МБ; в base64 он на треть больше).")


def body_limit(settings: Settings) -> int:
    """The largest request body: a file of MAX_UPLOAD_MB in base64, the JSON around it."""
    return int(settings.max_upload_mb * BODY_FACTOR * MIB) + MIB


def too_many_messages(found: int) -> str:
    return (f"Слишком много сообщений в запросе: {found} (не больше {MAX_MESSAGES}). Модель видит лишь последние "
            "реплики диалога: передавайте только их.")


async def read_json(request: fastapi.Request, limit: int) -> Any:
    """The body as JSON. Counted before it is parsed: a history of a million messages is refused by a scan of its
    bytes, not after building a million objects (which stalled every other request of the web for seconds)."""
    raw = await read_body(request.receive, request.headers, limit)
    found = raw.count(b'"role"')
    if found > MAX_MESSAGES:
        raise ApiError(too_many_messages(found), ApiCode.too_many_messages, "messages")
    try:
        return await asyncio.to_thread(json.loads, raw) if len(raw) > MIB else json.loads(raw)
    except RecursionError:
        raise ApiError("Тело запроса — JSON со слишком глубокой вложенностью.", ApiCode.invalid_json) from None
    except ValueError:
        raise ApiError("Тело запроса — некорректный JSON.", ApiCode.invalid_json) from None


def authorize(request: fastapi.Request, key: str | None) -> None:
    """ApiError (401) unless the request carries API_KEY as its bearer token."""
    if not key:
        return  # no API_KEY: open, as the UI is
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(BAD_KEY, ApiCode.invalid_api_key)
