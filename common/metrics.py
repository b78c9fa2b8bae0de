"""Prometheus metrics kept in Redis: whoever ends a job (common.events.finish) adds its counts to one hash in
the same atomic step, so every job is counted exactly once whatever the number of workers or web restarts.
The web exports the hash (web/http/metrics.py). Field names: '<metric>|<kind>|<label or bucket>'."""

from __future__ import annotations

from common.schemas import JobResult

BUCKETS: dict[str, tuple[float, ...]] = {
    "job_wait_seconds": (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    "job_duration_seconds": (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    "time_to_first_token_seconds": (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
}
REJECTED = "rejected"  # refused by the web before queueing (queue full, too many jobs of one client)


def field(metric: str, kind: str, label: str) -> str:
    return f"{metric}|{kind}|{label}"


def bucket(metric: str, value: float) -> str:
    """The smallest bound ≥ value ('+Inf' above the last); counts are stored per bucket, summed on export."""
    for bound in BUCKETS[metric]:
        if value <= bound:
            return f"{bound:g}"
    return "+Inf"


def observe(incr: dict[str, float], metric: str, kind: str, value: float | None) -> None:
    if value is None:
        return
    value = max(0.0, value)
    for key in (field(metric, kind, "le=" + bucket(metric, value)), field(metric, kind, "count")):
        incr[key] = incr.get(key, 0) + 1
    incr[field(metric, kind, "sum")] = incr.get(field(metric, kind, "sum"), 0) + value


def for_result(result: JobResult) -> dict[str, float]:
    """What one ended job adds: its count by status, tokens, and the three latency histograms."""
    kind = str(result.kind)
    incr: dict[str, float] = {field("jobs_total", kind, str(result.status)): 1}
    if result.generated_tokens:
        incr[field("generated_tokens_total", kind, "")] = result.generated_tokens
    if result.cached_tokens:
        incr[field("prompt_cached_tokens_total", kind, "")] = result.cached_tokens
    if result.prompt_tokens:
        incr[field("prompt_tokens_total", kind, "")] = result.prompt_tokens
    observe(incr, "job_wait_seconds", kind, result.queue_wait_s)
    observe(incr, "job_duration_seconds", kind, result.processing_s)
    if result.first_token_at is not None and result.queued_at is not None:
        observe(incr, "time_to_first_token_seconds", kind, result.first_token_at - result.queued_at)
    return incr
