"""worker.translate.marian and stage on the tiny random-weight OPUS-MT-shaped translators (scripts/
build_test_translation.py): loaded by the worker's loading code, int8 on CPU, Russian out of en→ru and English out
of ru→en, stoppable; a translator that cannot be had gives a note naming its setting, and the job goes on."""

from __future__ import annotations

import threading

import pytest
import torch

from common.schemas import JobKind
from common.settings import Settings
from worker.translate import stage as stage_mod
from worker.translate.marian import Translator, output_limit, resolve_precision
from worker.translate.text import SCRIPTS, has_cyrillic


def load(path, precision="int8") -> Translator:
    return Translator.load(str(path), device="cpu", precision=precision, offline=True, hf_home=None,
                           on_progress=lambda _: None, setting="TRANSLATION_MODEL_EN_RU", label="модели перевода")


def test_en_ru_gives_cyrillic_ru_en_gives_latin(test_translators):
    en_ru, ru_en = load(test_translators["en-ru"]), load(test_translators["ru-en"])
    out = en_ru.translate(["The cat sits on the table.", "Two dogs run."])
    assert len(out) == 2 and all(has_cyrillic(t) and not SCRIPTS["en"].search(t) for t in out)
    [back] = ru_en.translate(["Что на картинке?"])
    assert back and SCRIPTS["en"].search(back) and not has_cyrillic(back)


def test_int8_on_cpu_quantizes_every_linear_layer(test_translators):
    q = load(test_translators["en-ru"], "int8")
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert not [m for m in q.model.modules() if type(m) is torch.nn.Linear]
    assert sum(isinstance(m, dynamic) for m in q.model.modules()) == 2 * (4 + 2) + 2 * (8 + 2) + 1  # tiny: 2 + 2 layers
    assert isinstance(q.model.lm_head, torch.ao.nn.quantized.dynamic.Linear)
    fp = load(test_translators["en-ru"], "float32")
    assert isinstance(fp.model.lm_head, torch.nn.Linear)


def test_a_set_stop_event_returns_nothing(test_translators):
    stop = threading.Event()
    stop.set()
    assert load(test_translators["en-ru"]).translate(["The cat sits."], stop) is None


def test_output_is_bounded_and_precision_follows_the_device():
    assert output_limit(10) == 36 and output_limit(400) == 511
    assert resolve_precision("auto", "cpu", "bfloat16") == "int8"
    assert resolve_precision("auto", "cuda", "bfloat16") == "bfloat16"
    assert resolve_precision("auto", "cuda", "float32") == "float16"
    assert resolve_precision("int8", "cuda", "bfloat16") == "float32"  # dynamic int8 is a CPU path


def settings(tmp_path, **kw) -> Settings:
    return Settings(_env_file=None, hf_home=str(tmp_path / "hf"), hf_hub_offline=True, **kw)


def test_the_stage_loads_both_and_skips_ocr_and_english(tmp_path, test_translators):
    s = settings(tmp_path, translation_model_ru_en=str(test_translators["ru-en"]),
                 translation_model_en_ru=str(test_translators["en-ru"]))
    stage = stage_mod.Translation(s)
    stage.setup("cpu", "float32", lambda _: None)
    assert set(stage.units) == {"ru-en", "en-ru"} and not stage.errors
    assert stage.job(JobKind.ocr, None) is None and stage.job(JobKind.chat, "en") is None
    job = stage.job(JobKind.region, None)
    assert job is not None
    assert not has_cyrillic(job.question("Что на картинке?")) and job.question("What is it?") == "What is it?"
    shown = []
    feed = job.on_text(lambda text, n, stable: shown.append(text), None)
    for i, text in enumerate(["A cat", "A cat sits. It", "A cat sits. It is grey."]):
        feed(text, i)
    assert shown[0] == "A cat" and shown[1].endswith(" It") and has_cyrillic(shown[1])
    assert has_cyrillic(job.answer("A cat sits. It is grey.", stopped=False)) and job.note is None


def test_a_missing_translator_gives_english_and_one_note_naming_its_setting(tmp_path):
    s = settings(tmp_path, translation_model_en_ru="nobody/no-such-model", translation_model_ru_en="nobody/none")
    stage = stage_mod.Translation(s)
    stage.setup("cpu", "float32", lambda _: None)
    assert set(stage.errors) == {"ru-en", "en-ru"}
    job = stage.job(JobKind.chat, None)
    assert job.question("Что это?") == "Что это?"
    feed = job.on_text(None, None)
    assert feed is None  # no stream: the English goes out as it is
    assert job.answer("A cat.", stopped=False) == "A cat."
    assert job.note.startswith("Ответ на английском: перевод недоступен.") and "TRANSLATION_MODEL_EN_RU" in job.note
    assert "HF_HUB_OFFLINE=1" in job.note and "ANSWER_LANGUAGE=en" in job.note


def test_without_ru_en_the_question_goes_as_it_is_and_the_answer_is_still_translated(tmp_path, test_translators):
    s = settings(tmp_path, translation_model_ru_en="nobody/none",
                 translation_model_en_ru=str(test_translators["en-ru"]))
    stage = stage_mod.Translation(s)
    stage.setup("cpu", "float32", lambda _: None)
    job = stage.job(JobKind.chat, None)
    assert job.question("Что это?") == "Что это?"
    job.on_text(None, None)
    assert has_cyrillic(job.answer("A cat.", stopped=False))
    assert job.note.startswith("Вопрос передан модели без перевода") and "TRANSLATION_MODEL_RU_EN" in job.note


def test_english_by_default_loads_nothing_and_a_russian_request_looks_in_the_cache_only(tmp_path, monkeypatch):
    s = Settings(_env_file=None, hf_home=str(tmp_path / "hf"), hf_hub_offline=False, answer_language="en",
                 translation_model_en_ru="nobody/no-such-model")
    stage = stage_mod.Translation(s)
    stage.setup("cpu", "float32", lambda _: None)
    assert stage.units == {} and stage.errors == {}
    job = stage.job(JobKind.chat, "ru")
    job.on_text(None, None)
    assert "ANSWER_LANGUAGE=en" in job.note and "не скачана" in job.note
    monkeypatch.setattr(stage_mod.Translator, "load", lambda *a, **k: pytest.fail("retried at once"))
    assert stage.unit("en-ru") is None  # not looked for again before RETRY_S


def test_out_of_memory_while_loading_is_a_note(tmp_path, test_translators, monkeypatch):
    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(stage_mod.Translator, "load", oom)
    stage = stage_mod.Translation(settings(tmp_path))
    stage.setup("cpu", "float32", lambda _: None)
    assert "Не хватило памяти" in stage.errors["en-ru"]
