"""The answers of the OpenAI-compatible API (web.openai.routes): OpenAI's error JSON with its status and retry advice
(STATUS below), the completion, and the stream. The job's updates are read while the caller's disconnect is
watched (Feed); closing the feed stops the worker's job. A stream goes out as SSE chunks (events) in a response
that closes them whatever happens (EventStream)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from enum import StrEnum

from fastapi.responses import JSONResponse, StreamingResponse

from common.errors import GENERIC_FAILURE, ErrorCode, UserError
from common.schemas import JobResult, JobStatus
from web.http.asgi import ClientGone
from web.queue.tracker import Update

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0  # an SSE comment this often while nothing else is sent
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}



class ApiCode(StrEnum):
    """The API's own refusals, beside the jobs' own kinds of error (common.errors.ErrorCode)."""

    invalid_json = "invalid_json"
    invalid_media_url = "invalid_media_url"
    remote_url_not_supported = "remote_url_not_supported"
    invalid_base64 = "invalid_base64"
    unsupported_parameter = "unsupported_parameter"
    no_media = "no_media"
    invalid_api_key = "invalid_api_key"
    not_found = "not_found"
    model_not_found = "model_not_found"
    method_not_allowed = "method_not_allowed"
    request_too_large = "request_too_large"
    too_many_messages = "too_many_messages"
    file_too_large = "file_too_large"


Code = ErrorCode | ApiCode

# Every error code → its HTTP status (a test checks that none is missing).
STATUS: dict[Code, int] = {
    ErrorCode.bad_request: 400, ErrorCode.bad_media: 400, ApiCode.invalid_media_url: 400,
    ApiCode.remote_url_not_supported: 400, ApiCode.invalid_base64: 400, ApiCode.unsupported_parameter: 400,
    ApiCode.invalid_json: 400, ApiCode.no_media: 400,
    ApiCode.invalid_api_key: 401, ApiCode.not_found: 404, ApiCode.model_not_found: 404,
    ApiCode.method_not_allowed: 405,
    ApiCode.request_too_large: 413, ApiCode.file_too_large: 413, ApiCode.too_many_messages: 413,
    ErrorCode.busy: 429,
    ErrorCode.internal: 500,
    ErrorCode.queue_unavailable: 503, ErrorCode.no_worker: 503, ErrorCode.model_unavailable: 503,
    ErrorCode.timeout: 504,
    ErrorCode.store_unavailable: 503, ErrorCode.store_denied: 500,
}
TYPE = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
        405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
        503: "service_unavailable_error", 504: "timeout_error"}
# Worth retrying: the SDK waits Retry-After.
RETRY_AFTER_S = {ErrorCode.busy: 10, ErrorCode.queue_unavailable: 5, ErrorCode.store_unavailable: 10}


class ApiError(Exception):
    """An error answered as OpenAI's error JSON: {"error": {"message", "type", "code", "param"}}."""

    def __init__(self, message: str, code: Code = ErrorCode.bad_request, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param
        self.status = STATUS[code]

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
        return cls(result.error or GENERIC_FAILURE, result.error_code or ErrorCode.internal)


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



def translation(result: JobResult) -> dict:
    """Extra message fields of a translated answer (docs/translation.md): the model's own English, and why an
    answer is not translated. Standard clients ignore them; content is what the user reads."""
    extra: dict = {}
    if result.answer_en is not None:
        extra.update(original_content=result.answer_en, original_language="en")
    if result.translation_note:
        extra["translation_note"] = result.translation_note
    return extra


def completion(job_id: str, model: str, created: int, result: JobResult) -> dict:
    """The answer to a request without stream: one choice, the usage."""
    message = {"role": "assistant", "content": result.answer, "refusal": None, **translation(result)}
    return {
        "id": f"chatcmpl-{job_id}", "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(result)}],
        "usage": usage(result), "system_fingerprint": None,
    }


async def events(feed: Feed, job_id: str, model: str, created: int, update: Update | None,
                 include_usage: bool) -> AsyncIterator[bytes]:
    """The stream's SSE chunks from update (the first, already read) on; the feed is closed at the end."""
    base = {"id": f"chatcmpl-{job_id}", "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": None}

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
                log.info("openai: job %s failed mid-stream: %s", job_id, result.error)
                yield _sse(ApiError.of_result(result).body())
                break
            # Stripped like the final answer (clean_answer): a space at either end waits for what follows
            # it. The final clean-up can only shorten the text (a collapsed loop): nothing is taken back. Of a
            # translated answer only the sentences done are sent: the English still being written is replaced.
            if result is not None:
                text = result.answer.strip()
            else:
                text = (update.text if update.stable is None else update.text[: update.stable]).strip()
            if len(text) > len(sent) and text.startswith(sent):
                yield chunk({"content": text[len(sent):]})
                sent = text
            if result is not None:
                yield chunk(translation(result), finish_reason(result))
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": usage(result)})
                break
            update = None
        yield _sse("[DONE]")
    except ClientGone:
        return
    except Exception:
        log.exception("openai: job %s: stream failed", job_id)
        yield _sse(ApiError(GENERIC_FAILURE, ErrorCode.internal).body())
        yield _sse("[DONE]")
    finally:
        await feed.close()
