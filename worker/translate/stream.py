"""The answer translated while it streams: the English text so far comes in after every token; each sentence that
has ended is translated once (in the generation thread, between two tokens: on two cores a second thread would
only slow both) and shown; the sentence still being written is shown in English until it ends. A sentence that
runs past the translator's input limit before it ends is translated in parts as it grows (split at a clause, never
cut). What was shown as done is never changed: an API stream has sent it. The final answer continues from there."""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable

from worker.translate.segment import segment, split_long
from worker.translate.text import UnitTranslator

log = logging.getLogger(__name__)


class AnswerStream:
    def __init__(self, units: UnitTranslator, on_text: Callable[[str, int, int], None] | None,
                 stop: threading.Event | None = None) -> None:
        self.units, self.on_text, self.stop = units, on_text, stop
        self.done: dict[str, str] = {}  # English unit → its translation
        self.failed = False
        self.translate_s = 0.0  # time spent translating (the stage's own cost)
        self.lags: list[float] = []  # per unit: from the token that ended it to its translation being handed on
        self._fed: list[tuple[int, float]] = []  # (length of the English so far, when it came)
        self._english = ""  # the English consumed so far (== english[:len(self._english)] of every later text)
        self._out = ""  # its rendering: translated units, kept markup, untranslated units (stopped, failed)
        self._shown = ""

    @property
    def stable(self) -> int:
        """How much of what is shown will not change (the sentences done)."""
        return len(self._out)

    @property
    def shown(self) -> str:
        return self._shown

    def _translate(self, units: list[str]) -> None:
        """Translate the units not done yet; on stop or failure they stay English (rendered as they are)."""
        todo = [u for u in dict.fromkeys(units) if u not in self.done]
        if not todo or self.failed or (self.stop is not None and self.stop.is_set()):
            return
        t0 = time.perf_counter()
        try:
            out = self.units.translate(todo, self.stop)
        except Exception:  # a translation never fails the job (logged; the note says so)
            log.exception("translation failed mid-answer")
            self.failed = True
            return
        finally:
            self.translate_s += time.perf_counter() - t0
        if out is not None:
            self.done.update(zip(todo, out, strict=True))

    def _consume(self, english: str, final: bool) -> list[int]:
        """Translate and render what has ended after the part consumed; returns where each new unit ended."""
        start = len(self._english)
        rest = english[start:]
        line_start = start == 0 or self._english.endswith("\n")
        pieces, upto = segment(rest, final=final, line_start=line_start)
        tail, limit = rest[upto:], self.units.max_tokens
        # An unfinished sentence (one line, not code) already past the input limit: its parts but the last are done.
        if not final and "\n" not in tail and len(tail) > limit and self.units.engine.count(tail) > limit:
            parts = split_long(tail, limit, self.units.engine.count)
            if len(parts) > 1:
                at_line_start = (line_start and upto == 0) or rest[:upto].endswith("\n")
                more, _ = segment("".join(parts[:-1]), final=True, line_start=at_line_start)
                pieces, upto = pieces + more, upto + sum(map(len, parts[:-1]))
        units = [p.text for p in pieces if p.translate]
        self._translate(units)
        ends, pos = [], start
        for p in pieces:
            pos += len(p.text)
            if p.translate:
                ends.append(pos)
            self._out += self.done.get(p.text, p.text) if p.translate else p.text
        self._english = english[: start + upto]
        return ends

    def feed(self, english: str, tokens: int) -> None:
        """The English answer so far (generate()'s streamer callback): show it with every ended sentence
        translated."""
        self._fed.append((len(english), time.perf_counter()))
        if not english.startswith(self._english):  # the streamer never takes text back; be safe if it did
            self._english, self._out = "", ""
        ends = self._consume(english, final=False)
        shown_at = time.perf_counter()
        for end in ends:  # from when the sentence's last character arrived
            i = bisect.bisect_left(self._fed, (end, 0.0))
            self.lags.append(shown_at - self._fed[min(i, len(self._fed) - 1)][1])
        self._shown = self._out + english[len(self._english):]
        if self.on_text is not None:
            self.on_text(self._shown, tokens, self.stable)

    def finish(self, english: str, stopped: bool = False) -> str:
        """The answer to keep: the rest translated and appended to what was shown as done. When stopped (or the
        translator failed: self.failed), the rest stays as the model wrote it. The final clean-up (stripping, a
        collapsed loop) can only shorten the streamed text; if it reaches into what was done, the answer is
        rendered again from the translations already made."""
        lead = self._english[: len(self._english) - len(self._english.lstrip())]
        if lead and not english.startswith(self._english) and english.startswith(self._english[len(lead):]) \
                and self._out.startswith(lead):  # the clean-up stripped the answer's leading space
            self._english, self._out = self._english[len(lead):], self._out[len(lead):]
        if not english.startswith(self._english):
            self._english, self._out = "", ""
        if stopped:
            self.stop = self.stop or threading.Event()
            self.stop.set()
        self._consume(english, final=True)
        return self._out
