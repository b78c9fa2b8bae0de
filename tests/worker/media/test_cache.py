"""The worker's bounded download cache over a real S3 server: a follow-up reads the local copy, the folder stays
within WORKER_CACHE_MB (least recently used out), a restart keeps the copies, the local store copies nothing."""

from __future__ import annotations

import os

import pytest

from common.store import MediaStore
from common.store.s3 import S3Store
from tests.common.store.test_s3 import s3_settings
from worker.media.cache import MediaCache

MB = 1 << 20


@pytest.fixture
def store(s3_server, tmp_path, monkeypatch) -> S3Store:
    for k, v in s3_server.settings_env().items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    s = S3Store(s3_settings(s3_server, tmp_path))
    s.ensure_dirs()
    return s


def upload(store, tmp_path, name: str, size: int) -> str:
    src = tmp_path / name
    src.write_bytes(os.urandom(size))
    return store.save_upload(src).path


def test_follow_up_is_not_downloaded_again(store, tmp_path):
    rel = upload(store, tmp_path, "a.png", 300_000)
    cache = MediaCache(store, tmp_path / "cache", 10 * MB)
    first = cache.path(rel)
    assert first.read_bytes() == (tmp_path / "a.png").read_bytes()
    assert (cache.hits, cache.misses) == (0, 1)
    store.client.delete_object(Bucket=store.bucket, Key=store.key(rel))  # the store no longer has it…
    assert cache.path(rel) == first and (cache.hits, cache.misses) == (1, 1)  # …and the copy still answers


def test_bounded_least_recently_used_first(store, tmp_path):
    a, b, c = (upload(store, tmp_path, f"{n}.mp4", 400_000) for n in "abc")
    cache = MediaCache(store, tmp_path / "cache", 1 * MB)  # room for two of the three
    cache.path(a)
    cache.path(b)
    cache.path(a)  # a is now the most recently used
    cache.path(c)  # b goes
    assert set(cache.cached()) == {a, c} and cache.evicted == 1
    assert cache.used_bytes <= 1 * MB
    on_disk = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert on_disk == cache.used_bytes
    big = upload(store, tmp_path, "big.mp4", 1_500_000)  # larger than the whole budget: kept for its job
    assert cache.path(big).stat().st_size == 1_500_000 and cache.cached() == [big]


def test_a_restarted_worker_keeps_its_copies_in_order(store, tmp_path):
    a, b = (upload(store, tmp_path, f"{n}.png", 100_000) for n in "ab")
    first = MediaCache(store, tmp_path / "cache", 10 * MB)
    first.path(a)
    first.path(b)
    first.path(a)
    (tmp_path / "cache" / "uploads" / ".x.part").write_bytes(b"half")  # a download cut by a crash
    again = MediaCache(store, tmp_path / "cache", 10 * MB)
    assert again.cached() == [b, a] and not list((tmp_path / "cache").rglob("*.part"))
    again.path(a)
    assert (again.hits, again.misses) == (1, 0)
    smaller = MediaCache(store, tmp_path / "cache", 150_000)  # WORKER_CACHE_MB lowered across a restart
    assert smaller.cached() == [a]


def test_local_store_is_read_in_place(tmp_path):
    local = MediaStore(tmp_path / "media", tmp_path / "results", 10 * MB)
    local.ensure_dirs()
    src = tmp_path / "x.png"
    src.write_bytes(b"png")
    ref = local.save_upload(src)
    cache = MediaCache(local, tmp_path / "cache", MB)
    assert cache.path(ref) == (tmp_path / "media" / ref.path).resolve()
    assert not (tmp_path / "cache").exists() and cache.misses == 0


class PromptCacheProbe:
    """What Housekeeping asks of the prompt cache (worker.model.prompt_cache.PromptCache): its media, what it drops."""

    def __init__(self, media: set[str]) -> None:
        self.media, self.dropped = set(media), []

    def media_paths(self) -> set[str]:
        return set(self.media)

    def drop(self, conversation=None, media=None, older_than=None) -> int:
        if media is not None:
            self.dropped.append(media)
            self.media.discard(media)
        return 0


def test_housekeeping_keeps_what_the_store_has_and_forgets_what_expired(s3_server, store, tmp_path):
    from types import SimpleNamespace

    from tests.common.store.test_s3 import s3_settings
    from worker.job.housekeeping import Housekeeping
    from worker.media import cache as media_cache

    settings = s3_settings(s3_server, tmp_path, s3_prefix=store.prefix, worker_cache_dir=tmp_path / "wcache")
    a, b = (upload(store, tmp_path, f"{n}.png", 50_000) for n in "ab")
    copies = media_cache.for_settings(settings)
    copies.path(a)
    copies.path(b)
    store.client.delete_object(Bucket=store.bucket, Key=store.key(b))  # expired (another worker's sweep)
    prompts = PromptCacheProbe({a, b})
    Housekeeping(settings, runtime=SimpleNamespace(cache=prompts)).tick()
    assert copies.cached() == [a] and not (tmp_path / "wcache" / b).exists()
    assert prompts.dropped == [b]  # a stored file keeps its prompt cache (its path is on no local disk)
