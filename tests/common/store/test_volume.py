import os
import time

import pytest

from common.errors import MediaError
from common.schemas import MediaKind, MediaRef
from common.store import MediaStore, media_kind_for


@pytest.fixture
def store(tmp_path):
    s = MediaStore(tmp_path / "media", tmp_path / "results", max_upload_bytes=1000)
    s.ensure_dirs()
    return s


def test_kinds_by_extension():
    assert media_kind_for("a.JPG") == MediaKind.image
    assert media_kind_for("clip.mp4") == MediaKind.video
    with pytest.raises(MediaError, match="Неподдерживаемый тип файла"):
        media_kind_for("notes.txt")
    with pytest.raises(MediaError, match="без расширения"):
        media_kind_for("README")


def test_save_and_resolve(store, tmp_path):
    src = tmp_path / "photo.PNG"
    src.write_bytes(b"x" * 10)
    ref = store.save_upload(src)
    assert ref.kind == MediaKind.image and ref.path.startswith("uploads/") and ref.path.endswith(".png")
    assert store.resolve(ref).read_bytes() == b"x" * 10


def test_empty_and_too_large_uploads(store, tmp_path):
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="пустой"):
        store.save_upload(empty)
    big = tmp_path / "b.png"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(MediaError, match="слишком большой"):
        store.save_upload(big)


def test_resolve_refuses_escapes(store, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    (store.media_dir / "uploads" / "link.png").symlink_to(secret)
    for rel in ("../secret.txt", str(secret), "uploads/link.png"):
        with pytest.raises(MediaError, match="Доступ запрещён"):
            store.resolve(rel)
    with pytest.raises(MediaError, match="не найден"):
        store.resolve(MediaRef(path="uploads/missing.png", kind="image"))


def test_result_files(store):
    path = store.write_result("Привет\nмир")
    assert path.name.startswith("ocr_result_") and path.suffix == ".txt"
    assert path.read_text(encoding="utf-8") == "Привет\nмир"
    assert path.parent.parent == store.results_dir


def test_uploads_are_named_by_content_and_stored_once(store, tmp_path):
    a, b = tmp_path / "a.PNG", tmp_path / "b.png"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    ref_a, ref_b = store.save_upload(a), store.save_upload(b)
    assert ref_a == ref_b and ref_a.path.endswith(".png")
    other = tmp_path / "c.png"
    other.write_bytes(b"other bytes")
    assert store.save_upload(other).path != ref_a.path
    stored = store.resolve(ref_a)
    os.utime(stored, (1, 1))
    store.save_upload(a)  # uploaded again: its retention clock starts again
    assert stored.stat().st_mtime > 1
    assert not list((store.media_dir / "uploads").glob(".*.part"))


def test_cleanup_removes_only_expired(store, tmp_path):
    old_src, new_src = tmp_path / "a.png", tmp_path / "b.png"
    old_src.write_bytes(b"old")
    new_src.write_bytes(b"new")
    old = store.resolve(store.save_upload(old_src))
    new = store.resolve(store.save_upload(new_src))
    res = store.write_result("t")
    past = time.time() - 7200
    os.utime(old, (past, past))
    os.utime(res, (past, past))
    assert store.cleanup(ttl_seconds=3600) == 2
    assert not old.exists() and not res.exists() and new.exists()
    assert not res.parent.exists()  # its empty folder went too
