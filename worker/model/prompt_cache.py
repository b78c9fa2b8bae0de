"""The conversation prompt cache: after a chat job the worker keeps its KV cache (transformers DynamicCache)
with the token ids it covers, one entry per conversation, found by the media (content-addressed path + how it was
processed). A follow-up reuses the longest common token prefix, so neither the vision encoder nor the old turns run
again; another conversation about the same media reuses the media part from a copy, leaving the entry in place.

Bounded in bytes (PROMPT_CACHE_MB), least recently used out first; dropped on «Новый диалог» (by conversation)
and with the media's retention. Any mismatch is a miss, never an error: a full prefill gives the same tokens."""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch


def cache_bytes(cache) -> int:
    if isinstance(getattr(cache, "nbytes", None), int):  # an OpenVINO state copy (worker/model/ov_generation.py)
        return cache.nbytes
    total = 0
    for layer in getattr(cache, "layers", []):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.nelement() * t.element_size()
    return total


def common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(a.shape[0], b.shape[0])
    if n == 0:
        return 0
    diff = (a[:n] != b[:n]).nonzero()
    return int(diff[0]) if diff.numel() else n


def _shallow_copy(cache):
    """A DynamicCache whose layers are new objects over the same key/value tensors: cropping or extending it leaves
    the original as it is."""
    twin = copy.copy(cache)
    if hasattr(cache, "layers"):
        twin.layers = [copy.copy(layer) for layer in cache.layers]
    return twin


@dataclass
class Entry:
    media: str  # the media key (path + processing)
    ids: torch.Tensor  # 1-D token ids the cache covers
    cache: object  # a DynamicCache, or an OpenVINO StateCopy (worker/model/ov_generation.py)
    conversation: str | None = None
    nbytes: int = 0
    created_at: float = field(default_factory=time.time)


@dataclass
class Hit:
    entry: Entry
    reused: int  # prompt tokens taken from the cache


class PromptCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._entries: OrderedDict[int, Entry] = OrderedDict()  # id → entry, least recently used first
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def stats(self) -> tuple[int, int]:
        with self._lock:
            return len(self._entries), sum(e.nbytes for e in self._entries.values())

    def take(self, media: str, ids: torch.Tensor, media_end: int, conversation: str | None = None) -> Hit | None:
        """The entry of this media sharing the longest prefix with ids, cropped to it (the caller extends it and
        stores it back). None unless the prefix covers every media token (media_end). The conversation's own entry
        is taken out; another conversation's stays where it is, for its next turn, and a copy is handed out that
        shares its tensors (extending a DynamicCache concatenates into new ones, never writes into these)."""
        if not self.enabled:
            return None
        with self._lock:
            best, best_n = None, 0
            for key, e in self._entries.items():
                if e.media == media:
                    n = common_prefix(e.ids, ids)
                    if n > best_n or (n == best_n and conversation and e.conversation == conversation):
                        best, best_n = key, n
            # At least one new token must be computed: that step's logits give the first answer token.
            reuse = min(best_n, ids.shape[0] - 1)
            if best is None or reuse < media_end:
                self.misses += 1
                return None
            entry = self._entries[best]
            if entry.conversation is None or entry.conversation == conversation:
                del self._entries[best]
            else:
                self._entries.move_to_end(best)
                entry = Entry(entry.media, entry.ids, _shallow_copy(entry.cache), conversation)
            self.hits += 1
        entry.cache.crop(reuse - entry.cache.get_seq_length())  # a negative count: tokens to remove
        return Hit(entry, reuse)

    def store(self, media: str, ids: torch.Tensor, cache, conversation: str | None = None) -> bool:
        """Keep cache (covering ids) as the newest entry; older ones go while over the byte budget."""
        if not self.enabled:
            return False
        entry = Entry(media, ids.detach().to("cpu").clone(), cache, conversation, cache_bytes(cache))
        if entry.nbytes > self.max_bytes:
            return False
        with self._lock:
            if conversation:  # one entry per conversation: its previous state is superseded
                for key in [k for k, e in self._entries.items() if e.conversation == conversation]:
                    del self._entries[key]
            self._entries[id(entry)] = entry
            total = sum(e.nbytes for e in self._entries.values())
            while total > self.max_bytes and self._entries:
                _, old = self._entries.popitem(last=False)
                total -= old.nbytes
        return True

    def drop(self, conversation: str | None = None, media: str | None = None, older_than: float | None = None) -> int:
        """Forget a conversation's entries, a media's entries, or entries created before older_than."""
        with self._lock:
            gone = [k for k, e in self._entries.items()
                    if (conversation and e.conversation == conversation)
                    or (media and e.media.split("|", 1)[0] == media)
                    or (older_than is not None and e.created_at < older_than)]
            for key in gone:
                del self._entries[key]
        return len(gone)

    def media_paths(self) -> set[str]:
        with self._lock:
            return {e.media.split("|", 1)[0] for e in self._entries.values()}
