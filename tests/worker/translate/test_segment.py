"""worker.translate.segment and protect: sentences of a streaming Markdown answer, what is never split, never cut."""

from __future__ import annotations

import pytest

from worker.translate.protect import digits, protected_spans, survived
from worker.translate.segment import segment, split_long

ANSWER = """The image shows a cat. It is about 3.5 m long, e.g. quite big. Dr. Smith says "Stop. Go back." loudly!
- First item. Second sentence here.
- Costs $20,000 (approx. 15% more).
1. Numbered: see https://example.org/a.b. Then more.

```python
x = 1. Not a sentence. Ever.
```
| Name | Value |
|---|---|
| cat | 5 kg |
The sign reads «Выход. Exit.» in red. Code `a.b()` runs. Last one"""


def units(text: str, final: bool = True) -> list[str]:
    pieces, _ = segment(text, final)
    return [p.text for p in pieces if p.translate]


def test_sentences_lists_code_tables_and_quotes():
    assert units(ANSWER) == [
        "The image shows a cat.", "It is about 3.5 m long, e.g. quite big.", 'Dr. Smith says "Stop. Go back." loudly!',
        "First item.", "Second sentence here.", "Costs $20,000 (approx. 15% more).",
        "Numbered: see https://example.org/a.b.", "Then more.",
        "Name", "Value", "cat", "5 kg",
        "The sign reads «Выход. Exit.» in red.", "Code `a.b()` runs.", "Last one",
    ]


def test_nothing_is_cut_or_dropped_and_markup_is_kept_apart():
    pieces, done = segment(ANSWER, final=True)
    assert "".join(p.text for p in pieces) == ANSWER and done == len(ANSWER)
    kept = "".join(p.text for p in pieces if not p.translate)
    assert "```python\nx = 1. Not a sentence. Ever.\n```" in kept and "\n- " in kept and "\n1. " in kept
    assert "|---|---|" in kept


def test_a_prefix_of_the_stream_never_changes_what_was_done():
    """Streaming: the done pieces of every prefix are a prefix of the pieces of the whole answer, so a sentence is
    translated once and what is shown never jumps back."""
    final, _ = segment(ANSWER, final=True)
    for n in range(len(ANSWER) + 1):
        pieces, done = segment(ANSWER[:n], final=False)
        assert "".join(p.text for p in pieces) == ANSWER[:done]
        translated = [p for p in pieces if p.translate]
        assert translated == [p for p in final if p.translate][: len(translated)], ANSWER[:n]


@pytest.mark.parametrize("text", [
    "The cat is 5 ft. tall", "Mr. Brown", "It costs 3.", "J. K. Rowling wrote it", "He said \"Yes. No",
    "Use `x. Y` here", "See fig. 3", "1. ",
])
def test_a_sentence_is_not_done_until_the_text_proves_it_ended(text):
    pieces, _ = segment(text, final=False)
    assert not [p for p in pieces if p.translate]


def test_a_sentence_is_done_once_the_next_one_starts_or_the_line_ends():
    assert units("A cat sits. The", final=False) == ["A cat sits."]
    assert units("A cat sits.\n", final=False) == ["A cat sits."]
    assert units("A cat sits", final=True) == ["A cat sits"]


def test_spans_numbers_units_quotes_code_urls():
    text = 'It costs $20,000, weighs 5 kg, see https://x.org/a. Code `a.b()`, «Выход», "EXIT" at 12:30, 1920x1080 px.'
    found = {(s.kind, s.text(text)) for s in protected_spans(text)}
    assert found >= {("number", "$20,000"), ("number", "5 kg"), ("url", "https://x.org/a"), ("code", "`a.b()`"),
                     ("quote", "«Выход»"), ("quote", '"EXIT"'), ("number", "12:30"), ("number", "1920x1080 px")}


def test_survival_checks():
    assert survived("20,000", "number", "стоит 20 000 рублей") and not survived("20,000", "number", "стоит 2000")
    assert survived("5 km", "number", "5 км") and survived('"EXIT"', "quote", "надпись «EXIT»")
    assert not survived('"EXIT"', "quote", "надпись «ВЫХОД»") and not survived("`a.b()`", "code", "a.b()")
    assert digits("3.5 m and 1,000,000") == ["3.5", "1000000"]


def test_split_long_splits_at_clause_marks_never_cuts_or_splits_spans():
    sentence = ("The room has a large window; a sofa stands by the wall, and a shelf with «Old. Books. Here» "
                "holds 1,234 items, which is a lot because the owner reads every evening")
    words = lambda s: len(s.split())  # noqa: E731 - a token count stand-in
    parts = split_long(sentence, 10, words)
    assert "".join(parts) == sentence and len(parts) > 2
    assert all(words(p) <= 10 for p in parts if "«" not in p)
    assert any("«Old. Books. Here»" in p for p in parts)
    assert parts[0].endswith("; ")
    assert split_long("one two", 10, words) == ["one two"]
    assert split_long("x" * 50, 3, len) == ["x" * 50]  # one unbreakable run: whole, never cut
