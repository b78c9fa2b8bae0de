"""Where media live: MEDIA_STORE=local is the shared volume (common.store.volume), s3 an S3-compatible object store
(common.store.s3, the same surface). Everyone gets theirs from store_from_settings; the volume's names are here too."""

from __future__ import annotations

from common.store.volume import (
    CHUNK,
    EMPTY_FILE,
    IMAGE_EXTS,
    SUPPORTED_HINT,
    UNREADABLE_UPLOAD,
    VIDEO_EXTS,
    MediaStore,
    _inside,
    media_kind_for,
    too_large,
    unsupported,
)

__all__ = ["CHUNK", "EMPTY_FILE", "IMAGE_EXTS", "SUPPORTED_HINT", "UNREADABLE_UPLOAD", "VIDEO_EXTS", "MediaStore",
           "_inside", "media_kind_for", "store_from_settings", "too_large", "unsupported"]

_S3_STORES: dict[tuple, MediaStore] = {}


def store_from_settings(settings) -> MediaStore:
    """MEDIA_STORE=local: the shared volume; s3: the object store (common.store.s3, boto3 imported only then)."""
    if getattr(settings, "media_store", "local") == "s3":
        from common.store.s3 import S3Store

        fields = ("media_dir", "results_dir", "max_upload_bytes", "s3_endpoint_url", "s3_bucket", "s3_prefix",
                  "s3_timeout_s", "s3_outage_grace_s", "s3_create_bucket", "aws_access_key_id_file",
                  "aws_secret_access_key_file", "media_ttl_hours")
        key = tuple(str(getattr(settings, f)) for f in fields)
        if key not in _S3_STORES:  # one client per process and configuration (a client costs ~50 ms to make)
            _S3_STORES[key] = S3Store(settings)
        return _S3_STORES[key]
    return MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
