"""The typed queue boundary: one request model per job kind and one result model, JSON only.

Media travel as references (paths relative to MEDIA_DIR), never as bytes."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, field_validator, model_validator

from common.errors import ErrorCode


class MediaKind(StrEnum):
    image = "image"
    video = "video"


class JobStatus(StrEnum):
    """How a job ended."""

    ok = "ok"
    error = "error"
    cancelled = "cancelled"  # stopped by the user (the partial answer is kept)


class JobKind(StrEnum):
    chat = "chat"
    ocr = "ocr"
    region = "region"


class JobState(StrEnum):
    """Where a job is, as the web follows it."""

    queued = "queued"
    running = "running"
    done = "done"


class EventType(StrEnum):
    """Entries of a job's event stream (common.events)."""

    started = "started"
    partial = "partial"
    done = "done"


class WorkerState(StrEnum):
    """What a worker's heartbeat says."""

    loading = "loading"
    ready = "ready"
    busy = "busy"
    error = "error"


class MediaRef(BaseModel):
    """A file inside MEDIA_DIR, named by its relative path."""

    path: str = Field(min_length=1, max_length=512)
    kind: MediaKind

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        # The full check (symlinks included) is common.store.MediaStore.resolve.
        if v.startswith(("/", "\\")) or ".." in v.replace("\\", "/").split("/") or "\x00" in v:
            raise ValueError("media path must be relative to MEDIA_DIR")
        return v


class Turn(BaseModel):
    question: str
    answer: str
    # True: exactly what the model saw and wrote (its English, when answers are translated): never translated again.
    # False (an API caller's history as shown to it): a turn with Cyrillic is translated ru→en for the model.
    original: bool = False


class Box(BaseModel):
    x1: int = Field(ge=0)
    y1: int = Field(ge=0)
    x2: int = Field(ge=0)
    y2: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if self.x1 >= self.x2 or self.y1 >= self.y2:
            raise ValueError("box must have x1 < x2 and y1 < y2")
        return self

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x1, self.y1, self.x2, self.y2)


def new_job_id() -> str:
    return uuid.uuid4().hex


class _Request(BaseModel):
    job_id: str = Field(default_factory=new_job_id, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    queued_at: float = Field(default_factory=time.time)
    max_new_tokens: int | None = Field(default=None, ge=1)
    answer_language: Literal["ru", "en"] | None = None  # None: the worker's ANSWER_LANGUAGE (OCR is never translated)


class ChatRequest(_Request):
    kind: Literal[JobKind.chat] = JobKind.chat
    media: MediaRef
    history: list[Turn] = Field(default_factory=list)
    question: str = Field(min_length=1)
    conversation: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")  # the UI's dialogue id


class OcrRequest(_Request):
    kind: Literal[JobKind.ocr] = JobKind.ocr
    media: MediaRef


class RegionRequest(_Request):
    kind: Literal[JobKind.region] = JobKind.region
    media: MediaRef
    box: Box


JobRequest = Annotated[ChatRequest | OcrRequest | RegionRequest, Field(discriminator="kind")]
job_request_adapter: TypeAdapter[ChatRequest | OcrRequest | RegionRequest] = TypeAdapter(JobRequest)


def parse_request(data: dict | str) -> ChatRequest | OcrRequest | RegionRequest:
    if isinstance(data, str):
        return job_request_adapter.validate_json(data)
    return job_request_adapter.validate_python(data)


class FrameInfo(BaseModel):
    index: int
    timestamp: float  # seconds from the start of the video
    thumbnail: str | None = None  # a small JPEG of the frame, relative to RESULTS_DIR


class JobResult(BaseModel):
    job_id: str
    kind: JobKind
    status: JobStatus
    answer: str = ""
    error: str | None = None  # Russian, for the user
    error_code: ErrorCode | None = None  # what kind of error, for API callers
    truncated: bool = False  # the answer stopped at MAX_NEW_TOKENS (or the request's max_new_tokens)
    cached_tokens: int = 0  # prompt tokens taken from the worker's prompt cache instead of computed
    # Translation (worker/translate/): the answer above is Russian, the model's own English is answer_en; the model
    # was asked question_en. None when nothing was translated (OCR, English asked). A Russian note when translation
    # could not be done (the answer is then English).
    answer_en: str | None = None
    question_en: str | None = None
    translation_note: str | None = None
    model_id: str = ""
    device: str = ""
    dtype: str = ""
    worker: str = ""
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    prompt_tokens: int = 0
    generated_tokens: int = 0
    first_token_at: float | None = None
    frames: list[FrameInfo] = Field(default_factory=list)

    @property
    def queue_wait_s(self) -> float | None:
        if self.queued_at is None or self.started_at is None:
            return None
        return max(0.0, self.started_at - self.queued_at)

    @property
    def processing_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @property
    def tokens_per_s(self) -> float | None:
        start = self.first_token_at or self.started_at
        if start is None or self.finished_at is None or self.generated_tokens <= 1:
            return None
        span = self.finished_at - start
        return (self.generated_tokens - 1) / span if span > 0 else None


class WorkerInfo(BaseModel):
    """What a live worker announces in its heartbeat."""

    name: str
    model_id: str
    device: str
    dtype: str
    state: WorkerState
    job_id: str | None = None
    error: str | None = None
    detail: str | None = None  # what a loading worker is doing (Russian), e.g. the download progress
    queue: str | None = None  # the worker's own queue (follow-ups go there)
    backlog: int = 0  # jobs waiting in its own queue
    cache_entries: int = 0
    cache_bytes: int = 0
    updated_at: float = Field(default_factory=time.time)
