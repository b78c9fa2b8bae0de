"""worker.translate.text and stream: units translated so that code, quotes, numbers survive; the streaming answer
shows each ended sentence translated, once; stop keeps what was translated; a failing translator is reported."""

from __future__ import annotations

import itertools
import threading

from worker.translate.stream import AnswerStream
from worker.translate.text import UnitTranslator, has_cyrillic


class Lossy:
    """A translator that loses everything but words: every word becomes «слово», numbers and quotes vanish."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail = False
        self.stop_after: threading.Event | None = None

    def count(self, text: str) -> int:
        return len(text.split())

    def translate(self, texts, stop=None):
        if self.fail:
            raise RuntimeError("boom")
        self.calls.append(list(texts))
        if self.stop_after is not None:
            self.stop_after.set()
        if stop is not None and stop.is_set():
            return None
        return [" ".join("слово" for w in t.split() if any(c.isalpha() for c in w)) + "." for t in texts]


def test_protected_spans_survive_a_translator_that_loses_them():
    engine = Lossy()
    units = UnitTranslator(engine, "en", max_tokens=50)
    [out] = units.translate(['The sign says "EXIT 7" and costs $20,000, see `run()` now.'])
    assert '"EXIT 7"' in out and "$20,000" in out and "`run()`" in out and "слово" in out
    assert engine.calls[0] == ['The sign says "EXIT 7" and costs $20,000, see `run()` now.']  # whole first
    assert engine.calls[1] == ["The sign says", "and costs", ", see", "now."]  # then between the spans


def test_nothing_to_translate_is_kept_and_not_sent():
    engine = Lossy()
    units = UnitTranslator(engine, "en", max_tokens=50)
    assert units.translate(["42.", "«Выход»", "  "]) == ["42.", "«Выход»", "  "]
    assert engine.calls == []
    assert UnitTranslator(engine, "ru", 50).translate(["Already English."]) == ["Already English."]


def test_long_units_are_split_never_cut():
    engine = Lossy()
    units = UnitTranslator(engine, "en", max_tokens=4)
    [out] = units.translate(["one two three four five; six seven eight nine ten, and eleven twelve"])
    assert max(len(t.split()) for t in engine.calls[0]) <= 4 and len(engine.calls[0]) >= 3
    assert out.count("слово") == 13  # every word of every part


def test_translate_text_keeps_markdown():
    engine = Lossy()
    out = UnitTranslator(engine, "en", 50).translate_text("Intro line.\n- first item\n- second item\n\n```\ncode\n```")
    assert out == "слово слово.\n- слово слово.\n- слово слово.\n\n```\ncode\n```"


def test_the_stream_translates_each_sentence_once_as_it_ends():
    engine = Lossy()
    shown: list[str] = []
    stable_parts: list[str] = []
    stream = AnswerStream(UnitTranslator(engine, "en", 50),
                          lambda text, n, stable: (shown.append(text), stable_parts.append(text[:stable])))
    answer = "A cat sits on a mat. It is grey.\n- One dog\n- Two birds. The end"
    for i in range(1, len(answer) + 1):
        stream.feed(answer[:i], i)
    assert shown[0] == "A"  # never blank: the unfinished sentence shows in English
    assert "слово слово слово слово слово слово. It is" in shown  # the first sentence as soon as the next began
    final = stream.finish(answer)
    assert final == ("слово слово слово слово слово слово. слово слово слово.\n- слово слово.\n"
                     "- слово слово. слово слово.")
    sent = [t for call in engine.calls for t in call]
    assert sorted(sent) == sorted(set(sent))  # each unit once
    # What is marked stable only grows and is where the final answer begins (an API stream sends only it).
    assert all(b.startswith(a) for a, b in itertools.pairwise(stable_parts))
    assert final.startswith(stable_parts[-1]) and "It is" not in stable_parts[-1] and stable_parts[-1]
    assert len(stream.lags) == len(sent) - 1  # the last one ended with the answer


def test_stop_keeps_the_translated_part_and_the_rest_as_shown():
    engine = Lossy()
    stop = threading.Event()
    stream = AnswerStream(UnitTranslator(engine, "en", 50), None, stop)
    stream.feed("First one. Second", 3)
    stop.set()
    stream.feed("First one. Second one. Third", 5)
    assert stream.finish("First one. Second one. Third", stopped=True) == "слово слово. Second one. Third"
    assert len(engine.calls) == 1


def test_stop_during_a_translation_shows_no_half_translation():
    engine = Lossy()
    stop = threading.Event()
    engine.stop_after = stop  # the stop comes while the sentence is being translated
    stream = AnswerStream(UnitTranslator(engine, "en", 50), None, stop)
    stream.feed("First one. Second", 3)
    assert stream.finish("First one. Second", stopped=True) == "First one. Second"


def test_a_failing_translator_is_reported_once_and_the_stream_goes_on_in_english():
    engine = Lossy()
    shown: list[str] = []
    stream = AnswerStream(UnitTranslator(engine, "en", 50), lambda text, n, stable: shown.append(text))
    stream.feed("First one. Second", 3)
    engine.fail = True
    stream.feed("First one. Second one. Third", 5)
    assert shown[-1] == "слово слово. Second one. Third"
    assert stream.finish("First one. Second one. Third.") == "слово слово. Second one. Third."
    assert stream.failed


def test_has_cyrillic():
    assert has_cyrillic("Что это?") and has_cyrillic("Describe «Выход»") and not has_cyrillic("What is it? 42")


def test_a_sentence_past_the_input_limit_is_translated_in_parts_as_it_grows():
    engine = Lossy()
    shown: list[str] = []
    stream = AnswerStream(UnitTranslator(engine, "en", max_tokens=5),
                          lambda text, n, stable: shown.append(text[:stable]))
    words = "one two three four five six, seven eight nine ten eleven twelve thirteen fourteen fifteen".split()
    for i in range(1, len(words) + 1):
        stream.feed(" ".join(words[:i]), i)
    assert shown[-1].startswith("слово") and len(engine.calls) >= 2  # translated before the sentence ended
    final = stream.finish(" ".join(words) + ".")
    assert final.startswith(shown[-1]) and final.count("слово") == 15 and "one" not in final


def test_a_code_block_is_kept_whole_across_the_stream():
    engine = Lossy()
    stream = AnswerStream(UnitTranslator(engine, "en", 50), None)
    answer = "Run this:\n```\nx = 1. Not prose.\ny = 2\n```\nDone here."
    for i in range(1, len(answer) + 1):
        stream.feed(answer[:i], i)
    assert stream.finish(answer) == "слово слово.\n```\nx = 1. Not prose.\ny = 2\n```\nслово слово."


def test_the_final_clean_up_stripping_a_leading_space_keeps_what_was_shown():
    engine = Lossy()
    stream = AnswerStream(UnitTranslator(engine, "en", 50), None)
    stream.feed(" A cat sits. It", 3)
    done = stream.shown[: stream.stable]
    assert stream.finish("A cat sits. It is grey.").startswith(done.strip()) and len(engine.calls) == 2
