"""deploy/swarm/stack.yml for real (make test-docker): `docker stack deploy` on a single-node swarm of the test's
engine, the S3 mode on (SeaweedFS as a service), web and 2 worker replicas placed by the orchestrator and sharing
no volume, the three job kinds and a video answered with every file going through the store, a worker replica
killed mid-job with every job still answered once, and `docker stack rm` leaving nothing behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from scripts.docker.compose import STATE_DIR, Stack, docker
from scripts.docker.swarm import SwarmStack
from tests.docker.test_compose_stack import Batch, assert_all_answered

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
LONG_QUESTION = "Describe every detail of this image."


@pytest.fixture(scope="module")
def swarm(report):
    Stack.install_test_model()  # the compose test's `down` took it away
    s = SwarmStack()
    t0 = time.monotonic()
    s.deploy()
    s.wait_healthy({"redis": 1, "s3": 1, "web": 1, "worker": 2})
    report.setdefault("swarm", {})["deploy_to_healthy_s"] = round(time.monotonic() - t0, 1)
    yield s
    if not s.is_down:
        s.save_logs(STATE_DIR / "logs")
        s.down()


@pytest.fixture(scope="module")
def api(swarm, tmp_path_factory) -> Client:
    return Client(swarm.url, verbose=False, download_files=str(tmp_path_factory.mktemp("swarm-downloads")))


def test_placed_by_the_orchestrator_sharing_no_volume(swarm: SwarmStack) -> None:
    containers = swarm.containers()
    assert sorted(swarm.service_of(c) for c in containers) == ["redis", "s3", "web", "worker", "worker"]
    for c in containers:
        service = swarm.service_of(c)
        mounts = {m["Destination"]: m for m in c["Mounts"]}
        env = dict(e.split("=", 1) for e in c["Config"]["Env"])
        if service == "web":
            assert not mounts, f"web mounts {list(mounts)}"
        if service == "worker":
            assert list(mounts) == ["/data/hf_cache"], f"worker mounts {list(mounts)}"
        if service in ("web", "worker"):
            assert env["MEDIA_STORE"] == "s3" and "AWS_SECRET_ACCESS_KEY" not in env
            secret_files = swarm.exec(service, "ls", "/run/secrets").split()
            assert sorted(secret_files) == ["s3_access_key", "s3_secret_key"]
    assert len({c["Config"]["Hostname"] for c in swarm.containers("worker")}) == 2
    beats = swarm.heartbeats()
    assert len(beats) == 2 and {b["state"] for b in beats} == {"ready"}


def test_three_job_kinds_and_a_video_through_the_store(swarm: SwarmStack, api: Client, media, report) -> None:
    t0 = time.monotonic()
    answer = api.predict(handle_file(str(media["scene"])), "Опиши изображение", [], api_name="/vqa")
    assert isinstance(answer, str) and answer.strip()
    follow = api.predict(handle_file(str(media["scene"])), "Какого цвета небо?", [["Опиши изображение", answer]],
                         api_name="/vqa")
    assert follow.strip()
    video = api.predict(handle_file(str(media["video"])), "Опиши видео", [], api_name="/vqa")
    assert video.strip()
    text, txt = api.predict(handle_file(str(media["text"])), api_name="/ocr")
    assert Path(txt).name.startswith("ocr_result_") and Path(txt).read_text(encoding="utf-8") == text
    region = api.predict(handle_file(str(media["scene"])), "80,160,208,288", api_name="/describe_region")
    assert region.strip()
    report["swarm"]["api_s"] = round(time.monotonic() - t0, 1)
    stored = swarm.stored_keys()
    uploads = [k for k in stored if k.startswith("uploads/")]
    assert {Path(k).suffix for k in uploads} == {".png", ".mp4"} and len(uploads) == 3, stored
    assert any(k.startswith("results/frames/") and k.endswith(".jpg") for k in stored), stored  # the video's frames
    assert any(k.startswith("results/") and Path(k).name.startswith("ocr_result_") for k in stored), stored


def jobs_ok(swarm: SwarmStack) -> int:
    from common import keys, metrics

    return int(float(swarm.redis_cli("HGET", keys.METRICS, metrics.field("jobs_total", "chat", "ok")).strip() or 0))


def test_worker_replica_killed_mid_job_every_job_answered_once(swarm: SwarmStack, media, report) -> None:
    before = jobs_ok(swarm)
    batch = Batch()
    clients = [Client(swarm.url, verbose=False, download_files=False) for _ in range(4)]
    for i, client in enumerate(clients):
        batch.submit(client, handle_file(str(media["scene"])), f"{LONG_QUESTION} ({i})", [], api_name="/vqa")
    deadline = time.monotonic() + 90
    busy = []
    while not busy and time.monotonic() < deadline:
        busy = [w for w in swarm.heartbeats() if w.get("state") == "busy"]
        time.sleep(0.2)
    assert busy, "no worker became busy"
    victim = swarm.container_of(busy[0]["name"])
    assert victim is not None
    killed_at = time.monotonic()
    docker("kill", "--signal", "KILL", victim["Id"])
    result = batch.collect(since=killed_at)
    report["swarm"]["kill_worker"] = {k: v for k, v in result.items() if k != "outcomes"}
    assert_all_answered(result)
    from common import keys

    assert jobs_ok(swarm) - before == 4  # each job ended once: the killed one was run again, not answered twice
    # The orchestrator replaces the killed task: two healthy workers again.
    report["swarm"]["replaced_worker_healthy_s"] = swarm.wait_healthy({"worker": 2}, timeout=240)
    assert victim["Id"] not in {c["Id"] for c in swarm.containers("worker")}
    assert int(swarm.redis_cli("EXISTS", keys.worker(busy[0]["name"])).strip() or 0) == 0


def test_stack_rm_leaves_nothing(swarm: SwarmStack) -> None:
    swarm.save_logs(STATE_DIR / "logs")
    left = swarm.down()
    assert not any(left.values()), left
