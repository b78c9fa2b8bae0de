"""The model's own English behind a translated text. API callers send back the history they were shown, in Russian;
the web maps each turn back to what the model really saw and wrote, so the model sees its own turns, never a
back-translation, and its prompt cache stays valid. Written when a translated answer comes back, kept as long as
the media it is about (MEDIA_TTL_HOURS); a turn not found here is translated ru→en by the worker (a cache miss)."""

from __future__ import annotations

import hashlib
import re

import redis

from common import keys
from common.schemas import Turn

_CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def _key(text: str) -> str:
    return keys.original(hashlib.sha1(text.strip().encode()).hexdigest())


def remember(client: redis.Redis, pairs: dict[str, str], ttl_s: int) -> None:
    """shown text → the model's English, for each pair whose texts differ."""
    pipe = client.pipeline(transaction=False)
    for shown, original in pairs.items():
        if shown and original and shown.strip() != original.strip():
            pipe.set(_key(shown), original, ex=ttl_s)
    pipe.execute()


def recall(client: redis.Redis, turns: list[Turn]) -> list[Turn]:
    """turns with every text the web knows replaced by the model's English; a turn whose texts were all found (or
    had nothing Russian: the model saw them as they are) is marked original — the worker leaves it exactly so."""
    if not turns:
        return turns
    texts = [t for turn in turns for t in (turn.question, turn.answer)]
    found = client.mget([_key(t) for t in texts])
    out = []
    for i, turn in enumerate(turns):
        q, a = found[2 * i], found[2 * i + 1]
        if turn.original:
            out.append(turn)
            continue
        known = all(v is not None or not _CYRILLIC.search(t) for v, t in ((q, turn.question), (a, turn.answer)))
        out.append(Turn(question=q if q is not None else turn.question, answer=a if a is not None else turn.answer,
                        original=known))
    return out
