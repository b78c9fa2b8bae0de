"""The video's frames under a chat answer come from the media store: with MEDIA_STORE=s3 the web (on a host of its
own) fetches the thumbnails a worker put there, and a frame it cannot get is left out without losing the answer."""

from __future__ import annotations

import time

import pytest

from common.schemas import FrameInfo, JobKind, JobResult, JobStatus
from common.store.s3 import S3Store
from tests.common.store.test_s3 import s3_settings
from web.queue.client import JobClient
from web.ui.layout import Handlers


@pytest.fixture
def chat(s3_server, redis_server, tmp_path, monkeypatch):
    for k, v in s3_server.settings_env().items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    settings = s3_settings(s3_server, tmp_path, redis_url=redis_server.url)
    store = S3Store(settings)
    store.ensure_dirs()
    return Handlers.build(settings, JobClient(settings), store).chat, store


def test_frames_fetched_from_the_store_a_missing_one_left_out(chat, tmp_path):
    tab, store = chat
    worker_disk = tmp_path / "worker"
    worker_disk.mkdir()
    for i in range(2):
        (worker_disk / f"{i:02d}.jpg").write_bytes(b"\xff\xd8frame" + bytes([i]))
    store.put_results([(worker_disk / f"{i:02d}.jpg", f"frames/job9/{i:02d}.jpg") for i in range(2)])
    frames = [FrameInfo(index=i, timestamp=0.5 * i, thumbnail=f"frames/job9/{i:02d}.jpg") for i in range(3)]
    result = JobResult(job_id="job9", kind=JobKind.chat, status=JobStatus.ok, answer="a", frames=frames,
                       finished_at=time.time())
    gallery = tab.frames(result)
    assert gallery.visible is True
    paths = [item["image"]["path"] for item in gallery.value]
    assert [item["caption"] for item in gallery.value] == ["0 с", "0,5 с"]
    assert len(paths) == 2  # the third was never stored: left out, the answer stays
    for i, path in enumerate(paths):  # Gradio's own copy of what the web fetched
        assert open(path, "rb").read() == b"\xff\xd8frame" + bytes([i])
        assert (store.results_dir / f"frames/job9/{i:02d}.jpg").is_file()  # fetched into this host's RESULTS_DIR
