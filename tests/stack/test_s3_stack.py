"""Workers on other machines, simulated with real processes: the web and two workers share nothing but Redis and a
real S3 server (SeaweedFS): each has its own empty MEDIA_DIR / RESULTS_DIR / cache, no path of the web's visible to
a worker. Chat with three turns on an image and on an mp4 (follow-ups on the holder, from its prompt cache, the file
not downloaded again), OCR with its .txt downloaded through the web, region; the store stopped for 10 s with jobs
in flight (all answered once), then for good (a Russian error); each worker's cache within WORKER_CACHE_MB."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from pathlib import Path

import openai
import pytest
from gradio_client import Client, handle_file

from common import keys
from common.errors import ErrorCode
from common.schemas import ChatRequest, JobStatus, OcrRequest, RegionRequest, Turn
from common.store.s3 import S3Store
from scripts import jobs, samples
from scripts.stack import Stack
from tests.conftest import ARTIFACTS, running_s3
from web.queue.client import JobClient

pytestmark = pytest.mark.integration
GRACE_S = 20  # the workers' S3_OUTAGE_GRACE_S: longer than the 10-s outage, short enough to wait out "for good"
CACHE_MB = 1


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with running_s3(tmp_path_factory, "s3-stack") as server:
        yield server


@pytest.fixture(scope="module")
def stack(s3, tmp_path_factory, test_model):
    root = tmp_path_factory.mktemp("s3-stack")
    st = Stack(root, test_model, log_dir=ARTIFACTS / "logs" / root.name)
    st.start_redis()
    s3env = s3.settings_env(S3_OUTAGE_GRACE_S=str(GRACE_S), S3_TIMEOUT_S="2")
    st.hosts = {}
    for name in ("s3-w1", "s3-w2"):
        host = root / name  # a machine of its own: nothing here is shared with the web or the other worker
        st.hosts[name] = host
        st.start_worker(name, wait=False, MEDIA_DIR=str(host / "media"), RESULTS_DIR=str(host / "results"),
                        WORKER_CACHE_DIR=str(host / "cache"), WORKER_CACHE_MB=str(CACHE_MB), **s3env)
    web_host = root / "web"
    st.start_web(MEDIA_DIR=str(web_host / "media"), RESULTS_DIR=str(web_host / "results"),
                 GRADIO_TEMP_DIR=str(web_host / "gradio"), **s3env)
    st.web_host = web_host
    for svc in st.workers:  # both loaded their model meanwhile
        st.wait_worker(svc)
    st.settings = st.settings_for(media_store="s3", s3_endpoint_url=s3.endpoint, s3_bucket=s3.bucket,
                                  media_dir=root / "client" / "media", results_dir=root / "client" / "results",
                                  s3_outage_grace_s=GRACE_S, s3_timeout_s=2, queue_wait_timeout=120)
    saved = {k: os.environ.get(k) for k in s3env if k.startswith("AWS_")}
    os.environ.update({k: s3env[k] for k in saved})  # boto3 in this process (the test's own store) reads them
    st.client = JobClient(st.settings)
    st.store = S3Store(st.settings)
    st.store.ensure_dirs()
    d = tmp_path_factory.mktemp("s3-media")
    st.files = {
        "scene": samples.scene_image(d / "scene.png", (320, 240)),
        "text": samples.text_image(d / "text.png"),
        "video": samples.video(d / "clip.mp4", seconds=2, fps=10, size=(160, 120)),
    }
    yield st
    st.stop()
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def cache_files(stack, worker: str) -> dict[str, Path]:
    folder = stack.hosts[worker] / "cache"
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def worker_name(stack, heartbeat_name: str) -> str:
    svc = next(s for s in stack.workers if f"-{s.pid}-" in heartbeat_name)
    return svc.name


def three_turns(stack, ref, conversation: str) -> list:
    results, history = [], []
    for question in ("Describe it.", "What else?", "And the colours?"):
        res = jobs.run(stack.client, ChatRequest(media=ref, question=question, history=history, max_new_tokens=8,
                                           conversation=conversation))
        assert res.status == JobStatus.ok, res.error
        results.append(res)
        history.append(Turn(question=question, answer=res.answer))
    return results


@pytest.mark.parametrize("kind", ["scene", "video"])
def test_three_turns_follow_ups_on_the_holder_from_its_caches(stack, kind):
    ref = stack.store.save_upload(stack.files[kind])
    first, *follow_ups = three_turns(stack, ref, f"s3-{kind}")
    holder = worker_name(stack, first.worker)
    copy = cache_files(stack, holder)[ref.path]
    inode = copy.stat().st_ino
    assert first.cached_tokens == 0
    for res in follow_ups:
        assert res.worker == first.worker and res.cached_tokens > 0, (res.worker, res.cached_tokens)
    assert cache_files(stack, holder)[ref.path].stat().st_ino == inode  # read from the cache, never fetched again
    assert copy.read_bytes() == stack.files[kind].read_bytes()
    if kind == "video":
        assert first.frames and all(f.thumbnail for f in first.frames)
        for f in first.frames:  # the thumbnails went into the store: any web replica can show them
            assert stack.store.exists("results/" + f.thumbnail)
        # and the web (another host) gets them from the store, not from the worker's disk
        local = stack.store.result_path(first.frames[0].thumbnail)
        assert local.is_relative_to(stack.settings.results_dir) and local.read_bytes()[:2] == b"\xff\xd8"


def test_ocr_txt_through_the_web_and_region(stack, tmp_path):
    api = Client(stack.url, verbose=False, download_files=str(tmp_path))
    text, txt = api.predict(handle_file(str(stack.files["text"])), api_name="/ocr")
    assert Path(txt).name.startswith("ocr_result_") and Path(txt).read_text(encoding="utf-8") == text
    stored = [o["Key"] for o in stack.store.client.list_objects_v2(Bucket=stack.store.bucket,
                                                                   Prefix="results/").get("Contents", [])]
    assert any(k.endswith(Path(txt).name) for k in stored), stored
    region = api.predict(handle_file(str(stack.files["scene"])), "80,60,208,180", api_name="/describe_region")
    assert isinstance(region, str) and region.strip()
    answer = api.predict(handle_file(str(stack.files["scene"])), "Опиши изображение", [], api_name="/vqa")
    assert answer.strip()
    uploads = [o["Key"] for o in stack.store.client.list_objects_v2(Bucket=stack.store.bucket,
                                                                    Prefix="uploads/").get("Contents", [])]
    assert len([k for k in uploads if k.endswith(".png")]) >= 2  # the web put the uploads in the store
    assert not list((stack.web_host / "media").rglob("uploads/*"))  # and kept none on its own disk


def test_openai_api_upload_goes_through_the_store(stack):
    data = samples.scene_image(stack.root / "api.png", (256, 200)).read_bytes()
    api = openai.OpenAI(base_url=f"{stack.url}v1", api_key="-", max_retries=0, timeout=120)
    reply = api.chat.completions.create(model="any", max_tokens=6, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}},
        {"type": "text", "text": "What is it?"}]}])
    assert reply.choices[0].message.content.strip()
    assert stack.store.exists(f"uploads/{hashlib.sha256(data).hexdigest()[:32]}.png")


def test_no_path_of_the_web_reaches_a_worker(stack):
    for name, host in stack.hosts.items():
        assert not list((host / "media").rglob("*.png")) and not list((host / "media").rglob("*.mp4")), name
        cached = cache_files(stack, name)
        assert all(rel.startswith("uploads/") for rel in cached), cached


def outage_jobs(stack, tag: str, n: int, height: int) -> list:
    """n fresh uploads (new sizes: no worker has them cached) of which the jobs are sent at once."""
    reqs = []
    for i in range(n):
        src = samples.scene_image(stack.root / f"{tag}-{i}.png", (200 + 8 * i, height))
        ref = stack.store.save_upload(src)
        req = (OcrRequest(media=ref) if i % 2 else
               RegionRequest(media=ref, box={"x1": 10, "y1": 10, "x2": 90, "y2": 90}) if i % 3 else
               ChatRequest(media=ref, question="What is it?", max_new_tokens=6))
        reqs.append(req)
    return reqs


def run_all(stack, reqs) -> list:
    out: list = [None] * len(reqs)

    def one(i: int) -> None:
        out[i] = jobs.run(stack.client, reqs[i], queue_wait_s=120)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    return threads, out


def test_store_down_for_10_s_with_jobs_in_flight_all_answered_once(stack, s3):
    reqs = outage_jobs(stack, "blink", 4, height=160)
    back = s3.outage(10)
    t0 = time.monotonic()
    threads, results = run_all(stack, reqs)
    for t in threads:
        t.join(150)
    back.join()
    assert all(r is not None and r.status == JobStatus.ok for r in results), [
        (r.status, r.error) if r else None for r in results]
    assert time.monotonic() - t0 >= 9  # they really waited for the store
    r = stack.client.redis
    for req in reqs:  # one result each, and no job was run a second time
        assert r.exists(keys.result(req.job_id)) and int(r.get(keys.attempts(req.job_id)) or 0) == 1


def test_cache_stays_within_worker_cache_mb(stack):
    for name in stack.hosts:
        used = sum(p.stat().st_size for p in cache_files(stack, name).values())
        assert used <= CACHE_MB << 20, (name, used)
    assert sum(len(cache_files(stack, n)) for n in stack.hosts) >= 4


def test_store_gone_for_good_fails_in_russian(stack, s3):
    reqs = outage_jobs(stack, "gone", 1, height=150)
    s3.stop()
    t0 = time.monotonic()
    threads, results = run_all(stack, reqs)
    for t in threads:
        t.join(GRACE_S + 90)
    for res in results:
        assert res is not None and res.status == JobStatus.error
        assert res.error.startswith("Хранилище файлов недоступно (нет соединения)")
        assert res.error_code == ErrorCode.store_unavailable
    assert GRACE_S - 2 <= time.monotonic() - t0 < GRACE_S + 60
    s3.start()  # back for whatever runs after
