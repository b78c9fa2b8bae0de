"""MEDIA_STORE=local: the shared media volume (uploads in, result files out, nothing read outside its directory)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import datetime
from pathlib import Path

from common import fmt
from common.errors import MediaError
from common.schemas import MediaKind, MediaRef

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".webm", ".mkv"}
SUPPORTED_HINT = "изображения (JPG, PNG, WebP, BMP, GIF, TIFF) и видео (MP4, MOV, WebM, MKV)"
UNREADABLE_UPLOAD = "Не удалось прочитать загруженный файл. Загрузите его заново."
CHUNK = 1 << 20


EMPTY_FILE = "Файл пустой (0 байт). Загрузите другой файл."


def unsupported(ext: str) -> str:
    shown = f"«{ext}»" if ext else "без расширения"
    return f"Неподдерживаемый тип файла ({shown}). Поддерживаются {SUPPORTED_HINT}."


def too_large(limit_bytes: int, size: float | None = None) -> str:
    """The one wording of «file too large», with the file's size when it is known."""
    if size is None:
        return f"Файл слишком большой: можно загружать файлы до {fmt.megabytes(limit_bytes)}."
    return f"Файл слишком большой: {fmt.megabytes(size)} при ограничении {fmt.megabytes(limit_bytes)}."


def media_kind_for(name: str) -> MediaKind:
    ext = Path(name).suffix.lower()
    if ext in IMAGE_EXTS:
        return MediaKind.image
    if ext in VIDEO_EXTS:
        return MediaKind.video
    raise MediaError(unsupported(ext))


def _inside(base: Path, candidate: Path) -> Path:
    base = base.resolve()
    resolved = candidate.resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise MediaError("Доступ запрещён: файл находится вне разрешённого каталога.")
    return resolved


class MediaStore:
    """Uploads live under MEDIA_DIR/uploads, result files under RESULTS_DIR/<id>/ (MEDIA_STORE=local: one volume
    that web and workers all mount). common.store.s3.S3Store is the same surface over an object store."""

    remote = False  # True: files live elsewhere; workers fetch them (worker/media/cache.py)

    def __init__(self, media_dir: Path, results_dir: Path, max_upload_bytes: int) -> None:
        self.media_dir = Path(media_dir)
        self.results_dir = Path(results_dir)
        self.max_upload_bytes = max_upload_bytes

    def ensure_dirs(self) -> None:
        (self.media_dir / "uploads").mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)

    def check_upload(self, src: Path, name: str | None = None) -> MediaKind:
        kind = media_kind_for(name or src.name)
        try:
            size = src.stat().st_size
        except OSError as exc:
            raise MediaError(UNREADABLE_UPLOAD) from exc
        if size == 0:
            raise MediaError(EMPTY_FILE)
        if size > self.max_upload_bytes:
            raise MediaError(too_large(self.max_upload_bytes, size))
        return kind

    def save_upload(self, src: Path, name: str | None = None) -> MediaRef:
        """Copy an uploaded file into the media volume, named by its content (uploads/<sha256>.<ext>), and
        return its reference. The same file uploaded again is stored once; its age starts again."""
        src = Path(src)
        kind = self.check_upload(src, name)
        self.ensure_dirs()
        tmp = self.media_dir / "uploads" / f".{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(CHUNK):
                    digest.update(chunk)
                    fout.write(chunk)
            rel = f"uploads/{digest.hexdigest()[:32]}{Path(name or src.name).suffix.lower()}"
            dst = self.media_dir / rel
            if dst.is_file():
                os.utime(dst)  # still in use: the retention clock starts again
                tmp.unlink()
            else:
                os.replace(tmp, dst)  # workers never see a half-written file
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise MediaError(UNREADABLE_UPLOAD) from exc
        return MediaRef(path=rel, kind=kind)

    def resolve(self, ref: MediaRef | str) -> Path:
        rel = ref.path if isinstance(ref, MediaRef) else ref
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise MediaError("Доступ запрещён: файл находится вне разрешённого каталога.")
        path = _inside(self.media_dir, self.media_dir / rel)
        if not path.is_file():
            raise MediaError("Файл не найден: возможно, он удалён по сроку хранения. Загрузите его заново.")
        return path

    def remove(self, ref: MediaRef) -> bool:
        """Delete a stored upload the worker refused for what it is (unreadable, too large): it would be refused again
        for anyone, so it need not wait for MEDIA_TTL_HOURS. True if it was there."""
        try:
            path = self.resolve(ref)
        except MediaError:
            return False
        path.unlink(missing_ok=True)
        return True

    def exists(self, rel: str) -> bool:
        try:
            return self.resolve(rel).is_file()
        except MediaError:
            return False

    def put_result(self, path: Path, rel: str, grace_s: float | None = None) -> None:
        """A file the worker made, already in RESULTS_DIR/<rel> on the shared volume: nothing to copy."""
        if _inside(self.results_dir, self.results_dir / rel) != Path(path).resolve():
            raise MediaError("Доступ запрещён: файл находится вне разрешённого каталога.")

    def put_results(self, items: list[tuple[Path, str]], grace_s: float | None = None) -> None:
        for path, rel in items:
            self.put_result(path, rel, grace_s)

    def result_path(self, rel: str, grace_s: float | None = None) -> Path:
        """A result file (RESULTS_DIR/<rel>) as a local path."""
        path = _inside(self.results_dir, self.results_dir / rel)
        if not path.is_file():
            raise MediaError("Файл не найден: возможно, он удалён по сроку хранения.")
        return path

    def write_result(self, text: str, prefix: str = "ocr_result") -> Path:
        """Write a UTF-8 text result as RESULTS_DIR/<random>/<prefix>_<YYYYMMDD_HHMMSS>.txt."""
        folder = self.results_dir / uuid.uuid4().hex
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prefix}_{datetime.now().strftime('%Y%m%d_%H%M%S')}.txt"
        path.write_text(text, encoding="utf-8")
        return path

    def cleanup(self, ttl_seconds: float, now: float | None = None) -> int:
        """Delete uploads and result files older than ttl_seconds; returns how many went."""
        cutoff = (now if now is not None else time.time()) - ttl_seconds
        removed = 0
        for root in (self.media_dir / "uploads", self.results_dir):
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                try:
                    if path.is_symlink() or path.is_file():
                        if path.lstat().st_mtime < cutoff:
                            path.unlink()
                            removed += 1
                    elif path.is_dir() and not any(path.iterdir()):
                        path.rmdir()
                except OSError:
                    continue  # a concurrent cleanup got there first
        return removed
