"""Cuts a (streaming) Markdown answer into the units a translator takes: sentences, with everything that must come
out as it went in kept apart — list markers, headings, table pipes, fenced code, the whitespace between sentences.

`segment(text, final)` is a pure function of the text: a unit is "done" only when the text after it proves it
ended (the space and the next sentence's first letter, a line break), so the done units of any prefix of an
answer are a prefix of the done units of the whole answer, and a streaming caller can translate each one once.
Nothing is ever cut or dropped: the pieces joined give the text back."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from worker.translate.protect import protected_spans

# Words that end with a dot inside a sentence (checked case-insensitively, without the dot).
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr vs etc e.g i.e cf approx ca no nos fig figs vol p pp ft in oz lb lbs mt mts
    mins hr hrs sec secs est dept inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed
    thu fri sat sun u.s u.k a.m p.m т.е т.д т.п т.к др пр см стр рис г гг ул""".split()
)
_MARKER = re.compile(r"[ \t]*(?:(?:[-*+•]|\d{1,3}[.)]|#{1,6}|>)[ \t]+)+")  # list item, heading, quote
_FENCE = re.compile(r"[ \t]*(```|~~~)")
_TABLE_RULE = re.compile(r"[ \t]*\|?[ \t:]*-{3,}[ \t:]*(\|[ \t:]*-{3,}[ \t:]*)*\|?[ \t]*")
_END = re.compile(r"[.!?…]+[\"'”»)\]]*")  # a sentence's end mark, with closing quotes / brackets
_WORD_BEFORE = re.compile(r"([\w.]+)$")


@dataclass(frozen=True)
class Piece:
    text: str
    translate: bool  # False: kept as it is (markup, code, whitespace)


def _is_abbreviation(before: str) -> bool:
    m = _WORD_BEFORE.search(before)
    if not m:
        return False
    word = m.group(1).lower().rstrip(".")
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())  # an initial: "J. K. Rowling"


def _sentence_ends(content: str, closed: bool) -> list[int]:
    """Offsets in content where a sentence ends (just after its end mark and closing quotes). closed: nothing
    will follow content on its line (a finished line, or the final text)."""
    spans = protected_spans(content, closed=closed)
    ends = []
    for m in _END.finditer(content):
        end = m.end()
        if any(s.start < end <= s.end or s.start < m.start() < s.end for s in spans):
            continue  # inside code, a quote, a number ("3.5"), a URL
        rest = content[end:]
        nxt = rest.lstrip(" \t")
        if not rest[:1].isspace():
            continue  # "3.5", "e.g.," or a mark glued to the next word
        if not nxt:
            continue  # the line's last sentence ends with the line itself
        if not (nxt[0].isupper() or nxt[0].isdigit() or nxt[0] in "\"'“«([*_`"):
            continue  # "approx. five", ", and …": not a new sentence
        if m.group().startswith(".") and len(m.group().rstrip("\"'”»)]")) == 1 and _is_abbreviation(
            content[: m.start()]
        ):
            continue
        ends.append(end)
    return ends


def _line_pieces(line: str, closed: bool, line_start: bool = True) -> tuple[list[Piece], int]:
    """Pieces of one line (without its line break) and how much of it is done. line_start False: the text begins
    inside a line (after a sentence already done), where no list marker or table can start."""
    if line_start and _TABLE_RULE.fullmatch(line) and closed:
        return [Piece(line, False)], len(line)
    if line_start and line.lstrip().startswith("|") and closed:  # a table row: each cell on its own
        pieces = []
        for part in re.split(r"(\|)", line):
            stripped = part.strip()
            if part == "|" or not stripped:
                pieces.append(Piece(part, False))
            else:
                lead = part[: len(part) - len(part.lstrip())]
                trail = part[len(part.rstrip()) :]
                pieces += [p for p in (Piece(lead, False), Piece(stripped, True), Piece(trail, False)) if p.text]
        return pieces, len(line)
    marker = _MARKER.match(line) if line_start else None
    head = marker.group() if marker else line[: len(line) - len(line.lstrip())]
    if not closed and not line[len(head) :].strip():
        return [], 0  # "- " or "1. " so far: the marker may still grow
    pieces = [Piece(head, False)] if head else []
    content = line[len(head) :]
    start = 0
    for end in _sentence_ends(content, closed):
        pieces.append(Piece(content[start:end], True))
        gap_end = end + len(content[end:]) - len(content[end:].lstrip(" \t"))
        pieces.append(Piece(content[end:gap_end], False))
        start = gap_end
    if closed:
        body = content[start:]
        stripped = body.rstrip()
        if stripped:
            pieces.append(Piece(stripped, True))
        if body[len(stripped) :]:
            pieces.append(Piece(body[len(stripped) :], False))
        start = len(content)
    return [p for p in pieces if p.text], len(head) + start


