"""The worker's housekeeping thread: expiry of old uploads and result files (shared media volume or S3 store), and the
prompt cache's upkeep (entries of a reset conversation, of expired or deleted media)."""

from __future__ import annotations

import logging
import threading
import time

from common import keys
from common.store import store_from_settings
from worker.media import cache as media_cache

log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(self, settings, redis_client=None, runtime=None) -> None:
        self.settings, self.redis, self.runtime = settings, redis_client, runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)
        self._drops_id: str | None = None  # the last reset seen; None: resolve "now" on the first tick
        self._last_cleanup = float("-inf")  # the first tick cleans up: a restarted worker catches up

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> int:
        """Delete uploads and result files older than MEDIA_TTL_HOURS (on the volume or in the store); returns how
        many went. What this worker keeps of an expired file goes too: its downloaded copy, its prompt cache."""
        store = store_from_settings(self.settings)
        removed = store.cleanup(self.settings.media_ttl_hours * 3600)
        if store.remote:
            copies = media_cache.for_settings(self.settings)
            for rel in copies.cached():
                if not store.exists(rel):
                    copies.forget(rel)
        cache = getattr(self.runtime, "cache", None)
        if cache is not None:
            gone = [m for m in cache.media_paths() if not store.exists(m)]
            for media in gone:
                cache.drop(media=media)
            cache.drop(older_than=time.time() - self.settings.media_ttl_hours * 3600)
        return removed

    def forget_reset_conversations(self) -> int:
        """«Новый диалог» anywhere: drop that conversation's prompt cache here."""
        cache = getattr(self.runtime, "cache", None)
        if self.redis is None or cache is None:
            return 0
        if self._drops_id is None:  # resets from before this worker started concern no cache of ours
            last = self.redis.xrevrange(keys.CACHE_DROPS, count=1)
            self._drops_id = last[0][0] if last else "0-0"
        dropped = 0
        for _key, entries in self.redis.xread({keys.CACHE_DROPS: self._drops_id}, count=1000) or []:
            for entry_id, fields in entries:
                self._drops_id = entry_id
                dropped += cache.drop(conversation=fields.get("conversation") or None)
        return dropped

    def _loop(self) -> None:
        while True:
            try:
                self.forget_reset_conversations()
                if time.monotonic() - self._last_cleanup >= self.settings.media_cleanup_interval_s:
                    self._last_cleanup = time.monotonic()
                    removed = self.tick()
                    if removed:
                        log.info("expired media and result files deleted: %d", removed)
            except Exception:
                log.warning("housekeeping tick failed", exc_info=True)
            if self._stop.wait(self.settings.worker_heartbeat_s):
                return
