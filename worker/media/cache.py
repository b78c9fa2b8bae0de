"""The worker's local copies of stored media (MEDIA_STORE=s3): a bounded LRU folder (WORKER_CACHE_MB), so a
follow-up on the same file reads it from disk instead of the store. Keys are content hashes, so a cached copy is
never stale. With the local store the shared volume is read directly and nothing is copied."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from common.errors import MediaError
from common.schemas import MediaRef
from common.store import MediaStore, _inside

log = logging.getLogger(__name__)


class MediaCache:
    def __init__(self, store: MediaStore, folder: Path, max_bytes: int) -> None:
        self.store, self.folder, self.max_bytes = store, Path(folder), int(max_bytes)
        self._lock = threading.Lock()
        self._files: OrderedDict[str, int] = OrderedDict()  # rel path → size, least recently used first
        self.hits = self.misses = self.evicted = 0
        self._last_ns = 0
        if store.remote:
            self._load()

    def _load(self) -> None:
        """What an earlier run of this worker left here, oldest use first; half-written files are removed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        found = []
        for path in self.folder.rglob("*"):
            if not path.is_file():
                continue
            if path.name.endswith(".part"):
                path.unlink(missing_ok=True)
                continue
            st = path.stat()
            found.append((st.st_mtime_ns, path.relative_to(self.folder).as_posix(), st.st_size))
        for _mtime, rel, size in sorted(found):
            self._files[rel] = size
        self._evict(keep=None)

    @property
    def used_bytes(self) -> int:
        return sum(self._files.values())

    def path(self, ref: MediaRef | str) -> Path:
        """A local path of the media: the shared volume's own file, or the cached copy (fetched on a miss)."""
        rel = ref.path if isinstance(ref, MediaRef) else ref
        if not self.store.remote:
            return self.store.resolve(rel)
        local = _inside(self.folder, self.folder / rel)
        with self._lock:
            if rel in self._files and local.is_file():
                self._files.move_to_end(rel)
                self.hits += 1
                self._touch(local)
                return local
            self._files.pop(rel, None)
        size = self.store.download(rel, local)  # outside the lock: the housekeeping thread may look meanwhile
        with self._lock:
            self._touch(local)
            self.misses += 1
            self._files[rel] = size
            self._evict(keep=rel)
        return local

    def _touch(self, path: Path) -> None:
        """Use order kept in the files' mtimes (it survives a restart); the filesystem clock ticks too coarsely for
        two uses in a row, so the time is set exactly and never goes backwards."""
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        os.utime(path, ns=(self._last_ns, self._last_ns))

    def _evict(self, keep: str | None) -> None:
        """Least recently used copies go until the folder fits (the file a job is about to read stays, even if it
        alone is larger than the budget: it goes with the next miss)."""
        for rel in list(self._files):
            if self.used_bytes <= self.max_bytes:
                break
            if rel == keep:
                continue
            self._files.pop(rel)
            try:
                _inside(self.folder, self.folder / rel).unlink(missing_ok=True)
            except (OSError, MediaError):
                log.warning("cache: could not delete %s", rel, exc_info=True)
            self.evicted += 1

    def forget(self, rel: str) -> None:
        """Drop a copy whose stored original expired."""
        with self._lock:
            if self._files.pop(rel, None) is not None:
                (self.folder / rel).unlink(missing_ok=True)

    def cached(self) -> list[str]:
        with self._lock:
            return list(self._files)


_CACHES: dict[int, MediaCache] = {}


def for_settings(settings) -> MediaCache:
    """The worker process's one cache (per settings object: a test may run several in one process)."""
    from common.store import store_from_settings

    cache = _CACHES.get(id(settings))
    if cache is None:
        budget = int(settings.worker_cache_mb * 2**20)
        cache = MediaCache(store_from_settings(settings), settings.worker_cache_dir, budget)
        _CACHES[id(settings)] = cache
    return cache
