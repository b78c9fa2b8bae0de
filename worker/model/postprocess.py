"""Clean-up of generated text: OCR commentary and fences, runaway repetition."""

from __future__ import annotations

import re
from collections.abc import Sequence

_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n?\s*```\s*$", re.S)
_LEAD = re.compile(
    r"^\s*(?:sure[,!.]?\s*)?(?:here(?:'s| is| are)\s+(?:the\s+)?(?:extracted\s+|recognized\s+|visible\s+)?"
    r"(?:text|transcription|content)[^\n:]*|the\s+(?:extracted\s+|visible\s+)?text\s+(?:in|on|from)\s+"
    r"(?:the|this)\s+image\s+(?:reads|says|is)[^\n:]*|(?:extracted|recognized)\s+text|text|ocr(?: result)?)"
    r"\s*:\s*\n?",
    re.I,
)
_TRAIL = re.compile(
    r"\n\s*(?:I hope this helps|Let me know if|Note:|Please note|If you need)[^\n]*\s*$", re.I
)


def find_cycle(tokens: Sequence[int], max_period: int = 32, min_repeats: int = 4) -> int | None:
    """The period of a loop at the end of tokens (repeated at least min_repeats times), if any."""
    n = len(tokens)
    for period in range(1, max_period + 1):
        need = period * min_repeats
        if need > n:
            break
        tail = tokens[n - need :]
        if all(tail[i] == tail[i % period] for i in range(need)):
            return period
    return None


def collapse_repeated_lines(text: str, max_repeats: int = 2) -> str:
    """Keep at most max_repeats consecutive copies of the same non-empty line."""
    out: list[str] = []
    run = 0
    for line in text.split("\n"):
        if out and line.strip() and line.strip() == out[-1].strip():
            run += 1
            if run >= max_repeats:
                continue
        else:
            run = 0
        out.append(line)
    return "\n".join(out)


def collapse_repeated_tail(text: str, min_repeats: int = 4, max_unit: int = 80) -> str:
    """Cut a character-level loop at the end (e.g. 'ab ab ab ab ab') down to one copy."""
    for unit in range(1, max_unit + 1):
        need = unit * min_repeats
        if need > len(text):
            break
        piece = text[-unit:]
        if text.endswith(piece * min_repeats):
            start = len(text)
            while text[:start].endswith(piece):
                start -= unit
            return text[: start + unit].rstrip()
    return text


def clean_ocr(text: str) -> str:
    """Plain text only: drop code fences, lead-in and sign-off commentary, quotes, loops."""
    t = text.strip()
    m = _FENCE.match(t)
    if m:
        t = m.group(1)
    t = t.replace("```", "")
    t = _LEAD.sub("", t, count=1)
    t = _TRAIL.sub("", t)
    t = t.strip()
    if (len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'«") or (t.startswith("«") and t.endswith("»")):
        t = t[1:-1].strip()
    t = collapse_repeated_tail(collapse_repeated_lines(t))
    return "\n".join(line.rstrip() for line in t.split("\n")).strip()


def clean_answer(text: str) -> str:
    return collapse_repeated_tail(text.strip())
