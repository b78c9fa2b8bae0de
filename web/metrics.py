"""GET /metrics: the Prometheus text format, read from Redis on every scrape.

The counters and histograms live in one Redis hash (keys.METRICS) that whoever ends a job adds to, once per
job, in the same atomic step (common.events.finish; web refusals: record_rejected). The web only exports it:
with several workers, several webs or after a restart the numbers stay right, and nothing is counted twice.
Histogram buckets are stored per bucket (common.metrics.observe) and summed here into Prometheus' cumulative
buckets; the +Inf bucket is the count."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import fastapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from common import keys
from common import metrics as m
from common.errors import QueueUnavailable
from common.schemas import JobKind, JobStatus, WorkerState
from web.jobs import REDIS_ERRORS

log = logging.getLogger(__name__)

PREFIX = "smolvlm2_"
STATUSES = [*(str(s) for s in JobStatus), m.REJECTED]
WORKER_STATES = {WorkerState.ready: "idle", WorkerState.busy: "busy", WorkerState.loading: "loading",
                 WorkerState.error: "error"}
HISTOGRAMS = {
    "job_wait_seconds": "Время ожидания в очереди (от постановки до начала обработки), секунды.",
    "job_duration_seconds": "Время обработки задания обработчиком, секунды.",
    "time_to_first_token_seconds": "Время от постановки задания до первого токена ответа, секунды.",
}
TOKEN_COUNTERS = {
    "generated_tokens_total": "Сгенерировано токенов.",
    "prompt_tokens_total": "Токенов запроса (промпта), всего.",
    "prompt_cached_tokens_total": "Токенов запроса, взятых из кэша промптов обработчика.",
}


def record_rejected(redis_client, kind: JobKind | str) -> None:
    """Count a job the web refused before queueing it (common.errors.Busy): jobs_total{status="rejected"}."""
    try:
        pipe = redis_client.pipeline(transaction=False)
        for field, value in m.rejected(kind).items():
            pipe.hincrbyfloat(keys.METRICS, field, value)
        pipe.execute()
    except REDIS_ERRORS:
        log.warning("could not count a refused %s job: Redis unavailable", kind)


def parse_hash(raw: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """{'<metric>|<kind>|<label>': value} → {metric: {kind: {label: value}}}; unknown or broken fields skipped."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for name, value in raw.items():
        parts = name.split("|")
        if len(parts) != 3:
            continue
        try:
            out[parts[0]][parts[1]][parts[2]] = float(value)
        except ValueError:
            continue
    return out


class RedisCollector(Collector):
    """Reads the metrics hash, the waiting jobs and the workers' heartbeats on each scrape."""

    def __init__(self, client) -> None:
        self.client = client  # web.jobs.JobClient

    def describe(self):
        return []  # nothing read at registration: Redis is read on scrape only

    def collect(self):
        up = GaugeMetricFamily(PREFIX + "redis_up", "1, если Redis ответил при этом опросе, иначе 0.")
        try:
            raw = self.client.redis.hgetall(keys.METRICS)
            waiting = self.client.queue_length()
            workers = self.client.workers()
        except (QueueUnavailable, *REDIS_ERRORS):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        yield GaugeMetricFamily(PREFIX + "queue_length", "Заданий в очереди, ждущих обработчика.", value=waiting)
        states = GaugeMetricFamily(PREFIX + "workers", "Живых обработчиков по состоянию.", labels=["state"])
        counts = dict.fromkeys(WORKER_STATES.values(), 0)
        for w in workers:
            counts[WORKER_STATES.get(w.state, "error")] += 1
        for state, n in counts.items():
            states.add_metric([state], n)
        yield states

        data = parse_hash(raw)
        kinds = sorted({*(str(k) for k in JobKind), *(k for metric in data.values() for k in metric)})

        jobs = CounterMetricFamily(PREFIX + "jobs", "Завершённых заданий по виду и исходу (rejected — отклонены "
                                   "веб-сервером до очереди).", labels=["kind", "status"])
        statuses = sorted({*STATUSES, *(s for per_kind in data["jobs_total"].values() for s in per_kind)})
        for kind in kinds:
            for status in statuses:
                jobs.add_metric([kind, status], data["jobs_total"][kind].get(status, 0.0))
        yield jobs

        for name, doc in TOKEN_COUNTERS.items():
            family = CounterMetricFamily(PREFIX + name.removesuffix("_total"), doc, labels=["kind"])
            for kind in kinds:
                family.add_metric([kind], data[name][kind].get("", 0.0))
            yield family

        for name, doc in HISTOGRAMS.items():
            family = HistogramMetricFamily(PREFIX + name, doc, labels=["kind"])
            for kind in kinds:
                stored = data[name][kind]
                buckets, total = [], 0.0
                for bound in m.BUCKETS[name]:
                    total += stored.get(f"le={bound:g}", 0.0)
                    buckets.append((floatToGoString(bound), total))
                buckets.append(("+Inf", stored.get("count", 0.0)))
                family.add_metric([kind], buckets, sum_value=stored.get("sum", 0.0))
            yield family


def registry_for(client) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(client))
    return registry


def router(client) -> fastapi.APIRouter:
    """GET /metrics for Prometheus (no API key: it shows counts, never content; keep the port private or let a
    reverse proxy guard it)."""
    registry = registry_for(client)
    r = fastapi.APIRouter()

    @r.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)

    return r
