"""Media in an S3-compatible object store (MEDIA_STORE=s3): the same keys as the local volume (uploads/<sha256>.<ext>,
results/...), so web and workers on different hosts share only Redis and the store. boto3 does the protocol;
this module adds content-hash keys, Russian errors, an outage grace and expiry."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from common.errors import MediaError, StoreDenied, StoreUnavailable, UserError
from common.schemas import MediaRef
from common.store.volume import CHUNK, UNREADABLE_UPLOAD, MediaStore, _inside

log = logging.getLogger(__name__)

RESULTS = "results/"
SWEEP_S = 600  # how often result_path / write_result expire the local copies
MULTIPART_MB = 8  # larger uploads go in parts; the object appears only when the last part is committed


def unavailable(cause: str) -> StoreUnavailable:
    """The user's message: the cause in words, no address of ours (the log has the endpoint and the exception)."""
    return StoreUnavailable(
        f"Хранилище файлов недоступно ({cause}): файл нельзя ни сохранить, ни прочитать. Повторите запрос, когда "
        "оно вернётся.")


def missing(bucket: str, key: str) -> MediaError:
    return MediaError(
        f"Файл не найден в хранилище: объекта «{key}» нет в бакете «{bucket}» — возможно, он удалён по сроку "
        "хранения (MEDIA_TTL_HOURS). Загрузите файл заново.")


def _read_secret(path: Path | None) -> str | None:
    return Path(path).read_text(encoding="utf-8").strip() if path else None


