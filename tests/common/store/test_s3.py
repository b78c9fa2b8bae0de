"""The S3 media store against a real S3-compatible server (SeaweedFS `weed mini`, started by the fixture):
content-hash keys, no half objects, missing objects, credentials, outages, a frozen and a slow store, expiry."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from common.errors import MediaError, StoreDenied, StoreUnavailable
from common.schemas import MediaKind
from common.settings import Settings
from common.store import MediaStore, store_from_settings
from common.store.s3 import S3Store
from scripts.s3server import S3Server
from tests.conftest import running_s3


def s3_settings(server: S3Server, tmp_path, **over) -> Settings:
    values = dict(media_store="s3", s3_endpoint_url=server.endpoint, s3_bucket=server.bucket,
                  s3_prefix=f"t{uuid.uuid4().hex[:8]}/", media_dir=tmp_path / "media", results_dir=tmp_path / "res",
                  s3_timeout_s=2, s3_outage_grace_s=0, max_upload_mb=50)
    values.update(over)
    return Settings(_env_file=None, **values)


@pytest.fixture
def creds(s3_server, monkeypatch):
    for k, v in s3_server.settings_env().items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)


@pytest.fixture
def store(s3_server, tmp_path, creds) -> S3Store:
    s = S3Store(s3_settings(s3_server, tmp_path))
    s.ensure_dirs()
    return s


def test_store_by_setting(s3_server, tmp_path, creds):
    local = Settings(_env_file=None, media_dir=tmp_path / "m", results_dir=tmp_path / "r")
    assert type(store_from_settings(local)) is MediaStore and not store_from_settings(local).remote
    s = s3_settings(s3_server, tmp_path)
    assert isinstance(store_from_settings(s), S3Store) and store_from_settings(s) is store_from_settings(s)


def test_upload_by_content_hash_once(store, s3_server, tmp_path):
    data = b"\x89PNG" + bytes(range(256)) * 40
    src = tmp_path / "Photo.PNG"
    src.write_bytes(data)
    ref = store.save_upload(src)
    assert ref.kind == MediaKind.image
    assert ref.path == f"uploads/{hashlib.sha256(data).hexdigest()[:32]}.png"
    raw = s3_server.client()
    head = raw.head_object(Bucket=s3_server.bucket, Key=store.prefix + ref.path)
    assert head["ContentLength"] == len(data)
    time.sleep(1.1)  # LastModified has a one-second resolution
    again = tmp_path / "copy.png"
    again.write_bytes(data)
    assert store.save_upload(again) == ref
    listed = raw.list_objects_v2(Bucket=s3_server.bucket, Prefix=store.prefix + "uploads/")["Contents"]
    assert [o["Key"] for o in listed] == [store.prefix + ref.path]  # stored once
    assert listed[0]["LastModified"] > head["LastModified"]  # and its age started again
    out = tmp_path / "back" / "x.png"
    assert store.download(ref.path, out) == len(data) and out.read_bytes() == data
    assert [p.name for p in out.parent.iterdir()] == ["x.png"]  # no partial file beside it
    assert b"".join(store.stream(ref.path)) == data


def test_bad_uploads_never_reach_the_store(store, tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(MediaError, match="пустой"):
        store.save_upload(tmp_path / "e.png")
    (tmp_path / "n.txt").write_bytes(b"x")
    with pytest.raises(MediaError, match="Неподдерживаемый"):
        store.save_upload(tmp_path / "n.txt")
    assert not store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix).get("Contents")


def test_missing_object_names_the_cause(store, tmp_path):
    with pytest.raises(MediaError) as info:
        store.download("uploads/0123456789abcdef.png", tmp_path / "x.png")
    msg = info.value.message
    assert "Файл не найден в хранилище" in msg and "uploads/0123456789abcdef.png" in msg and store.bucket in msg
    assert not (tmp_path / "x.png").exists() and not list(tmp_path.glob(".*part"))


def test_paths_outside_are_refused(store, tmp_path):
    for bad in ("../etc/passwd", "/abs.png", "uploads/../../x.png"):
        with pytest.raises(MediaError, match="Доступ запрещён"):
            store.download(bad, tmp_path / "x")
    with pytest.raises(MediaError, match="Доступ запрещён"):
        store.result_path("../../etc/passwd")


def test_wrong_credentials_are_refused_in_russian(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + s3_server.secret_key)
    s = S3Store(s3_settings(s3_server, tmp_path, s3_outage_grace_s=30))
    t0 = time.monotonic()
    with pytest.raises(StoreDenied, match=r"отказало в доступе.*AWS_SECRET_ACCESS_KEY"):
        s.ensure_bucket()
    assert time.monotonic() - t0 < 5  # an operator's mistake is not waited out as an outage


def test_credentials_from_secret_files(s3_server, tmp_path, monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "id").write_text(s3_server.access_key + "\n")
    (tmp_path / "secret").write_text(s3_server.secret_key + "\n")
    s = S3Store(s3_settings(s3_server, tmp_path, aws_access_key_id_file=tmp_path / "id",
                            aws_secret_access_key_file=tmp_path / "secret"))
    s.ensure_bucket()
    assert s.exists("uploads/none.png") is False


def test_results_round_trip(store, tmp_path):
    path = store.write_result("строка 1\nстрока 2")
    rel = path.relative_to(store.results_dir).as_posix()
    path.unlink()  # another web replica: nothing on its disk
    again = store.result_path(rel)
    assert again.read_text(encoding="utf-8") == "строка 1\nстрока 2" and again.name.startswith("ocr_result_")
    thumbs = []
    for i in range(5):
        (tmp_path / f"{i:02d}.jpg").write_bytes(b"\xff\xd8jpeg" + bytes([i]))
        thumbs.append((tmp_path / f"{i:02d}.jpg", f"frames/job1/{i:02d}.jpg"))
    store.put_results(thumbs)
    for path, rel in thumbs:
        head = store.client.head_object(Bucket=store.bucket, Key=store.prefix + "results/" + rel)
        assert head["ContentType"] == "image/jpeg" and head["ContentLength"] == path.stat().st_size


def test_partial_uploads_are_never_visible_and_expire(store, tmp_path):
    key = store.prefix + "uploads/half.mp4"
    up = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)
    store.client.upload_part(Bucket=store.bucket, Key=key, UploadId=up["UploadId"], PartNumber=1,
                             Body=b"x" * (5 << 20))
    assert not store.exists("uploads/half.mp4")  # a cut upload: parts, but no object
    src = tmp_path / "old.png"
    src.write_bytes(b"old")
    ref = store.save_upload(src)
    store.write_result("text")
    assert store.cleanup(3600) == 0 and store.exists(ref.path)  # nothing is old yet
    removed = store.cleanup(3600, now=time.time() + 7200)
    assert removed >= 2 and not store.exists(ref.path)
    assert not store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix).get("Contents")
    left = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads", [])
    assert key not in [u["Key"] for u in left]  # the abandoned parts went too


# ------------------------------------------------------------------ faults on a server of their own


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    with running_s3(tmp_path_factory, "s3-faults") as server:
        yield server


@pytest.fixture
def own_store(own_server, tmp_path, monkeypatch):
    for k, v in own_server.settings_env().items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    if not own_server.alive:
        own_server.start()
    own_server.thaw()
    s = S3Store(s3_settings(own_server, tmp_path, s3_outage_grace_s=30))
    s.ensure_bucket()
    return s


def test_outage_within_grace_is_waited_out(own_server, own_store, tmp_path):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"jpeg" * 1000)
    ref = own_store.save_upload(src)
    back = own_server.outage(4)
    t0 = time.monotonic()
    assert own_store.download(ref.path, tmp_path / "got.jpg") == 4000  # retried until the server was back
    assert time.monotonic() - t0 >= 3
    back.join()


def test_store_gone_for_good_fails_in_russian_after_the_grace(own_server, own_store, tmp_path):
    own_store.grace_s = 3
    own_server.stop()
    src = tmp_path / "b.jpg"
    src.write_bytes(b"x")
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match="Хранилище файлов недоступно") as info:
        own_store.save_upload(src)
    assert 2 <= time.monotonic() - t0 < 15 and "нет соединения" in info.value.message
    assert own_server.endpoint not in info.value.message  # no address of ours in a page
    assert info.value.code == "store_unavailable"


def test_frozen_store_times_out(own_server, own_store, tmp_path):
    own_store.grace_s = 0
    own_server.freeze()
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"недоступно \(не отвечает\)"):
            own_store.exists("uploads/x.png")
        # s3_timeout_s 2 s per attempt, two attempts (botocore's standard retry)
        assert time.monotonic() - t0 < 10
    finally:
        own_server.thaw()


def test_slow_store_still_serves(own_server, own_store, tmp_path):
    slow = S3Store(s3_settings(own_server, tmp_path, s3_endpoint_url=own_server.slow_endpoint(0.05),
                               s3_prefix=own_store.prefix))
    src = tmp_path / "c.png"
    src.write_bytes(b"png" * 5000)
    t0 = time.monotonic()
    ref = slow.save_upload(src)
    assert slow.download(ref.path, tmp_path / "c2.png") == 15000
    assert time.monotonic() - t0 >= 0.2  # the latency was really there


def test_local_copies_expire_on_the_web_side(store, monkeypatch):
    import os

    import common.store.s3 as mod

    path = store.write_result("old")
    rel = path.relative_to(store.results_dir).as_posix()
    old = time.time() - store.ttl_s - 60
    os.utime(path, (old, old))
    monkeypatch.setattr(mod, "SWEEP_S", 0)
    store.write_result("new")  # its sweep removes the expired copy (no worker ever sees this disk)
    assert not path.exists() and store.exists("results/" + rel)  # the stored one is the workers' to expire


def test_a_failed_upload_is_named_not_raised_raw(s3_server, tmp_path, monkeypatch):
    """upload_file wraps the request's error (S3UploadFailedError): it is mapped like any other (here: bad keys)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + s3_server.secret_key)
    s = S3Store(s3_settings(s3_server, tmp_path, s3_outage_grace_s=30))
    thumb = tmp_path / "00.jpg"
    thumb.write_bytes(b"\xff\xd8")
    t0 = time.monotonic()
    with pytest.raises(StoreDenied, match="отказало в доступе"):
        s.put_result(thumb, "frames/j/00.jpg")
    assert time.monotonic() - t0 < 5