def segment(text: str, final: bool = True, line_start: bool = True) -> tuple[list[Piece], int]:
    """The pieces of text that are done, and the offset where the unfinished rest begins (len(text) when
    final; never inside a code block still open). Pieces with translate=True are whole sentences (or table
    cells) with their end marks. line_start False: text continues a line whose beginning was done before."""
    pieces: list[Piece] = []
    pos = 0
    in_fence: str | None = None
    fence_at = (0, 0)  # where the open code block began: (offset, pieces before it)
    while pos < len(text):
        nl = text.find("\n", pos)
        closed = nl >= 0 or final
        line_end = nl if nl >= 0 else len(text)
        line = text[pos:line_end]
        fence = _FENCE.match(line)
        if in_fence is not None or fence:
            if not closed:
                break  # an unfinished fence line: wait for its end
            if fence and in_fence is None:
                in_fence, fence_at = fence.group(1), (pos, len(pieces))
            elif fence and fence.group(1) == in_fence:
                in_fence = None
            pieces.append(Piece(text[pos : line_end + 1] if nl >= 0 else line, False))
            pos = line_end + 1 if nl >= 0 else line_end
            continue
        line_pieces, done = _line_pieces(line, closed, line_start or pos > 0)
        pieces += line_pieces
        if done < len(line):
            pos += done
            break
        if nl >= 0:
            pieces.append(Piece("\n", False))
            pos = nl + 1
        else:
            pos = line_end
    if in_fence is not None and not final:  # the block is done when it closes: resumed from its start
        pos, pieces = fence_at[0], pieces[: fence_at[1]]
    return _merge_kept(pieces), pos


def _merge_kept(pieces: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for p in pieces:
        if out and not p.translate and not out[-1].translate:
            out[-1] = Piece(out[-1].text + p.text, False)
        else:
            out.append(p)
    return out


# Where an over-long sentence is split, best first: after a clause mark, before a conjunction, at any space.
_SPLITS = (
    re.compile(r"[;:]\s+"),
    re.compile(r",\s+(?=(?:and|but|or|so|which|who|where|while|because|although|whereas|и|а|но|или|который|"
               r"которая|которое|которые|где|когда|потому)\b)", re.I),
    re.compile(r",\s+"),
    re.compile(r"\s+(?=(?:and|but|or|which|while|because|и|а|но|или)\b)", re.I),
    re.compile(r"\s+"),
)


def split_long(sentence: str, limit: int, count: Callable[[str], int]) -> list[str]:
    """The sentence in parts of at most `limit` tokens (by count), split at the best boundary nearest the middle,
    never inside code, a quote or a number. Only a single unbreakable run longer than the limit stays longer
    (the translator then sees it whole rather than cut). The parts joined give the sentence back."""
    if count(sentence) <= limit:
        return [sentence]
    spans = protected_spans(sentence)
    middle = len(sentence) / 2
    for pattern in _SPLITS:
        cuts = [m.end() for m in pattern.finditer(sentence)
                if 0 < m.start() and m.end() < len(sentence)
                and not any(s.start < m.start() < s.end or s.start < m.end() < s.end for s in spans)]
        if cuts:
            cut = min(cuts, key=lambda c: abs(c - middle))
            return split_long(sentence[:cut], limit, count) + split_long(sentence[cut:], limit, count)
    return [sentence]
