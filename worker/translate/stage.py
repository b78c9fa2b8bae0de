"""The translation stage of a worker: the two translators (loaded at start-up with the main model when answers are
Russian), and per job what to translate — the question and any Russian history ru→en before the model, the answer
en→ru while it streams. Translation never fails a job: whatever goes wrong (no model offline, download failed, out
of memory, an error mid-answer), the answer comes in English with one Russian note saying why and what to do."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from common.contract import model_question
from common.errors import ModelUnavailable
from common.schemas import JobKind, Turn
from common.settings import Settings
from worker.model import loading
from worker.translate.marian import MAX_INPUT_TOKENS, Translator, resolve_precision
from worker.translate.stream import AnswerStream
from worker.translate.text import UnitTranslator, has_cyrillic

log = logging.getLogger(__name__)

RU_EN, EN_RU = "ru-en", "en-ru"
SETTING = {RU_EN: "TRANSLATION_MODEL_RU_EN", EN_RU: "TRANSLATION_MODEL_EN_RU"}
LABEL = {RU_EN: "модели перевода ru→en", EN_RU: "модели перевода en→ru"}
RETRY_S = 60  # a translator that failed to load is looked for in the cache again after this long
OFF_HINT = "Выключить перевод: ANSWER_LANGUAGE=en."


def answer_note(reason: str) -> str:
    return f"Ответ на английском: перевод недоступен. {reason} {OFF_HINT}"


def question_note(reason: str) -> str:
    return f"Вопрос передан модели без перевода на английский. {reason} {OFF_HINT}"


FAILED_MIDWAY = ("Перевод прервался с ошибкой (подробности — в журнале обработчика): конец ответа — на английском. "
                 + OFF_HINT)


def not_downloaded(model_id: str, setting: str) -> str:
    return (f"Модель перевода «{model_id}» не скачана: обработчик запущен с ANSWER_LANGUAGE=en и сам её не "
            f"загружает. Запустите его с ANSWER_LANGUAGE=ru (модель скачается при запуске) или укажите в {setting} "
            "путь к локальной папке с моделью.")


def out_of_memory(model_id: str) -> str:
    return (f"Не хватило памяти для модели перевода «{model_id}». Освободите память (меньше обработчиков или "
            "PROMPT_CACHE_MB) или используйте TRANSLATION_PRECISION=int8.")


class Translation:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.units: dict[str, UnitTranslator] = {}
        self.errors: dict[str, str] = {}  # direction → why it is not there (Russian)
        self._failed_at: dict[str, float] = {}
        self.device, self.precision = "cpu", "float32"

    def model_id(self, direction: str) -> str:
        s = self.settings
        return s.translation_model_ru_en if direction == RU_EN else s.translation_model_en_ru

    # ------------------------------------------------------------ loading

    def setup(self, device: str, main_dtype: str, on_progress: Callable[[str], None]) -> None:
        """At start-up, with the main model: both translators when answers are Russian by default. Never raises."""
        self.device = device
        self.precision = resolve_precision(self.settings.translation_precision, device, main_dtype)
        if self.settings.answer_language == "ru":
            for direction in (RU_EN, EN_RU):
                self._load(direction, on_progress, offline=self.settings.hf_hub_offline)

    def _load(self, direction: str, on_progress: Callable[[str], None], offline: bool, lazy: bool = False) -> None:
        s, model_id = self.settings, self.model_id(direction)
        try:
            tr = Translator.load(model_id, device=self.device, precision=self.precision, offline=offline,
                                 hf_home=s.hf_home, on_progress=on_progress, setting=SETTING[direction],
                                 label=LABEL[direction])
        except ModelUnavailable as exc:
            reason = not_downloaded(model_id, SETTING[direction]) if lazy and not s.hf_hub_offline else exc.message
        except (OSError, ValueError) as exc:
            log.error("translator %s failed to load: %s", model_id, exc)
            reason = loading.not_loadable(model_id, s.hf_home).replace("SMOLVLM2_MODEL_ID", SETTING[direction])
        except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            log.error("translator %s failed to load: %s", model_id, exc)
            reason = out_of_memory(model_id)
        else:
            self.units[direction] = UnitTranslator(tr, direction.split("-")[0], MAX_INPUT_TOKENS)
            self.errors.pop(direction, None)
            return
        log.warning("%s", reason)
        self.errors[direction] = reason
        self._failed_at[direction] = time.monotonic()

    def unit(self, direction: str) -> UnitTranslator | None:
        """The loaded translator; one not there yet is looked for again in the cache only (a download never runs
        inside a job), at most every RETRY_S."""
        if direction not in self.units:
            last = self._failed_at.get(direction)
            if last is None or time.monotonic() - last > RETRY_S:
                self._load(direction, lambda _detail: None, offline=True, lazy=True)
        return self.units.get(direction)

    def warm_up(self) -> None:
        for direction, unit in self.units.items():
            unit.translate(["Это проверка." if direction == RU_EN else "This is a test."])

    def language(self, requested: str | None) -> str:
        return requested or self.settings.answer_language

    def job(self, kind: JobKind, requested: str | None) -> JobTranslation | None:
        """The job's translation, or None when its answer stays as the model wrote it (OCR, or English asked)."""
        if kind == JobKind.ocr or self.language(requested) != "ru":
            return None
        return JobTranslation(self)


class JobTranslation:
    """One job's translation: the English the model sees, the stream shown, the final answer and its note."""

    def __init__(self, stage: Translation) -> None:
        self.stage = stage
        self.note: str | None = None
        self.stream: AnswerStream | None = None

    def _to_english(self, text: str, stop: threading.Event | None) -> str:
        if not has_cyrillic(text):
            return text
        unit = self.stage.unit(RU_EN)
        if unit is None:
            self.note = self.note or question_note(self.stage.errors.get(RU_EN, ""))
            return text
        try:
            out = unit.translate_text(text, stop)
        except Exception:  # never fails the job (logged)
            log.exception("question translation failed")
            self.note = self.note or question_note("Модель перевода прервалась с ошибкой.")
            return text
        return text if out is None else out

    def question(self, question: str, stop: threading.Event | None = None) -> str:
        """The question as the model gets it: the UI's questions as their exact English prompts, a question with
        Cyrillic translated, any other as it is."""
        return self._to_english(model_question(question), stop)

    def history(self, turns: list[Turn], stop: threading.Event | None = None) -> list[Turn]:
        """Turns the web could not map back to the model's own English (an API caller's Russian history) are
        translated: the model then sees a back-translation, and its prompt cache misses once."""
        out = []
        for t in turns:
            if t.original:
                out.append(t)
            else:
                out.append(Turn(question=self._to_english(model_question(t.question), stop),
                                answer=self._to_english(t.answer, stop), original=True))
        return out

    def on_text(self, on_text: Callable[[str, int], None] | None, stop: threading.Event | None):
        """generate()'s streamer callback: the answer translated sentence by sentence as it ends."""
        unit = self.stage.unit(EN_RU)
        if unit is None:
            self.note = answer_note(self.stage.errors.get(EN_RU, ""))
            return on_text
        self.stream = AnswerStream(unit, on_text, stop)
        return self.stream.feed

    def answer(self, english: str, stopped: bool) -> str:
        """The answer to show: Russian (a stopped one keeps what was translated, the rest as shown), or English with
        the note (a translator that failed mid-answer: what was translated, then English)."""
        if self.stream is None:
            return english
        answer = self.stream.finish(english, stopped)
        if self.stream.failed:
            self.note = FAILED_MIDWAY
        return answer