class S3Store(MediaStore):
    """The store's surface as the local MediaStore has it (check_upload, save_upload, write_result, cleanup), plus
    what a remote store needs: download, put_result, exists, stream. Local folders hold only temporary files."""

    remote = True

    def __init__(self, settings, client=None) -> None:
        super().__init__(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.endpoint = settings.s3_endpoint_url or "AWS S3"
        self.grace_s = settings.s3_outage_grace_s
        self.create_bucket = settings.s3_create_bucket
        self.ttl_s = settings.media_ttl_hours * 3600
        self._swept = time.monotonic()
        self.client = client or self._client(settings)

    @staticmethod
    def _client(settings):
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=settings.s3_timeout_s, read_timeout=settings.s3_timeout_s,
            retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"},
            signature_version="s3v4",
        )
        key_id = _read_secret(settings.aws_access_key_id_file)
        secret = _read_secret(settings.aws_secret_access_key_file)
        session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret)
        return session.client(
            "s3", endpoint_url=settings.s3_endpoint_url or None, config=config,
            region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        )

    # ------------------------------------------------------------ keys and errors

    def key(self, rel: str) -> str:
        """The object key of a path relative to MEDIA_DIR (uploads/...) or, with results/, to RESULTS_DIR."""
        if rel.startswith(("/", "\\")) or ".." in rel.replace("\\", "/").split("/") or "\x00" in rel:
            raise MediaError("Доступ запрещён: файл находится вне разрешённого каталога.")
        return f"{self.prefix}{rel}"

    def _error(self, exc: Exception, key: str | None = None) -> UserError:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import ClientError

        if isinstance(exc, S3UploadFailedError):  # upload_file wraps the request's own error
            inner = exc.__cause__ or exc.__context__
            return self._error(inner, key) if inner is not None else unavailable("сбой загрузки")

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in ("NoSuchKey", "404", "NotFound") and key is not None:
                return missing(self.bucket, key)
            if code == "NoSuchBucket":
                return StoreDenied(f"В хранилище файлов нет бакета «{self.bucket}»: проверьте S3_BUCKET.")
            if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StoreDenied(
                    f"Хранилище файлов отказало в доступе к бакету «{self.bucket}» ({code or status}): "
                    "проверьте ключи AWS_ACCESS_KEY_ID и AWS_SECRET_ACCESS_KEY.")
            return unavailable(f"ответ {status or code}")
        from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

        if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | TimeoutError):
            return unavailable("не отвечает")
        return unavailable("нет соединения")

    def _call(self, what: str, fn: Callable, key: str | None = None, grace_s: float | None = None):
        """fn() with the outage grace: an unavailable store is retried (1, 2, 4… s apart) until grace_s has passed;
        every other failure is raised at once as a UserError."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + (self.grace_s if grace_s is None else grace_s)
        pause = 1.0
        while True:
            try:
                return fn()
            except (BotoCoreError, ClientError, S3UploadFailedError, OSError) as exc:
                if not isinstance(exc, BotoCoreError | ClientError | S3UploadFailedError | ConnectionError
                                  | TimeoutError):
                    raise  # a local file's error, not the store's
                err = self._error(exc, key)
                left = deadline - time.monotonic()
                if not isinstance(err, StoreUnavailable) or left <= 0:
                    log.warning("store %s %s %s: %s", self.endpoint, what, key or "", exc)
                    raise err from exc
                log.info("store %s %s %s: %s; retrying in %.1f s", self.endpoint, what, key or "", exc,
                         min(pause, left))
                time.sleep(min(pause, left))  # the last try falls on the deadline itself
                pause = min(pause * 2, 8.0)

    # ------------------------------------------------------------ setup

    def ensure_dirs(self) -> None:
        super().ensure_dirs()
        self.ensure_bucket()

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        def check() -> None:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
                if status != 404 or not self.create_bucket:
                    raise
                self.client.create_bucket(Bucket=self.bucket)
                log.info("bucket %s created on %s", self.bucket, self.endpoint)

        self._call("bucket", check)

    # ------------------------------------------------------------ objects

    def exists(self, rel: str) -> bool:
        from botocore.exceptions import ClientError

        key = self.key(rel)

        def head() -> bool:
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
                return True
            except ClientError as exc:
                if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) == 404:
                    return False
                raise

        return self._call("head", head, key)

    def remove(self, ref: MediaRef) -> bool:
        """The stored object of a refused upload, deleted at once (see MediaStore.remove). True if it was there."""
        if not self.exists(ref.path):
            return False
        key = self.key(ref.path)
        self._call("delete", lambda: self.client.delete_object(Bucket=self.bucket, Key=key), key)
        return True

    def _put(self, src: Path, key: str, grace_s: float | None = None, content_type: str | None = None) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=MULTIPART_MB << 20, multipart_chunksize=MULTIPART_MB << 20,
                                max_concurrency=4)
        extra = {"ContentType": content_type} if content_type else None
        self._call("put", lambda: self.client.upload_file(str(src), self.bucket, key, Config=config,
                                                          ExtraArgs=extra), key, grace_s)

    def save_upload(self, src: Path, name: str | None = None, grace_s: float | None = None) -> MediaRef:
        """Put an upload under its content hash (uploads/<sha256>.<ext>). The same file again is stored once; its
        age starts again (copied onto itself). A failed or cut upload leaves no object behind."""
        src = Path(src)
        kind = self.check_upload(src, name)
        digest = hashlib.sha256()
        try:
            with open(src, "rb") as fin:
                while chunk := fin.read(CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise MediaError(UNREADABLE_UPLOAD) from exc
        rel = f"uploads/{digest.hexdigest()[:32]}{Path(name or src.name).suffix.lower()}"
        key = self.key(rel)
        if self.exists(rel):
            self._call("touch", lambda: self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE"), key, grace_s)
        else:
            self._put(src, key, grace_s)
        return MediaRef(path=rel, kind=kind)

    def download(self, rel: str, dest: Path, grace_s: float | None = None) -> int:
        """Copy the object into dest (written beside it, then renamed: never a half file); returns its size."""
        key = self.key(rel)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")

        def get() -> int:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            size = 0
            try:
                with open(tmp, "wb") as out:
                    for chunk in body.iter_chunks(CHUNK):
                        out.write(chunk)
                        size += len(chunk)
            finally:
                body.close()
            os.replace(tmp, dest)
            return size

        try:
            return self._call("get", get, key, grace_s)
        finally:
            tmp.unlink(missing_ok=True)

    def stream(self, rel: str) -> Iterator[bytes]:
        """The object's bytes in chunks, for an HTTP response (the bucket itself is never shown to a browser)."""
        body = self._call("get", lambda: self.client.get_object(Bucket=self.bucket, Key=self.key(rel))["Body"],
                          self.key(rel))
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def put_result(self, path: Path, rel: str, grace_s: float | None = None) -> None:
        """A file the worker made (frame thumbnail…) under results/<rel>."""
        ctype = "image/jpeg" if rel.endswith(".jpg") else "text/plain; charset=utf-8" if rel.endswith(".txt") else None
        self._put(Path(path), self.key(RESULTS + rel), grace_s, ctype)

    def put_results(self, items: list[tuple[Path, str]], grace_s: float | None = None) -> None:
        """Several result files at once (a video's frame thumbnails): in parallel, each with the outage grace."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(items) or 1), thread_name_prefix="s3-put") as pool:
            for future in [pool.submit(self.put_result, path, rel, grace_s) for path, rel in items]:
                future.result()

    def result_path(self, rel: str, grace_s: float | None = None) -> Path:
        """A result file as a local path under RESULTS_DIR (fetched from the store unless already here)."""
        local = _inside(self.results_dir, self.results_dir / rel)
        if not local.is_file():
            self.download(RESULTS + rel, local, grace_s)
        self._sweep_local()
        return local

    def _sweep_local(self) -> None:
        """The local copies (what the web handed to Gradio) expire like the stored originals; no worker sees this
        disk, so the process that made them sweeps it, at most every SWEEP_S."""
        if time.monotonic() - self._swept >= SWEEP_S:
            self._swept = time.monotonic()
            MediaStore.cleanup(self, self.ttl_s)

    def write_result(self, text: str, prefix: str = "ocr_result") -> Path:
        """The text result written locally (RESULTS_DIR/<random>/<prefix>_<time>.txt, what the page links to) and
        put into the store under the same name, so any web replica can serve it."""
        path = super().write_result(text, prefix)
        self.put_result(path, path.relative_to(self.results_dir).as_posix())
        self._sweep_local()
        return path

    def cleanup(self, ttl_seconds: float, now: float | None = None) -> int:
        """Delete stored uploads and results older than ttl_seconds (and abandoned multipart uploads); plus the
        local temporary copies. Returns how many objects went."""
        local = super().cleanup(ttl_seconds, now)
        cutoff = (now if now is not None else time.time()) - ttl_seconds
        removed = 0
        for part in ("uploads/", RESULTS):
            old: list[dict] = []
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(part))
            for page in self._call("list", lambda p=pages: list(p)):
                old += [{"Key": o["Key"]} for o in page.get("Contents", [])
                        if o["LastModified"].timestamp() < cutoff]
            for i in range(0, len(old), 1000):
                batch = {"Objects": old[i:i + 1000], "Quiet": True}
                self._call("delete", lambda b=batch: self.client.delete_objects(Bucket=self.bucket, Delete=b))
            removed += len(old)
        uploads = self._call("multipart", lambda: self.client.list_multipart_uploads(
            Bucket=self.bucket, Prefix=self.prefix)).get("Uploads", [])
        for up in uploads:
            if up["Initiated"].timestamp() < cutoff:
                self._call("abort", lambda u=up: self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]))
        return removed + local
