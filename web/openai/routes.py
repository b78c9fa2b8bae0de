"""The OpenAI-compatible API on the web's own port: GET /v1/models, POST /v1/chat/completions (plain and
stream=true). Same admission, queue and workers as the UI: a request becomes one ChatRequest, submitted with
JobClient.submit and followed with JobClient.afollow (the per-job event stream the UI reads).

Media come inside the request as data: URLs (base64) in image_url / video_url parts (vLLM's convention for
video); they are saved with MediaStore.save_upload, the same checks as an upload (web.openai.request). Errors
are OpenAI's error JSON with Russian messages; the status and the retry advice (x-should-retry, Retry-After:
the openai SDK obeys both) follow the error's kind (web.openai.response.STATUS). The API key is checked once, by
a dependency of every /v1 route (authorized).

A caller that goes away stops the worker's job: the request's disconnect is watched while waiting (Feed), and
closing the job's follow() cancels it. docs/api.md describes the API for its users."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import fastapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from common.errors import GENERIC_FAILURE, ErrorCode, QueueUnavailable, UserError
from common.schemas import ChatRequest, JobStatus
from common.settings import Settings
from common.store import MediaStore
from web.http.asgi import ClientGone
from web.http.client import person
from web.http.upload_guard import RateWindow, too_fast
from web.openai.request import Parsed, authorize, body_limit, parse, read_json, save_media
from web.openai.response import SSE_HEADERS, ApiCode, ApiError, EventStream, Feed, _sse, completion, events
from web.queue.client import JobClient
from web.queue.kinds import CHAT
from web.queue.tracker import Update

log = logging.getLogger(__name__)

OUTAGE_RETRY_S = 1.0
RECONNECTING = "Нет связи с очередью, переподключение…"
STREAM_HOLD_S = 15.0  # stream=true: the status line waits this long for the first token (errors keep their status)


@dataclass
class Outage(Exception):
    """A streaming call whose job could not be submitted yet: Redis is away (see OpenAIApi.outage_stream)."""

    req: ChatRequest
    who: str
    p: Parsed
    give_up: float


class OpenAIApi:
    def __init__(self, settings: Settings, client: JobClient, store: MediaStore,
                 window: RateWindow | None = None) -> None:
        self.settings, self.client, self.store, self.window = settings, client, store, window
        self.model_id = settings.smolvlm2_model_id
        self.body_limit = body_limit(settings)
        self.created = int(time.time())

    def authorized(self, request: fastapi.Request) -> None:
        """The dependency of every /v1 route: ApiError (401) without the API key."""
        if not request.scope.get("state", {}).get("authenticated"):  # a user (login) or API_KEY, seen at the doors
            authorize(request, self.settings.api_key)

    def model_card(self) -> dict:
        org, sep, name = self.model_id.partition("/")
        owner = org if sep and name and "/" not in name and not org.startswith(".") and org else "smolvlm2-demo"
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": owner}

    async def models(self) -> Response:
        return JSONResponse({"object": "list", "data": [self.model_card()]})

    async def model(self, model_id: str) -> Response:
        if model_id != self.model_id:
            raise ApiError(f"Модель «{model_id}» не найдена: здесь отвечает {self.model_id}.",
                           ApiCode.model_not_found, "model")
        return JSONResponse(self.model_card())

    async def other(self, path: str, request: fastapi.Request) -> Response:
        """Any other /v1/ path: OpenAI's error JSON instead of Gradio's page."""
        known = {"models": "GET", "chat/completions": "POST"}
        if path in known:
            raise ApiError(f"Метод {request.method} не поддерживается для /v1/{path}: используйте {known[path]}.",
                           ApiCode.method_not_allowed)
        raise ApiError(f"Нет такого метода API: /v1/{path}. Поддерживаются GET /v1/models и "
                       "POST /v1/chat/completions.", ApiCode.not_found)

    async def prepare(self, request: fastapi.Request) -> tuple[ChatRequest, str, Parsed]:
        """Check, decode and submit: (the queued job, the client, the request's options), or ApiError. The file is
        stored only once the caller may submit (the queue, its jobs, its upload budget): a refused caller leaves
        nothing in MEDIA_DIR."""
        body = await read_json(request, self.body_limit)
        # Python-level work on a large request goes to a thread: the event loop keeps serving meanwhile.
        p = await asyncio.to_thread(parse, body, self.settings)
        if p.ignored:
            log.debug("ignored parameters: %s", ", ".join(p.ignored))
        who = person(request, self.settings.trusted_proxy_set)
        give_up = time.monotonic() + self.settings.redis_outage_grace_s
        # Redis away: a plain call waits through the outage grace as the UI does; a streaming one goes on at once
        # and waits in its stream (outage_stream), where SSE comments keep the connection alive.
        await self.through_outage(lambda: self.client.admissible(CHAT.kind, who), give_up, not p.stream)
        if self.window is not None and (wait := self.window.take(who, p.media.size)):
            raise ApiError(too_fast(self.window.limit, wait), ErrorCode.busy)
        ref = await asyncio.to_thread(save_media, self.store, p.media)
        p.media.url = ""  # the request body: not kept while the job runs
        history = await asyncio.to_thread(self.client.originals, p.history)  # the model's own turns where known
        req = CHAT.request(self.settings, ref, p.question, history, max_new_tokens=p.max_new_tokens,
                           answer_language=p.answer_language)
        if not await self.through_outage(lambda: self.client.submit(req, who), give_up, not p.stream):
            raise Outage(req, who, p, give_up)
        return req, who, p

    @staticmethod
    async def through_outage(call, give_up: float, wait: bool) -> bool:
        """call() in a thread; while Redis is away, again every OUTAGE_RETRY_S until give_up (then
        QueueUnavailable). wait False: one try, False if Redis was away."""
        while True:
            try:
                await asyncio.to_thread(call)
                return True
            except QueueUnavailable:
                if not wait:
                    return False
                if time.monotonic() > give_up:
                    raise
                await asyncio.sleep(OUTAGE_RETRY_S)

    async def outage_stream(self, o: Outage, request: fastapi.Request, created: int):
        """A streaming call that met a Redis outage: SSE comments while submitting is retried (the connection stays
        alive, the caller sees why), then the job's stream as usual; past the outage grace an error event."""
        while True:
            yield f": {RECONNECTING}\n\n".encode()
            try:
                await asyncio.to_thread(self.client.submit, o.req, o.who)
                break
            except QueueUnavailable as exc:
                if time.monotonic() > o.give_up:
                    log.info("openai: job %s: Redis away past the outage grace", o.req.job_id)
                    yield _sse(ApiError.of(exc).body())
                    yield _sse("[DONE]")
                    return
                await asyncio.sleep(OUTAGE_RETRY_S)
            except UserError as exc:
                yield _sse(ApiError.of(exc).body())
                yield _sse("[DONE]")
                return
        feed = Feed(self.follow(o.req, o.who), request.receive)
        async for chunk in events(feed, o.req.job_id, self.model_id, created, None, o.p.include_usage):
            yield chunk

    async def follow(self, req: ChatRequest, who: str):
        """The job's updates; a file the worker refused for what it is (unreadable, too large) is deleted at once."""
        async for update in self.client.afollow(req, client=who):
            if update.result is not None and update.result.error_code == ErrorCode.bad_media:
                await asyncio.to_thread(self.store.remove, req.media)
            yield update

    async def chat_completions(self, request: fastapi.Request) -> Response:
        try:
            req, who, p = await self.prepare(request)
        except Outage as outage:
            body = self.outage_stream(outage, request, int(time.time()))
            return EventStream(body, media_type="text/event-stream", headers={**SSE_HEADERS,
                                                                              "x-request-id": outage.req.job_id})
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
            return ApiError(GENERIC_FAILURE, ErrorCode.internal).response()
        feed = Feed(self.follow(req, who), request.receive)
        created = int(time.time())
        if p.stream:
            return await self.stream(req, p, feed, created)
        try:
            result = await feed.result()
        except ClientGone:
            return Response(status_code=499)  # nobody reads it; closing the feed stopped the job
        except Exception:
            log.exception("openai: job %s: following failed", req.job_id)
            return ApiError(GENERIC_FAILURE, ErrorCode.internal).response()
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
            return ApiError(GENERIC_FAILURE, ErrorCode.internal).response()
        if first is not None and first.result is not None and first.result.status == JobStatus.error:
            await feed.close()
            log.info("openai: job %s failed: %s", req.job_id, first.result.error)
            return ApiError.of_result(first.result).response()
        chunks = events(feed, req.job_id, self.model_id, created, first, p.include_usage)
        return EventStream(chunks, media_type="text/event-stream", headers={**SSE_HEADERS, "x-request-id": req.job_id})


class ApiRoute(APIRoute):
    """A /v1 route whose ApiError, raised by the route or by its dependency (the API key), is answered as OpenAI's
    error JSON."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def answer(request: fastapi.Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()

        return answer


def router(settings: Settings, client: JobClient, store: MediaStore,
           window: RateWindow | None = None) -> fastapi.APIRouter:
    api = OpenAIApi(settings, client, store, window)
    r = fastapi.APIRouter(route_class=ApiRoute, dependencies=[fastapi.Depends(api.authorized)])
    r.add_api_route("/v1/models", api.models, methods=["GET"], include_in_schema=False)
    r.add_api_route("/v1/models/{model_id:path}", api.model, methods=["GET"], include_in_schema=False)
    r.add_api_route("/v1/chat/completions", api.chat_completions, methods=["POST"], include_in_schema=False)
    r.add_api_route("/v1/{path:path}", api.other, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                    include_in_schema=False)
    return r
