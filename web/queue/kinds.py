"""Each kind of job as one object: what it takes, its checks, its history rule, its default question, how its
request is built and what its result gives a caller. The UI's tabs, the Gradio API and the OpenAI API build their
requests here, each rule written once (common.contract holds the rules both processes enforce: the worker checks
them again)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common import contract
from common.errors import UserError
from common.schemas import (
    ChatRequest,
    JobKind,
    JobResult,
    JobStatus,
    MediaKind,
    MediaRef,
    OcrRequest,
    RegionRequest,
    Turn,
)
from common.settings import Settings
from common.store import MediaStore
from web.queue.box import parse_box

STOPPED = "остановлено"
TRUNCATED = "ответ обрезан: достигнут предел длины"
NO_TEXT = "текст на изображении не найден"


class Chat:
    """A question about an image or a video, with the conversation so far."""

    kind = JobKind.chat
    need = contract.NEED_MEDIA  # said when no file was given

    @staticmethod
    def default_question(media: MediaKind) -> str:
        """What is asked about a file given without a question (the UI's «Опиши изображение» / «Опиши видео»)."""
        return contract.DEFAULT_QUESTION[media]

    @staticmethod
    def is_default(question: str | None) -> bool:
        return (question or "").strip() in contract.DEFAULT_QUESTION.values()

    @staticmethod
    def question(settings: Settings, text: str | None) -> str:
        return contract.check_question(text, settings.max_question_chars)

    @staticmethod
    def history(settings: Settings, turns: Sequence[Turn]) -> list[Turn]:
        """The history rule: the latest turns that fit, the oldest dropped first."""
        return contract.trim_history(list(turns), settings.max_history_turns, settings.max_question_chars)

    def request(self, settings: Settings, media: MediaRef | None, question: str | None,
                history: Sequence[Turn] = (), *, conversation: str | None = None,
                max_new_tokens: int | None = None, answer_language: str | None = None) -> ChatRequest:
        """Checked in this order: the file, the question, the history. history: the model's own turns where known
        (Turn.original), else as the caller was shown them (the worker translates those back)."""
        if media is None:
            raise UserError(self.need)
        return ChatRequest(media=media, question=self.question(settings, question),
                           history=self.history(settings, [Turn(question=t.question, answer=t.answer,
                                                                original=t.original) for t in history]),
                           conversation=conversation, max_new_tokens=max_new_tokens,
                           answer_language=answer_language)

    @staticmethod
    def note(result: JobResult) -> str | None:
        """What is said under an answer: stopped by the user, or cut at the token limit; and why it is not
        translated, if it could not be."""
        said = STOPPED if result.status == JobStatus.cancelled else TRUNCATED if result.truncated else None
        return " · ".join(n for n in (said, result.translation_note) if n) or None


class Ocr:
    """All readable text of an image, as plain text and as a .txt file."""

    kind = JobKind.ocr
    need = contract.NEED_IMAGE

    @staticmethod
    def request(media: MediaRef) -> OcrRequest:
        contract.require_image(media.kind)
        return OcrRequest(media=media)

    @staticmethod
    def text_file(result: JobResult, store: MediaStore) -> Path:
        """The text as ocr_result_<time>.txt (UTF-8, exactly the text shown)."""
        return store.write_result(result.answer)

    @staticmethod
    def note(result: JobResult) -> str | None:
        return NO_TEXT if result.status == JobStatus.ok and not result.answer else None


class Region:
    """What is in the box x1,y1,x2,y2 of an image."""

    kind = JobKind.region
    need = contract.NEED_IMAGE

    @staticmethod
    def request(media: MediaRef, box: str | None, width: int, height: int,
                answer_language: str | None = None) -> RegionRequest:
        """width × height: the image's displayed size (the box is checked against it)."""
        contract.require_image(media.kind)
        return RegionRequest(media=media, box=parse_box(box, width, height), answer_language=answer_language)


CHAT, OCR, REGION = Chat(), Ocr(), Region()
