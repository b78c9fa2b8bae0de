"""The OpenAI-compatible API on the web's own port: GET /v1/models, POST /v1/chat/completions (plain and
stream=true). Same admission, queue and workers as the UI: a request becomes one ChatRequest, submitted with
JobClient.submit and followed with JobClient.afollow (the per-job event stream the UI reads).

Media come inside the request as data: URLs (base64) in image_url / video_url parts (vLLM's convention for
video); they are saved with MediaStore.save_upload, the same checks as an upload (web.openai_request). Errors
are OpenAI's error JSON with Russian messages; the status and the retry advice (x-should-retry, Retry-After:
the openai SDK obeys both) follow the error's kind (web.openai_response.STATUS).

A caller that goes away stops the worker's job: the request's disconnect is watched while waiting (Feed), and
closing the job's follow() cancels it. docs/api.md describes the API for its users."""

from __future__ import annotations

import asyncio
import logging
import time

import fastapi
from fastapi.responses import JSONResponse, Response

from common.errors import GENERIC_FAILURE, Busy, UserError
from common.schemas import ChatRequest, JobStatus
from common.settings import Settings
from common.storage import MediaStore
from web.jobs import JobClient
from web.metrics import record_rejected
from web.openai_request import Parsed, authorize, body_limit, parse, read_json, save_media
from web.openai_response import SSE_HEADERS, ApiError, ClientGone, EventStream, Feed, completion, events
from web.session import client_address
from web.tracker import Update

log = logging.getLogger(__name__)

STREAM_HOLD_S = 15.0  # stream=true: the status line waits this long for the first token (errors keep their status)


class OpenAIApi:
    def __init__(self, settings: Settings, client: JobClient, store: MediaStore) -> None:
        self.settings, self.client, self.store = settings, client, store
        self.model_id = settings.smolvlm2_model_id
        self.body_limit = body_limit(settings)
        self.created = int(time.time())

    def authorize(self, request: fastapi.Request) -> None:
        authorize(request, self.settings.api_key)

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
        p = parse(await read_json(request, self.body_limit), self.settings)
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
        return JSONResponse(completion(req.job_id, self.model_id, created, result),
                            headers={"x-request-id": req.job_id})

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
        chunks = events(feed, req.job_id, self.model_id, created, first, p.include_usage)
        return EventStream(chunks, media_type="text/event-stream", headers={**SSE_HEADERS, "x-request-id": req.job_id})


def router(settings: Settings, client: JobClient, store: MediaStore) -> fastapi.APIRouter:
    api = OpenAIApi(settings, client, store)
    r = fastapi.APIRouter()
    r.add_api_route("/v1/models", api.models, methods=["GET"], include_in_schema=False)
    r.add_api_route("/v1/models/{model_id:path}", api.model, methods=["GET"], include_in_schema=False)
    r.add_api_route("/v1/chat/completions", api.chat_completions, methods=["POST"], include_in_schema=False)
    r.add_api_route("/v1/{path:path}", api.other, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                    include_in_schema=False)
    return r

