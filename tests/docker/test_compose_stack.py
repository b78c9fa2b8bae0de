"""The compose stack for real (make test-docker): docker-compose.yml as shipped, images built from the
Dockerfiles, the tiny test model from ./data/hf_cache, two workers. The tests run in file order on one
stack: what the containers are, the three API methods, a worker killed mid-job, Redis restarted with
jobs in flight, scaling to three workers, the int8 and OpenVINO CPU engines switched on in .env alone, and
`down -v` leaving nothing of the project behind."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from scripts.docker.compose import STATE_DIR, Stack, docker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]
LONG_QUESTION = "Describe every detail of this image."
ANSWER_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def api(stack: Stack, tmp_path_factory) -> Client:
    return Client(stack.url, verbose=False, download_files=str(tmp_path_factory.mktemp("docker-downloads")))


def new_client(stack: Stack) -> Client:
    return Client(stack.url, verbose=False, download_files=False)


# ---------------------------------------------------------------------------- job bookkeeping


@dataclass
class Batch:
    """Jobs submitted through the public API; each ends answered, errored (a message) or lost (no end)."""

    outcomes: list[dict] = field(default_factory=list)
    jobs: list = field(default_factory=list)

    def submit(self, client: Client, *args, api_name: str) -> None:
        self.jobs.append((time.monotonic(), client.submit(*args, api_name=api_name)))

    def collect(self, timeout: float = ANSWER_TIMEOUT_S, since: float | None = None) -> dict:
        """Wait for every job (all at once, each timed when it ends: seconds since `since` or its submit)."""
        deadline = time.monotonic() + timeout
        ended: dict[int, float] = {}
        while len(ended) < len(self.jobs) and time.monotonic() < deadline:
            for i, (_started, job) in enumerate(self.jobs):
                if i not in ended and job.done():
                    ended[i] = time.monotonic()
            time.sleep(0.1)
        for i, (started, job) in enumerate(self.jobs):
            if i not in ended:
                row = {"status": "lost", "detail": f"no answer within {timeout:.0f} s", "seconds": None}
                job.cancel()
            else:
                row = self._outcome(job)
                row["seconds"] = round(ended[i] - (since or started), 1)
            self.outcomes.append(row)
        return self.summary()

    @staticmethod
    def _outcome(job) -> dict:
        try:
            value = job.result(timeout=5)
        except AppError as exc:
            return {"status": "errored", "detail": str(exc)[:300]}
        except Exception as exc:  # noqa: BLE001 - every other end is recorded as it is
            return {"status": "errored", "detail": f"{type(exc).__name__}: {exc}"[:300]}
        text = value[0] if isinstance(value, tuple | list) else value
        ok = isinstance(text, str) and bool(text.strip())
        return {"status": "answered" if ok else "errored", "detail": repr(value)[:120]}

    def summary(self) -> dict:
        count = {s: sum(o["status"] == s for o in self.outcomes) for s in ("answered", "errored", "lost")}
        return {"submitted": len(self.jobs), **count, "outcomes": self.outcomes}


def wait_busy(stack: Stack, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [w for w in stack.heartbeats() if w.get("state") == "busy"]
        if busy:
            return busy
        time.sleep(0.2)
    raise AssertionError(f"no worker became busy within {timeout} s: {stack.heartbeats()}")


def wait_idle(stack: Stack, timeout: float = 300) -> float:
    """Seconds until the queue is empty and no worker is busy (checked twice, 3 s apart)."""
    from common.queue import QUEUE

    t0 = time.monotonic()
    quiet = 0
    while time.monotonic() - t0 < timeout:
        busy = [w for w in stack.heartbeats() if w.get("state") == "busy"]
        queued = int(stack.redis_cli("LLEN", QUEUE).strip() or 0)
        quiet = quiet + 1 if not busy and not queued else 0
        if quiet >= 2:
            return round(time.monotonic() - t0, 1)
        time.sleep(3)
    raise AssertionError(f"workers still busy after {timeout} s")


def assert_all_answered(result: dict) -> None:
    bad = [o for o in result["outcomes"] if o["status"] != "answered"]
    detail = json.dumps(bad, ensure_ascii=False)
    assert not bad, f"{result['answered']}/{result['submitted']} answered; not answered: {detail}"


# ---------------------------------------------------------------------------- the stack as started


def test_stack_is_up_and_healthy_as_configured(stack: Stack, report: dict) -> None:
    containers = {c["Name"].lstrip("/"): c for c in stack.containers()}
    services = sorted(c["Config"]["Labels"]["com.docker.compose.service"] for c in containers.values())
    assert services == ["redis", "web", "worker", "worker"]
    assert all(Stack.health(c) == "healthy" for c in containers.values())

    for name, c in containers.items():
        host = c["HostConfig"]
        assert host["Memory"] > 0, f"{name}: no memory limit"
        assert host["LogConfig"]["Type"] == "json-file"
        assert set(host["LogConfig"]["Config"]) >= {"max-size", "max-file"}, f"{name}: logs not rotated"
        service = c["Config"]["Labels"]["com.docker.compose.service"]
        if service in ("web", "worker"):
            assert c["Config"]["User"] == "1000:1000", f"{name} runs as {c['Config']['User']!r}"
    report["memory_limits_bytes"] = {n: c["HostConfig"]["Memory"] for n, c in containers.items()}

    # Redis as the compose command configures it, asked at run time.
    def config(key: str) -> str:
        return stack.redis_cli("CONFIG", "GET", key).split()[1]

    assert config("dir") == "/data"
    assert config("appendonly") == "yes"
    assert config("maxmemory-policy") == "noeviction"
    assert int(config("maxmemory")) == 512 * 1024 * 1024
    aof = stack.compose("exec", "-T", "redis", "ls", "/data").stdout.split()
    assert any(n.startswith("appendonly") for n in aof), f"no AOF on the volume: {aof}"

    # The processes inside run as uid 1000; the web image carries only common/ and web/ (+ the examples).
    assert stack.compose("exec", "-T", "web", "id", "-u").stdout.strip() == "1000"
    assert stack.compose("exec", "-T", "--index", "1", "worker", "id", "-u").stdout.strip() == "1000"
    probe = "import json, os; print(json.dumps([os.listdir('/app'), os.listdir(os.environ['SAMPLES_DIR'])]))"
    app, examples = json.loads(stack.compose("exec", "-T", "web", "python", "-c", probe).stdout)
    assert {"common", "web"} <= set(app) and not {"scripts", "worker", "tests"} & set(app), app
    assert {"clip.mp4", "scene.png", "text.png"} <= set(examples), examples
    no_torch = "import importlib.util; print(importlib.util.find_spec('torch') is None)"
    assert stack.compose("exec", "-T", "web", "python", "-c", no_torch).stdout.strip() == "True", "torch in web"

    workers = stack.heartbeats()
    assert len(workers) == 2 and all(w["state"] == "ready" for w in workers), workers
    assert {w["model_id"] for w in workers} == {"/data/hf_cache/test-model"}
    assert all(stack.container_of(w["name"]) is not None for w in workers)


def test_the_three_api_methods(stack: Stack, api: Client, media: dict[str, Path], report: dict) -> None:
    timings = {}

    def call(label: str, *args, api_name: str):
        t0 = time.monotonic()
        value = api.predict(*args, api_name=api_name)
        timings[label] = round(time.monotonic() - t0, 1)
        return value

    answer = call("vqa_image", handle_file(str(media["scene"])), "Опиши изображение", [], api_name="/vqa")
    assert isinstance(answer, str) and answer.strip()
    follow = call("vqa_image_follow_up", handle_file(str(media["scene"])), "А какого цвета фон?",
                  [["Опиши изображение", answer]], api_name="/vqa")
    assert isinstance(follow, str) and follow.strip()
    answer = call("vqa_video", handle_file(str(media["video"])), "Опиши видео", [], api_name="/vqa")
    assert isinstance(answer, str) and answer.strip()
    text, path = call("ocr", handle_file(str(media["text"])), api_name="/ocr")
    assert isinstance(text, str) and text.strip()
    assert Path(path).read_text(encoding="utf-8") == text  # the result file, served by the web container
    answer = call("describe_region", handle_file(str(media["scene"])), "80,160,208,288", api_name="/describe_region")
    assert isinstance(answer, str) and answer.strip()
    with pytest.raises(AppError, match="ровно четыре целых числа"):
        api.predict(handle_file(str(media["scene"])), "1,2,3", api_name="/describe_region")

    # Gradio's upload cache is on the media volume (GRADIO_TEMP_DIR=/data/media/gradio), not in the layer.
    probe = "import pathlib; print(sum(p.is_file() for p in pathlib.Path('/data/media/gradio').rglob('*')))"
    count = stack.compose("exec", "-T", "web", "python", "-c", probe).stdout.strip()
    assert int(count) >= 3, f"{count} files in /data/media/gradio"
    report["api_seconds"] = timings


# ---------------------------------------------------------------------------- faults


def test_worker_killed_mid_job_the_callers_still_get_answers(stack: Stack, media: dict[str, Path],
                                                              report: dict) -> None:
    client, batch = new_client(stack), Batch()
    for _ in range(4):
        batch.submit(client, handle_file(str(media["scene"])), LONG_QUESTION, [], api_name="/vqa")
    busy = wait_busy(stack)[0]
    victim = stack.container_of(busy["name"])
    assert victim is not None, busy
    docker("kill", "--signal", "KILL", victim["Id"])
    killed_at = time.monotonic()
    result = batch.collect(since=killed_at)
    result.update(killed=victim["Name"].lstrip("/"), killed_job=busy.get("job_id"),
                  last_answer_after_kill_s=max((o["seconds"] or 0 for o in result["outcomes"]), default=0))
    report["scenarios"]["worker kill -9 mid-job"] = result

    docker("start", victim["Id"])  # `docker kill` counts as a manual stop: restart policies do not apply
    report["scenarios"]["worker kill -9 mid-job"]["restarted_to_healthy_s"] = round(
        stack.wait_healthy({"redis": 1, "web": 1, "worker": 2}), 1)
    assert_all_answered(result)


def test_redis_restart_with_jobs_in_flight_all_answered(stack: Stack, media: dict[str, Path], report: dict) -> None:
    client, batch = new_client(stack), Batch()
    for i in range(6):
        if i % 2:
            batch.submit(client, handle_file(str(media["scene"])), LONG_QUESTION, [], api_name="/vqa")
        else:
            batch.submit(client, handle_file(str(media["scene"])), "80,160,208,288", api_name="/describe_region")
    busy = wait_busy(stack)
    t0 = time.monotonic()
    stack.compose("restart", "redis", timeout=120)
    restart_s = round(time.monotonic() - t0, 1)
    result = batch.collect(since=t0)
    result.update(busy_at_restart=len(busy), redis_restart_s=restart_s)
    report["scenarios"]["redis restart, jobs in flight"] = result
    try:
        result["all_healthy_after_s"] = round(stack.wait_healthy({"redis": 1, "web": 1, "worker": 2}, timeout=180), 1)
        # Until the workers are idle again (work done for callers who may already have been told it failed).
        result["workers_busy_after_answers_s"] = wait_idle(stack)
    finally:
        assert_all_answered(result)


def test_scale_to_three_workers(stack: Stack, media: dict[str, Path], report: dict) -> None:
    wait_idle(stack)  # nothing left over from the scenarios above
    t0 = time.monotonic()
    stack.compose("up", "-d", "--scale", "worker=3", "--no-recreate", timeout=300)
    stack.wait_healthy({"redis": 1, "web": 1, "worker": 3})
    row = {"to_healthy_s": round(time.monotonic() - t0, 1)}
    workers = stack.heartbeats()
    assert len(workers) == 3, workers
    containers = {stack.container_of(w["name"])["Id"] for w in workers}
    assert len(containers) == 3, "each replica is its own container with its own heartbeat"

    client, batch = new_client(stack), Batch()
    batch.submit(client, handle_file(str(media["scene"])), "Опиши изображение", [], api_name="/vqa")
    result = batch.collect()
    row.update(result)
    report["scenarios"]["scale worker=3"] = row
    assert_all_answered(result)


def test_the_cpu_engine_is_chosen_in_env_alone(stack: Stack, media: dict[str, Path], report: dict) -> None:
    """MODEL_ENGINE=torch-int8 written into .env and `compose up -d` again: the workers are recreated with the int8
    engine (same image, nothing else changed) and answer; the heartbeat says int8."""
    wait_idle(stack)
    t0 = time.monotonic()
    stack.write_env(**{**stack.settings, "MODEL_ENGINE": "torch-int8", "WORKER_REPLICAS": "1"})
    stack.compose("up", "-d", timeout=300)
    stack.wait_healthy({"redis": 1, "web": 1, "worker": 1})
    workers = [w for w in stack.heartbeats() if stack.container_of(w["name"]) is not None]
    assert [(w["state"], w["dtype"]) for w in workers] == [("ready", "int8")], workers
    client, batch = new_client(stack), Batch()
    batch.submit(client, handle_file(str(media["scene"])), "Опиши изображение", [], api_name="/vqa")
    batch.submit(client, handle_file(str(media["text"])), api_name="/ocr")
    result = batch.collect()
    report["scenarios"]["MODEL_ENGINE=torch-int8 from .env"] = {"to_healthy_s": round(time.monotonic() - t0, 1),
                                                                 **result}
    assert_all_answered(result)


def test_the_openvino_engine_is_chosen_in_env_alone(stack: Stack, media: dict[str, Path], report: dict) -> None:
    """MODEL_ENGINE=openvino-int4 in .env and `compose up -d --build`: the worker image is rebuilt with OpenVINO (its
    own stage of Dockerfile.worker, on the torch image's layers), the worker exports the test model into
    ./data/hf_cache/openvino/ once and answers; the heartbeat says int4. The torch image is built back after."""
    wait_idle(stack)
    torch_env = dict(stack.settings)
    t0 = time.monotonic()
    stack.write_env(**{**torch_env, "MODEL_ENGINE": "openvino-int4", "WORKER_REPLICAS": "1"})
    try:
        stack.compose("up", "-d", "--build", timeout=1800)
        build_s = round(time.monotonic() - t0, 1)
        stack.wait_healthy({"redis": 1, "web": 1, "worker": 1}, timeout=600)
        workers = [w for w in stack.heartbeats() if stack.container_of(w["name"]) is not None]
        assert [(w["state"], w["dtype"]) for w in workers] == [("ready", "int4")], workers
        int4 = next(p for p in stack.openvino_exports() if p.name.endswith("-int4"))
        assert (int4 / "export.json").is_file(), int4
        client, batch = new_client(stack), Batch()
        batch.submit(client, handle_file(str(media["scene"])), "Опиши изображение", [], api_name="/vqa")
        batch.submit(client, handle_file(str(media["text"])), api_name="/ocr")
        result = batch.collect()
        report["scenarios"]["MODEL_ENGINE=openvino-int4 from .env"] = {
            "build_and_up_s": build_s, "to_healthy_s": round(time.monotonic() - t0, 1), **result}
        assert_all_answered(result)
    finally:
        stack.write_env(**torch_env)
        stack.compose("build", "worker", timeout=900)  # the torch image back under the project's tag (cached)


def test_down_v_removes_the_project(stack: Stack, report: dict) -> None:
    stats = docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}",
                   *[c["Id"] for c in stack.containers()], check=False).stdout
    report["memory"] = dict(line.split(" ", 1) for line in stats.splitlines() if " " in line)
    stack.save_logs(STATE_DIR / "logs")
    left = stack.down()
    assert left == {"containers": [], "volumes": [], "networks": []}, left
    # The built images stay (down -v removes only the project's containers, volumes and network).
    assert docker("image", "inspect", f"{stack.project}-web", check=False).returncode == 0
