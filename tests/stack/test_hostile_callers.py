"""A hostile caller against a real stack (redis-server, a worker, `python -m web` with API_KEY), each probe of
issue 20 as the real request it was, with the bound it must stay within: Gradio's side routes closed, huge
histories refused before they stall the web, /v1 media refused before they are stored and deleted when refused,
/v1 uploads rate-limited, artefacts of a job served to nobody else, malformed JSON a 400, a job nobody follows
withdrawn and counted as abandoned."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from common import events, keys
from common.schemas import JobStatus, WorkerState
from scripts import samples
from scripts.stack import wait_for
from tests.stack.conftest import peak_rss_mb

pytestmark = pytest.mark.integration
KEY = "hostile-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MB = 1024 * 1024


@pytest.fixture(scope="module")
def stack(make_stack, tmp_path_factory, endless_env):
    st = make_stack(max_jobs_per_client=2)
    # Endless: a job runs until it is stopped (the long jobs here, the never-read one), on any CPU; the tiny
    # model's own answers end in 0.5–3 s, by the CPU. Every other call here asks for a few tokens.
    st.start_worker("hostile", **endless_env, MAX_NEW_TOKENS="100000", MODEL_DTYPE="float32")
    st.tmp = tmp_path_factory.mktemp("web-tmp")  # the web's system temp folder (in Docker: its writable layer)
    # ABANDON_AFTER_S 2 (default 15): the test waits that long for the never-read job to be found.
    st.start_web(API_KEY=KEY, MAX_UPLOAD_MB="20", UPLOAD_RATE_MB_PER_MIN="60", MAX_JOBS_PER_CLIENT="2",
                 MAX_NEW_TOKENS="100000", TMPDIR=str(st.tmp), ABANDON_AFTER_S="2")
    d = tmp_path_factory.mktemp("hostile-callers")
    st.image = samples.scene_image(d / "scene.png", (320, 240))
    st.clip = samples.video(d / "clip.mp4", seconds=3, fps=10, size=(160, 120))
    st.http = httpx.Client(base_url=st.url, timeout=120)
    return st


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def chat_body(url: str, question: str = "What is in it?", history: list | None = None, **extra) -> dict:
    last = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                        {"type": "text", "text": question}]}
    return {"model": "any", "messages": [*(history or []), last], "max_tokens": 4, **extra}


class Stalls:
    """Another caller meanwhile: GET /v1/models every 50 ms; the longest answer time is how long the web froze."""

    def __init__(self, url: str) -> None:
        self.url, self.worst, self._stop = url, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self._stop.is_set():
                t0 = time.monotonic()
                http.get("/v1/models", headers=AUTH)
                self.worst = max(self.worst, time.monotonic() - t0)
                time.sleep(0.05)

    def __enter__(self) -> Stalls:
        self._thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join(60)


def zeros(n: int, chunk: int = MB):
    while n > 0:
        yield b"\0" * min(chunk, n)
        n -= chunk


def multipart(fields: list[tuple[str, str, int]], boundary: str = "hostile-boundary"):
    """A multipart body streamed from a generator: (field, file name, bytes of zeros) per part."""
    for name, filename, size in fields:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        yield from zeros(size)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


# ---------------------------------------------------------------- Gradio's side routes


def test_process_recording_is_closed_and_writes_nothing(stack):
    # Before: accepted 5 × 20 MB right after /upload said 429 and left every file in the system temp folder.
    before = files_under(stack.tmp)
    for _ in range(3):
        r = stack.http.post("/gradio_api/process_recording", content=multipart([("video", "rec.webm", 5 * MB)]),
                            headers={"Content-Type": "multipart/form-data; boundary=hostile-boundary"})
        assert r.status_code == 404, r.text[:200]
    assert files_under(stack.tmp) == before


def test_component_server_is_closed_before_it_reads_the_body(stack):
    # Before: read multipart files fully into memory (2 × 10 × 95 MB: the web from 0.47 to 2.25 GB).
    pid = stack.web.pid
    before = peak_rss_mb(pid)
    parts = [("data", f"f{i}.bin", 40 * MB) for i in range(4)]
    r = stack.http.post("/gradio_api/component_server", content=multipart(parts),
                        headers={"Content-Type": "multipart/form-data; boundary=hostile-boundary"})
    assert r.status_code == 404
    grown = peak_rss_mb(pid) - before
    print(f"component_server 160 MB: web peak +{grown:.0f} MB")
    assert grown < 40


@pytest.mark.parametrize("path", ["/gradio_api/vibe-code", "/gradio_api/run-history/buckets", "/monitoring",
                                  "/gradio_api/proxy=http://127.0.0.1:1/x", "/gradio_api/dev/reload",
                                  "/gradio_api/openapi.json", "/openapi.json"])
def test_routes_the_app_does_not_use_are_closed(stack, path):
    assert stack.http.get(path).status_code == 404


# ---------------------------------------------------------------- huge histories


def test_a_huge_v1_history_is_refused_without_stalling_the_web(stack):
    # Before: a 22 MB history stalled every other request ~3 s (73 MB: 7.7 s).
    pair = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    body = json.dumps(chat_body(data_url(stack.image, "image/png"), history=pair * 150_000)).encode()
    assert len(body) > 8 * MB
    with Stalls(stack.url) as other:
        t0 = time.monotonic()
        r = stack.http.post("/v1/chat/completions", content=body, headers={**AUTH, "Content-Type": "application/json"})
        took = time.monotonic() - t0
    print(f"/v1 {len(body) / MB:.0f} MB history: {r.status_code} in {took:.2f} s, other callers waited ≤ "
          f"{other.worst:.2f} s")
    assert r.status_code in (400, 413) and "сообщений" in r.json()["error"]["message"]
    assert other.worst < 1.0  # before: 4-8 s


def upload(stack, path: Path) -> str:
    with open(path, "rb") as f:
        r = stack.http.post("/gradio_api/upload", files={"files": (path.name, f)})
    r.raise_for_status()
    return r.json()[0]


def test_a_huge_vqa_history_is_refused_without_stalling_the_web(stack):
    # Before: /vqa with an 8 MB history stalled the web ~2 s.
    path = upload(stack, stack.image)
    history = [["hi", "ok"]] * 400_000
    body = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "What?", history],
            "fn_index": None, "api_name": "/vqa", "session_hash": "hostilevqa01"}
    raw = json.dumps(body).encode()
    assert 5 * MB < len(raw) < 8 * MB
    with Stalls(stack.url) as other:
        r = stack.http.post("/gradio_api/queue/join", content=raw, headers={"Content-Type": "application/json"})
    print(f"/vqa {len(raw) / MB:.1f} MB history: {r.status_code}, other callers waited ≤ {other.worst:.2f} s")
    assert r.status_code in (413, 422) and "истори" in r.text
    assert other.worst < 1.0  # before: 4-8 s


# ---------------------------------------------------------------- /v1 media


def media_files(stack) -> set[Path]:
    return set(files_under(stack.media_dir))


def test_v1_garbage_media_is_deleted_once_refused(stack):
    # Before: 4 × 15 MB of garbage as image/png stayed in MEDIA_DIR for 24 h.
    before = media_files(stack)
    junk = os.urandom(4 * MB)
    url = f"data:image/png;base64,{base64.b64encode(junk).decode()}"
    r = stack.http.post("/v1/chat/completions", json=chat_body(url), headers=AUTH)
    assert r.status_code == 400 and "изображение" in r.json()["error"]["message"]
    assert media_files(stack) == before


def test_v1_media_are_refused_before_they_are_stored_when_the_caller_may_not_submit(stack):
    # MAX_JOBS_PER_CLIENT=2: two long jobs of this caller run or wait; a third is refused, its file never stored.
    url = data_url(stack.image, "image/png")
    long = [threading.Thread(target=stack.http.post, args=("/v1/chat/completions",),
                             kwargs={"json": {**chat_body(url, "Describe the image."), "max_tokens": 3000},
                                     "headers": AUTH}, daemon=True) for _ in range(2)]
    for t in long:
        t.start()
    wait_for(lambda: stack.client.redis.zcard(keys.WAITING) + sum(
        1 for w in events.list_workers(stack.client.redis) if w.job_id) >= 2, 30, "two jobs of the caller")
    before = media_files(stack)
    other = samples.scene_image(stack.root / "other.png", (300, 200))
    r = stack.http.post("/v1/chat/completions", json=chat_body(data_url(other, "image/png")), headers=AUTH)
    try:
        assert r.status_code == 429
        assert media_files(stack) == before
    finally:
        stop_everything(stack)
        for t in long:
            t.join(60)


def stop_everything(stack) -> None:
    """Stop every job waiting or running, and wait until the worker is free again."""
    redis = stack.client.redis
    for job_id in [*redis.zrange(keys.WAITING, 0, -1),
                   *(w.job_id for w in events.list_workers(redis) if w.job_id)]:
        stack.client.cancel(job_id.decode() if isinstance(job_id, bytes) else job_id)
    wait_for(lambda: redis.zcard(keys.WAITING) == 0 and all(
        w.state == WorkerState.ready for w in events.list_workers(redis)), 30, "no job left")


def test_v1_uploads_are_rate_limited_like_upload(stack):
    # UPLOAD_RATE_MB_PER_MIN=60: the fourth 19-MB image within a minute is refused before it is stored.
    big = stack.root / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(19 * MB))
    url = data_url(big, "image/png")
    codes = [stack.http.post("/v1/chat/completions", json=chat_body(url), headers=AUTH).status_code
             for _ in range(4)]
    assert codes[-1] == 429, codes


def test_an_unreadable_gradio_upload_leaves_no_copy(stack):
    # A video that is not one: refused by the worker; before, its Gradio copy and its MEDIA_DIR copy stayed.
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    fake = stack.root / "fake.mp4"
    fake.write_bytes(os.urandom(300_000))
    before = media_files(stack)
    with pytest.raises(AppError, match="Не удалось прочитать видео"):
        Client(stack.url, verbose=False).predict(handle_file(str(fake)), "Опиши видео", [], api_name="/vqa")
    assert media_files(stack) == before
    gradio = stack.root / "gradio"
    assert not [p for p in files_under(gradio) if p.read_bytes() == fake.read_bytes()]


# ---------------------------------------------------------------- artefacts


def test_frames_of_a_v1_video_job_are_served_to_nobody(stack):
    # Before: readable through /gradio_api/file= by anyone, without the key (the /v1 caller never gets them).
    r = stack.http.post("/v1/chat/completions", json={
        "model": "any", "max_tokens": 4,
        "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": data_url(stack.clip,
                                                                                                      "video/mp4")}},
                                                  {"type": "text", "text": "What happens?"}]}]}, headers=AUTH)
    assert r.status_code == 200, r.text
    job_id = r.headers["x-request-id"]
    thumbs = sorted((stack.results_dir / "frames" / job_id).glob("*.jpg"))
    assert thumbs
    for headers in ({}, AUTH):
        got = stack.http.get(f"/gradio_api/file={thumbs[0]}", headers=headers)
        assert got.status_code in (403, 404), got.status_code


# ---------------------------------------------------------------- malformed JSON


def test_deeply_nested_json_is_a_400_not_a_500(stack):
    body = b'{"model": "x", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = stack.http.post("/v1/chat/completions", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400, r.status_code
    assert "вложен" in r.json()["error"]["message"]
    log = stack.web.log_path.read_text(errors="replace")
    assert "RecursionError" not in log and "Traceback" not in log


@pytest.mark.parametrize("n", [True, 2, "1", 1.5])
def test_n_must_be_the_integer_1(stack, n):
    r = stack.http.post("/v1/chat/completions", json=chat_body(data_url(stack.image, "image/png"), n=n), headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"


# ---------------------------------------------------------------- callers who never read


def metric(stack, name: str, **labels) -> float:
    text = stack.http.get("/metrics", headers=AUTH).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^smolvlm2_{name}\{{{re.escape(want)}\}} ([0-9.e+]+)$", text, re.M)
    return float(found[1]) if found else 0.0


def test_a_job_whose_caller_never_reads_is_withdrawn_and_counted_as_abandoned(stack):
    # queue/join, then nothing: no event stream ever opened. Before: the job ran in full for nobody.
    abandoned = metric(stack, "jobs_abandoned_total", kind="chat")
    path = upload(stack, stack.image)
    deps = stack.http.get("/config").json()["dependencies"]
    fn_index = next(d["id"] for d in deps if d.get("api_name") == "vqa")
    r = stack.http.post("/gradio_api/queue/join", json={
        "data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "Describe the image.", []],
        "event_data": None, "fn_index": fn_index, "trigger_id": None, "session_hash": "neverreads01"})
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    job_id = wait_for(lambda: next((w.job_id for w in events.list_workers(stack.client.redis) if w.job_id), None),
                      30, "the job running")
    result = wait_for(lambda: events.get_result(stack.client.redis, job_id), 30, "the job ended")
    wait_for(lambda: all(w.state == WorkerState.ready for w in events.list_workers(stack.client.redis)), 10,
             "worker free")
    took = time.monotonic() - t0
    print(f"never-read /vqa: worker free {took:.1f} s after it began")
    assert result.status == JobStatus.cancelled and result.generated_tokens < 100_000  # only a stop ends it
    assert took < 20
    assert metric(stack, "jobs_abandoned_total", kind="chat") == abandoned + 1
