"""deploy/swarm/stack.yml without an engine (the real `docker stack deploy` is in tests/docker/test_swarm.py): the
pinned Compose binary resolves it; web and workers mount no shared volume and use the S3 store through secret files;
two worker replicas spread over hosts; the GPU variant reserves one GPU per worker task; values the app accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "swarm" / "stack.yml"
GPU = ROOT / "deploy" / "swarm" / "stack.gpu.yml"


def resolved(*files: Path, **env: str) -> dict:
    compose = Path(sys.executable).parent / "docker-compose"
    args = [str(compose), "-p", "smolvlm2"]
    for f in files or (STACK,):
        args += ["-f", str(f)]
    proc = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def stack() -> dict:
    return resolved()


def test_services_and_replicas(stack) -> None:
    services = stack["services"]
    assert set(services) == {"redis", "s3", "web", "worker"}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["placement"]["preferences"] == [{"spread": "node.id"}]
    assert services["web"]["ports"][0]["target"] == 7860 and services["web"]["ports"][0]["mode"] == "host"
    # DNS round robin, no virtual IP: nothing of IPVS needed, no idle cut of long-lived Redis connections
    assert {s["deploy"]["endpoint_mode"] for s in services.values()} == {"dnsrr"}
    mesh = resolved(WEB_PUBLISH_MODE="ingress", WEB_ENDPOINT_MODE="vip")["services"]["web"]
    assert mesh["ports"][0]["mode"] == "ingress" and mesh["deploy"]["endpoint_mode"] == "vip"
    for name in ("redis", "s3"):  # their volumes live on the manager host
        assert services[name]["deploy"]["placement"]["constraints"] == ["node.role == manager"]
    assert resolved(WORKER_REPLICAS="5")["services"]["worker"]["deploy"]["replicas"] == 5
    gpu_only = "node.labels.smolvlm2.gpu == true"
    placed = resolved(WORKER_PLACEMENT=gpu_only)["services"]["worker"]["deploy"]["placement"]
    assert placed["constraints"] == [gpu_only]


def test_web_and_workers_share_nothing_but_redis_and_s3(stack) -> None:
    web, worker = stack["services"]["web"], stack["services"]["worker"]
    assert not web.get("volumes")  # no media volume at all
    assert [v["target"] for v in worker["volumes"]] == ["/data/hf_cache"]  # the host's own weights cache
    for svc in (web, worker):
        env = svc["environment"]
        assert env["MEDIA_STORE"] == "s3" and env["S3_ENDPOINT_URL"] == "http://s3:8333"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert {s["source"] for s in svc["secrets"]} == {"s3_access_key", "s3_secret_key"}
        assert env["AWS_ACCESS_KEY_ID_FILE"] == "/run/secrets/s3_access_key"
        assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env  # keys only as secrets
        s = Settings(_env_file=None, **{k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields})
        assert s.media_store == "s3" and s.s3_bucket == "smolvlm2-media"
    assert all(s["external"] for s in stack["secrets"].values())


def test_worker_gets_time_to_finish_a_job(stack) -> None:
    grace = stack["services"]["worker"]["stop_grace_period"]
    assert grace == "6m0s" and 360 > Settings(_env_file=None).job_hard_time_limit


def test_gpu_variant_reserves_one_gpu_per_worker() -> None:
    worker = resolved(STACK, GPU)["services"]["worker"]
    generic = worker["deploy"]["resources"]["reservations"]["generic_resources"]
    assert generic == [{"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}]
    assert worker["environment"]["MODEL_DEVICE"] == "cuda"
    assert worker["deploy"]["replicas"] == 2  # the base file's settings stay
