"""A job's artefacts (its video frames, its OCR text file) and an upload are served only to the person they belong
to (web.http.client.person: the user, the browser, the address). Ownership is kept by artefact id in Redis (a job's
frames: the job id; a result file: its folder), not by where the bytes live, so a store elsewhere (S3) keeps the
same rule. A /v1 job registers no owner: its frames are never served (its caller never receives them). Uploads are
owned by whoever sent them (web.http.uploads, in this process's memory); examples and other files Gradio caches
itself have no owner and stay public, as the page shows them to everyone."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote

import anyio

from common import events, keys
from web.http import uploads
from web.http.asgi import refused, respond

log = logging.getLogger(__name__)

FILE_ROUTE = "/gradio_api/file="
NOT_YOURS = "Нет такого файла."


def _key(artefact: str) -> str:
    return f"{keys.PREFIX}:artefact:{artefact}"


def artefact_of(path: Path, results_dir: Path) -> str | None:
    """The artefact a file under RESULTS_DIR belongs to: frames/<job id>/… → the job id; <folder>/… → the folder."""
    try:
        parts = path.relative_to(results_dir).parts
    except ValueError:
        return None
    if len(parts) >= 3 and parts[0] == "frames":
        return parts[1]
    return parts[0] if len(parts) >= 2 else None


class Owners:
    def __init__(self, redis, ttl_s: float) -> None:
        self.redis, self.ttl_s = redis, max(60, int(ttl_s))

    def set(self, artefact: str, person: str) -> None:
        try:
            self.redis.set(_key(artefact), person, ex=self.ttl_s)
        except events.REDIS_ERRORS:
            log.warning("artefact %s: owner not recorded (Redis unavailable): it will not be served", artefact)

    def get(self, artefact: str) -> str | None:
        raw = self.redis.get(_key(artefact))
        return raw.decode() if isinstance(raw, bytes) else raw


class ArtefactGuard:
    """ASGI middleware on GET/HEAD /gradio_api/file=…: a result file or an upload that is not the caller's → 404."""

    def __init__(self, app, owners: Owners, results_dir: Path) -> None:
        self.app, self.owners, self.results_dir = app, owners, Path(results_dir).resolve()

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(FILE_ROUTE) or await self.allowed(scope, path):
            await self.app(scope, receive, send)
            return
        who = scope.get("state", {}).get("person", "-")
        refused("artefact", who, "file of another person (%s) asked by %s", path[len(FILE_ROUTE):][-60:], who)
        await respond(send, 404, NOT_YOURS)

    async def allowed(self, scope, path: str) -> bool:
        who = scope.get("state", {}).get("person")
        target = Path(unquote(path[len(FILE_ROUTE):]))
        try:
            target = target.resolve()
        except (OSError, RuntimeError):
            return True  # Gradio refuses it itself
        artefact = artefact_of(target, self.results_dir)
        if artefact is not None:
            try:
                owner = await anyio.to_thread.run_sync(self.owners.get, artefact)
            except events.REDIS_ERRORS:
                return False
            return owner is not None and owner == who
        owner = uploads.owner(target)
        return owner is None or owner == who
