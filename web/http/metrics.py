"""GET /metrics: the Prometheus text format, read from Redis on every scrape.

The counters and histograms live in one Redis hash (keys.METRICS) that whoever ends a job adds to, once per job,
in the same atomic step (common.events.finish; a refusal by the web: its admission script, web.queue.client). The
web only exports it: with several workers, several webs or after a restart the numbers stay right, and nothing is
counted twice. Histogram buckets are stored per bucket (common.metrics.observe) and summed here into Prometheus'
cumulative buckets; the +Inf bucket is the count."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import fastapi
import redis
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from common import events, keys
from common import metrics as m
from common.events import REDIS_ERRORS
from common.schemas import JobKind, JobStatus, WorkerState

PREFIX = "smolvlm2_"
STATUSES = [*(str(s) for s in JobStatus), m.REJECTED]
WORKER_STATES = {WorkerState.ready: "idle", WorkerState.busy: "busy", WorkerState.loading: "loading",
                 WorkerState.error: "error"}
HISTOGRAMS = {
    "job_wait_seconds": "Время ожидания в очереди (от постановки до начала обработки), секунды.",
    "job_duration_seconds": "Время обработки задания обработчиком, секунды.",
    "time_to_first_token_seconds": "Время от постановки задания до первого токена ответа, секунды.",
}
KIND_COUNTERS = {
    "generated_tokens_total": "Сгенерировано токенов.",
    "prompt_tokens_total": "Токенов запроса (промпта), всего.",
    "prompt_cached_tokens_total": "Токенов запроса, взятых из кэша промптов обработчика.",
    "jobs_abandoned_total": "Заданий, остановленных потому, что вызывающий так и не открыл поток событий (ушёл сразу "
                            "после отправки).",
}


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

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def describe(self):
        return []  # nothing read at registration: Redis is read on scrape only

    def collect(self):
        up = GaugeMetricFamily(PREFIX + "redis_up", "1, если Redis ответил при этом опросе, иначе 0.")
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(keys.METRICS)
            pipe.zcard(keys.WAITING)
            raw, waiting = pipe.execute()
            workers = events.list_workers(self.client)
        except REDIS_ERRORS:
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

        for name, doc in KIND_COUNTERS.items():
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


def registry_for(client: redis.Redis) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(client))
    return registry


def router(client: redis.Redis) -> fastapi.APIRouter:
    """GET /metrics for Prometheus (no API key: it shows counts, never content; keep the port private or let a
    reverse proxy guard it)."""
    registry = registry_for(client)
    r = fastapi.APIRouter()

    @r.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)

    return r
