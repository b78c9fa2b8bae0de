"""Expiry of old uploads and result files on the shared media volume, on a thread of its own."""

from __future__ import annotations

import logging
import threading

from common.storage import store_from_settings

log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(self, settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> int:
        """Delete uploads and result files older than MEDIA_TTL_HOURS; returns how many went."""
        return store_from_settings(self.settings).cleanup(self.settings.media_ttl_hours * 3600)

    def _loop(self) -> None:
        while True:  # the first tick runs at once: a restarted worker catches up
            try:
                removed = self.tick()
                if removed:
                    log.info("expired media and result files deleted: %d", removed)
            except Exception:
                log.warning("media cleanup failed", exc_info=True)
            if self._stop.wait(self.settings.media_cleanup_interval_s):
                return
