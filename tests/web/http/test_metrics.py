"""GET /metrics on a stack of its own (redis-server, two workers, web): parsed with prometheus_client's parser,
the counters and histograms equal what was run (exactly once per job with two workers), the queue length and
worker states are live, a web refusal counts as rejected, and nothing changes when the web restarts."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import BUCKETS
from common.schemas import Box, ChatRequest, JobStatus, OcrRequest, RegionRequest
from common.store import MediaStore
from scripts import jobs, samples
from scripts.stack import Stack
from tests.conftest import ARTIFACTS
from web.queue.client import JobClient

pytestmark = pytest.mark.integration
N = 4  # jobs of each kind
PER_CLIENT = 3  # the web's MAX_JOBS_PER_CLIENT
KINDS = ("chat", "ocr", "region")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, test_model):
    root = tmp_path_factory.mktemp("metrics-stack")
    st = Stack(root, test_model, log_dir=ARTIFACTS / "logs" / root.name)
    try:
        st.start_redis()
        for name in ("metrics-w1", "metrics-w2"):
            st.start_worker(name, wait=False)
        st.start_web(MAX_JOBS_PER_CLIENT=str(PER_CLIENT))
        for svc in st.workers:
            st.wait_worker(svc)
        st.settings = st.settings_for(max_new_tokens=12, queue_wait_timeout=60)
        st.client = JobClient(st.settings)
        st.store = MediaStore(st.media_dir, st.results_dir, st.settings.max_upload_bytes)
        st.image = samples.scene_image(root / "scene.png", (320, 240))
        yield st
    finally:
        st.stop()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    r = httpx.get(f"{url}metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def request(kind: str, ref):
    if kind == "chat":
        return ChatRequest(media=ref, question="What is this?")
    if kind == "ocr":
        return OcrRequest(media=ref)
    return RegionRequest(media=ref, box=Box(x1=40, y1=80, x2=104, y2=144))


def test_families_and_types(stack):
    r = httpx.get(f"{stack.url}metrics", timeout=10)
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    expected = {"smolvlm2_queue_length": "gauge", "smolvlm2_workers": "gauge", "smolvlm2_jobs": "counter",
                "smolvlm2_generated_tokens": "counter", "smolvlm2_prompt_tokens": "counter",
                "smolvlm2_prompt_cached_tokens": "counter", "smolvlm2_job_wait_seconds": "histogram",
                "smolvlm2_job_duration_seconds": "histogram", "smolvlm2_time_to_first_token_seconds": "histogram",
                "smolvlm2_redis_up": "gauge"}
    assert {name: families[name].type for name in expected} == expected
    samples = scrape(stack.url)
    assert {s: value(samples, "smolvlm2_workers", state=s) for s in ("idle", "busy", "loading", "error")} == {
        "idle": 2, "busy": 0, "loading": 0, "error": 0}
    assert value(samples, "smolvlm2_redis_up") == 1


def test_counters_and_histograms_count_every_job_once(stack):
    ref = stack.store.save_upload(stack.image)
    before = scrape(stack.url)
    reqs = [request(kind, ref) for kind in KINDS for _ in range(N)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda r: jobs.run(stack.client, r), reqs))
    assert all(r.status == JobStatus.ok for r in results), [r.error for r in results]
    assert len({r.worker for r in results}) == 2  # both workers answered: each counted once all the same
    after = scrape(stack.url)

    def delta(name: str, **labels) -> float:
        return value(after, name, **labels) - before.get((name, tuple(sorted(labels.items()))), 0)

    for kind in KINDS:
        mine = [r for r in results if r.kind == kind]
        assert delta("smolvlm2_jobs_total", kind=kind, status="ok") == N
        for status in ("error", "cancelled", "rejected"):
            assert delta("smolvlm2_jobs_total", kind=kind, status=status) == 0
        assert delta("smolvlm2_generated_tokens_total", kind=kind) == sum(r.generated_tokens for r in mine)
        assert delta("smolvlm2_prompt_tokens_total", kind=kind) == sum(r.prompt_tokens for r in mine)
        assert delta("smolvlm2_prompt_cached_tokens_total", kind=kind) == sum(r.cached_tokens for r in mine)
        for hist in BUCKETS:
            name = f"smolvlm2_{hist}"
            assert delta(f"{name}_count", kind=kind) == N
            assert delta(f"{name}_bucket", kind=kind, le="+Inf") == N
            buckets = [value(after, f"{name}_bucket", kind=kind, le=le) for le in
                       [*(str(float(b)) for b in BUCKETS[hist]), "+Inf"]]
            assert buckets == sorted(buckets)  # cumulative
            assert value(after, f"{name}_sum", kind=kind) > 0
        waits = sorted(r.queue_wait_s for r in mine)
        first_bound = next(b for b in BUCKETS["job_wait_seconds"] if b >= waits[-1])
        assert delta("smolvlm2_job_wait_seconds_bucket", kind=kind, le=str(float(first_bound))) == N


def test_queue_length_and_a_refusal(stack):
    """Three jobs of this machine wait on a queue no worker reads: the queue length says 3, and the web refuses a
    fourth (MAX_JOBS_PER_CLIENT=3) with 429, counted once as rejected; cancelled, they leave the queue."""
    ref = stack.store.save_upload(stack.image)
    before = scrape(stack.url)
    reqs = [ChatRequest(media=ref, question="Wait.") for _ in range(PER_CLIENT)]
    for req in reqs:
        stack.client.submit(req, client="127.0.0.1", queue="nobody-reads-this")
    try:
        assert value(scrape(stack.url), "smolvlm2_queue_length") == PER_CLIENT
        url = "data:image/png;base64," + base64.b64encode(stack.image.read_bytes()).decode()
        oa = openai.OpenAI(base_url=f"{stack.url}v1", api_key="x", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            oa.chat.completions.create(model="m", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "?"}]}])
    finally:
        for req in reqs:
            stack.client.cancel(req.job_id)
            stack.client.release(req, "127.0.0.1")
    after = scrape(stack.url)
    assert value(after, "smolvlm2_queue_length") == 0
    key = ("smolvlm2_jobs_total", (("kind", "chat"), ("status", "rejected")))
    assert after[key] - before[key] == 1
    key = ("smolvlm2_jobs_total", (("kind", "chat"), ("status", "cancelled")))
    assert after[key] - before[key] == PER_CLIENT


def test_counters_survive_a_web_restart(stack):
    live = {"smolvlm2_queue_length", "smolvlm2_workers", "smolvlm2_redis_up"}
    before = {k: v for k, v in scrape(stack.url).items() if k[0] not in live}
    assert before[("smolvlm2_jobs_total", (("kind", "ocr"), ("status", "ok")))] >= N
    stack.web.stop()
    stack.start_web(MAX_JOBS_PER_CLIENT=str(PER_CLIENT))
    after = {k: v for k, v in scrape(stack.url).items() if k[0] not in live}
    assert after == before
