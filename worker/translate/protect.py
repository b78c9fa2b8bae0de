"""What a translation must not change: inline code, text quoted from the image («…», "…", “…”), URLs, numbers with
their units. The segmenter never ends a sentence inside them; the translator checks that each one came through and
otherwise translates only the text between them, keeping them as they are."""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE, QUOTE, URL, NUMBER = "code", "quote", "url", "number"
_PAIRS = {"`": "`", "«": "»", "“": "”", "„": "“", '"': '"'}
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"«»]+[^\s<>\"«».,;:!?)\]]")
_UNITS = (
    r"%|‰|°\s?[CF]?|mm|cm|km|m|in|ft|yd|mi|mph|km/h|m/s|kg|mg|g|lbs?|oz|ml|l|px|pt|fps|k?Hz|[MGT]Hz|[KMGT]i?B|"
    r"ms|s|sec|min|h|hrs?|V|mAh|kWh|k?W|A|x|×"
)
_NUMBER = re.compile(
    rf"[$€£¥₽]?(?<![\w.])\d+(?:[.,:/x×-]\d+)*(?:\s?(?:{_UNITS})(?![\w]))?"
)
_DIGITS = re.compile(r"\d+(?:[.,\s]\d{3})*(?:[.,]\d+)?")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str

    def text(self, s: str) -> str:
        return s[self.start : self.end]


def _quoted(text: str, closed: bool) -> list[Span]:
    """Code and quotes, outermost first; an unclosed one runs to the end while more text may come."""
    spans, i = [], 0
    while i < len(text):
        ch = text[i]
        close = _PAIRS.get(ch)
        if close is None or (ch == '"' and i > 0 and text[i - 1].isalnum() and not text[i - 1].isdigit()):
            i += 1
            continue
        if ch == '"' and i > 0 and text[i - 1].isdigit():
            i += 1  # 15" (inches)
            continue
        j = text.find(close, i + 1)
        if j < 0:
            if not closed:
                spans.append(Span(i, len(text), CODE if ch == "`" else QUOTE))
                return spans
            i += 1
            continue
        spans.append(Span(i, j + 1, CODE if ch == "`" else QUOTE))
        i = j + 1
    return spans


def protected_spans(text: str, closed: bool = True) -> list[Span]:
    """Non-overlapping protected spans of text, in order."""
    spans = _quoted(text, closed)

    def free(a: int, b: int) -> bool:
        return not any(s.start < b and a < s.end for s in spans)

    for pattern, kind in ((_URL, URL), (_NUMBER, NUMBER)):
        for m in pattern.finditer(text):
            if free(m.start(), m.end()):
                spans.append(Span(m.start(), m.end(), kind))
    return sorted(spans, key=lambda s: s.start)


def digits(s: str) -> list[str]:
    """The numbers in s without group separators ("20,000" and "20 000" are both "20000")."""
    return [re.sub(r"[,\s]", "", m.group()).replace(",", ".") for m in _DIGITS.finditer(s)]


def survived(span_text: str, kind: str, translated: str) -> bool:
    """Whether a protected span came through a translation: verbatim, or for a number its digits (a unit may be
    translated: "5 km" → "5 км")."""
    if kind == NUMBER:
        have = digits(translated)
        return all(d in have or d.replace(".", ",") in have for d in digits(span_text))
    if kind == QUOTE:  # the quotes themselves may change style («» for ""), the text inside may not
        return span_text[1:-1].strip() in translated
    return span_text in translated


def split_at_spans(text: str) -> list[tuple[str, bool]]:
    """text as (part, protected) pairs, in order: what lies between the spans and the spans themselves."""
    parts, pos = [], 0
    for s in protected_spans(text):
        if s.start > pos:
            parts.append((text[pos : s.start], False))
        parts.append((s.text(text), True))
        pos = s.end
    if pos < len(text):
        parts.append((text[pos:], False))
    return parts
