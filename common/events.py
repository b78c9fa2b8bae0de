"""Redis side channels shared by web and worker: per-job event streams (started, partial text, done with the
result), the one atomic way a job ends (finish), cancel flags, and worker heartbeats."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis
from kombu.exceptions import OperationalError

from common import keys, metrics
from common.schemas import EventType, JobResult, JobStatus, WorkerInfo

STREAM_TTL_S = 3600
STREAM_MAXLEN = 64
# What Redis being away raises: redis-py's errors, kombu's when Celery sends a message, the socket's own.
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError, OSError)


def connect(url: str, max_connections: int = 32) -> redis.Redis:
    """A client whose pool blocks (up to 20 s) when all its connections are busy: a full pool is a wait,
    never an error that would look like Redis being down."""
    pool = redis.BlockingConnectionPool.from_url(
        url, decode_responses=True, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30,
        max_connections=max_connections, timeout=20,
    )
    return redis.Redis(connection_pool=pool)


@dataclass
class JobEvent:
    id: str
    type: EventType | str
    text: str
    tokens: int
    t: float
    result: str = ""  # done: the JobResult as JSON
    # partial: how much of text will not change any more (a translated answer's finished sentences; the rest is
    # the English still being written); None: all of it may only grow (an untranslated answer).
    stable: int | None = None


def parse_entry(entry_id: str, f: dict) -> JobEvent:
    stable = f.get("stable")
    return JobEvent(entry_id, f.get("type", ""), f.get("text", ""), int(f.get("tokens", 0) or 0),
                    float(f.get("t", 0) or 0), f.get("result", ""), int(stable) if stable not in (None, "") else None)


def add_event(client: redis.Redis, job_id: str, type_: EventType, text: str = "", tokens: int = 0,
              stable: int | None = None) -> None:
    fields = {"type": str(type_), "text": text, "tokens": tokens, "t": f"{time.time():.6f}"}
    if stable is not None:
        fields["stable"] = stable
    pipe = client.pipeline()
    pipe.xadd(keys.events(job_id), fields, maxlen=STREAM_MAXLEN, approximate=True)
    pipe.expire(keys.events(job_id), STREAM_TTL_S)
    pipe.execute()


def read_events(client: redis.Redis, job_id: str, last_id: str = "0", block_ms: int = 200) -> list[JobEvent]:
    """Events after last_id, waiting up to block_ms for the first one."""
    reply = client.xread({keys.events(job_id): last_id}, block=block_ms, count=100)
    return [parse_entry(entry_id, f) for _key, entries in reply or [] for entry_id, f in entries]


# KEYS: result, events, waiting, metrics, recent. ARGV: result JSON, result TTL, stream TTL, job id, time,
# processing seconds ('' if none), then metric field / increment pairs.
_FINISH = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 64, '*', 'type', 'done', 'text', '', 'tokens', 0, 't', ARGV[5],
           'result', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[4])
for i = 7, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 1]) end
if ARGV[6] ~= '' then
  redis.call('LPUSH', KEYS[5], ARGV[6])
  redis.call('LTRIM', KEYS[5], 0, 49)
end
return 1
"""


def finish(client: redis.Redis, result: JobResult, result_ttl: int) -> bool:
    """End the job with this result, once: the first writer wins (a worker's answer, or the web withdrawing a
    queued job), the done event carries the result, and the job's metrics are counted in the same step.
    False when the job had already ended."""
    payload = result.model_dump_json()
    incr = metrics.for_result(result)
    timed = result.processing_s is not None and result.status == JobStatus.ok  # queue time estimates: answers only
    processing = f"{result.processing_s:.3f}" if timed else ""
    args = [payload, result_ttl, STREAM_TTL_S, result.job_id, f"{time.time():.6f}", processing]
    for k, v in incr.items():
        args += [k, v]
    keys_ = [keys.result(result.job_id), keys.events(result.job_id), keys.WAITING, keys.METRICS,
             keys.recent(str(result.kind))]
    return bool(client.eval(_FINISH, len(keys_), *keys_, *args))


def get_result(client: redis.Redis, job_id: str) -> JobResult | None:
    raw = client.get(keys.result(job_id))
    return JobResult.model_validate_json(raw) if raw else None


def request_cancel(client: redis.Redis, job_id: str, ttl_s: int = STREAM_TTL_S) -> None:
    client.set(keys.cancel(job_id), "1", ex=ttl_s)


def publish_heartbeat(client: redis.Redis, info: WorkerInfo, ttl_s: float) -> None:
    info.updated_at = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.worker(info.name), info.model_dump_json(), px=int(ttl_s * 1000))
    pipe.sadd(keys.WORKERS, info.name)
    pipe.execute()


def remove_heartbeat(client: redis.Redis, name: str) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.delete(keys.worker(name))
    pipe.srem(keys.WORKERS, name)
    pipe.execute()


def list_workers(client: redis.Redis) -> list[WorkerInfo]:
    """Live workers (their heartbeats), read by name from the registry: no scan of the keyspace."""
    names = sorted(client.smembers(keys.WORKERS))
    if not names:
        return []
    workers = []
    for raw in client.mget([keys.worker(n) for n in names]):
        if raw:
            try:
                workers.append(WorkerInfo.model_validate(json.loads(raw)))
            except ValueError:
                continue
    return workers
