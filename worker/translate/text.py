"""Translating text a unit at a time, so that what must survive does: over-long units are split (never cut), parts
with nothing to translate are kept, and a part whose code, quotes, numbers or URLs did not come through the whole
translation is translated again between them, with them kept as they are."""

from __future__ import annotations

import re
import threading
from typing import Protocol

from worker.translate import protect
from worker.translate.segment import segment, split_long

SCRIPTS = {"en": re.compile(r"[A-Za-z]"), "ru": re.compile(r"[А-Яа-яЁё]")}


def has_cyrillic(text: str) -> bool:
    return bool(SCRIPTS["ru"].search(text))


class Engine(Protocol):
    def count(self, text: str) -> int: ...

    def translate(self, texts: list[str], stop: threading.Event | None = None) -> list[str] | None: ...


def _outside_spans(text: str) -> str:
    return "".join(part for part, kept in protect.split_at_spans(text) if not kept)


def _edges(text: str) -> tuple[str, str, str]:
    core = text.strip()
    if not core:
        return text, "", ""
    start = text.index(core)
    return text[:start], core, text[start + len(core) :]


class UnitTranslator:
    """translate(units) for one direction; source = the language translated from ("en" or "ru")."""

    def __init__(self, engine: Engine, source: str, max_tokens: int) -> None:
        self.engine, self.source, self.max_tokens = engine, source, max_tokens

    def needs(self, text: str) -> bool:
        """Whether text has anything to translate: letters of the source script outside the protected spans."""
        return bool(SCRIPTS[self.source].search(_outside_spans(text)))

    def translate(self, units: list[str], stop: threading.Event | None = None) -> list[str] | None:
        """Each unit translated (kept when there is nothing to translate); None if stopped."""
        plans = []  # per unit: [(lead, core or None, trail)], core None when kept
        todo: list[str] = []
        for unit in units:
            parts = []
            for part in split_long(unit, self.max_tokens, self.engine.count):
                lead, core, trail = _edges(part)
                if core and self.needs(core):
                    todo.append(core)
                    parts.append((lead, core, trail))
                else:
                    parts.append((part, None, ""))
            plans.append(parts)
        done = self._with_spans(todo, stop)
        if done is None:
            return None
        out = []
        for parts in plans:
            out.append("".join(lead + (done[core] if core is not None else "") + trail for lead, core, trail in parts))
        return out

    def _with_spans(self, texts: list[str], stop) -> dict[str, str] | None:
        """Whole translations of texts; those that lost a protected span, again between the spans."""
        texts = list(dict.fromkeys(texts))
        if not texts:
            return {}
        whole = self.engine.translate(texts, stop)
        if whole is None:
            return None
        result = dict(zip(texts, whole, strict=True))
        redo = [t for t in texts if not all(protect.survived(s.text(t), s.kind, result[t])
                                            for s in protect.protected_spans(t))]
        if not redo:
            return result
        fragments = {}
        for t in redo:
            for part, kept in protect.split_at_spans(t):
                _, core, _ = _edges(part)
                if not kept and core and self.needs(core):
                    fragments[core] = None
        again = self.engine.translate(list(fragments), stop) if fragments else []
        if again is None:
            return None
        fragments = dict(zip(fragments, again, strict=True))
        for t in redo:
            pieces = []
            for part, kept in protect.split_at_spans(t):
                lead, core, trail = _edges(part)
                pieces.append(part if kept or core not in fragments else lead + fragments[core] + trail)
            result[t] = "".join(pieces)
        return result

    def translate_text(self, text: str, stop: threading.Event | None = None) -> str | None:
        """A whole text (a question, a history turn, an answer): sentence by sentence, markup kept."""
        pieces, _ = segment(text, final=True)
        units = [p.text for p in pieces if p.translate]
        done = self.translate(units, stop)
        if done is None:
            return None
        it = iter(done)
        return "".join(next(it) if p.translate else p.text for p in pieces)
