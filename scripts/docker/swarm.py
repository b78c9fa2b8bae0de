"""deploy/swarm/stack.yml as the Docker test runs it: a single-node swarm on the test's engine (initialised here, and
left again at the end, unless the engine was in a swarm already), the S3 server's image built from
deploy/seaweedfs/Dockerfile, generated keys as swarm secrets, the web and worker images of the compose build, the
test model from ./data/hf_cache. Used by scripts/docker/test.sh (`python -m scripts.docker.swarm build|down`) and
tests/docker/test_swarm.py. Everything made here carries the stack's name (smolvlm2-swarm-test), and only that is
removed."""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.docker.compose import PROJECT, ROOT, STATE_DIR, ComposeError, Workers, docker, free_port, run

STACK_NAME = "smolvlm2-swarm-test"
S3_IMAGE = f"{PROJECT}-s3"
STACK_FILE = ROOT / "deploy" / "swarm" / "stack.yml"
OURS = STATE_DIR / "swarm-initialised-here"


def swarm_state() -> str:
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()


def build_s3_image() -> float:
    t0 = time.monotonic()
    docker("build", "-f", str(ROOT / "deploy" / "seaweedfs" / "Dockerfile"), "-t", S3_IMAGE, str(ROOT), timeout=900)
    return round(time.monotonic() - t0, 1)


@dataclass
class SwarmStack(Workers):
    name: str = STACK_NAME
    env: dict[str, str] = field(default_factory=dict)
    is_down: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['APP_PORT']}/"

    # ------------------------------------------------------------------ up

    def init_swarm(self) -> None:
        if swarm_state() != "active":
            docker("swarm", "init", "--advertise-addr", "127.0.0.1", timeout=120)
            OURS.write_text("1")

    def create_secrets(self) -> dict[str, str]:
        keys = {"s3_access_key": "swarm" + secrets.token_hex(6), "s3_secret_key": secrets.token_hex(20)}
        for short, value in keys.items():
            name = f"{self.name}_{short}"
            docker("secret", "rm", name, check=False)
            run(["docker", "secret", "create", name, "-"], input=value, timeout=60)
        return keys

    def deploy(self, **overrides: str) -> None:
        self.init_swarm()
        self.keys = self.create_secrets()
        self.env = {
            "WEB_IMAGE": f"{PROJECT}-web", "WORKER_IMAGE": f"{PROJECT}-worker", "S3_IMAGE": S3_IMAGE,
            "S3_SECRET_PREFIX": self.name, "HF_CACHE_DIR": str(ROOT / "data" / "hf_cache"),
            "SMOLVLM2_MODEL_ID": "/data/hf_cache/test-model", "HF_HUB_OFFLINE": "1", "APP_PORT": str(free_port()),
            "WORKER_REPLICAS": "2", "MAX_NEW_TOKENS": "64", "WORKER_MEM_LIMIT": "3g", "S3_OUTAGE_GRACE_S": "60",
            **overrides,
        }
        argv = ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(STACK_FILE), self.name]
        proc = subprocess.run(argv, env={**_base_env(), **self.env}, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise ComposeError(f"stack deploy -> {proc.returncode}\n{proc.stderr}{proc.stdout}")

    # ------------------------------------------------------------------ look

    def containers(self, service: str | None = None) -> list[dict]:
        filters = ["--filter", f"label=com.docker.stack.namespace={self.name}"]
        if service:
            filters += ["--filter", f"label=com.docker.swarm.service.name={self.name}_{service}"]
        ids = docker("ps", "-q", *filters).stdout.split()
        return json.loads(docker("inspect", *ids).stdout) if ids else []

    @staticmethod
    def service_of(container: dict) -> str:
        return container["Config"]["Labels"]["com.docker.swarm.service.name"].split("_", 1)[1]

    def wait_healthy(self, counts: dict[str, int], timeout: float = 420) -> float:
        """Seconds until exactly `counts` running containers per service, each healthy (or running without a
        healthcheck)."""
        t0 = time.monotonic()
        last = ""
        while time.monotonic() - t0 < timeout:
            states: dict[str, list[str]] = {}
            for c in self.containers():
                health = (c["State"].get("Health") or {}).get("Status") or c["State"]["Status"]
                states.setdefault(self.service_of(c), []).append(health)
            last = json.dumps(states, sort_keys=True)
            if all(sorted(states.get(s, [])) == ["healthy"] * n for s, n in counts.items()):
                return round(time.monotonic() - t0, 1)
            time.sleep(2)
        tasks = docker("stack", "ps", "--no-trunc", self.name, check=False).stdout
        raise ComposeError(f"swarm stack not healthy after {timeout:.0f} s: {last}\n{tasks}")

    def exec(self, service: str, *argv: str, timeout: float = 60, check: bool = True) -> str:
        (c, *_) = self.containers(service)
        return docker("exec", c["Id"], *argv, timeout=timeout, check=check).stdout

    def redis_cli(self, *args: str) -> str:
        return self.exec("redis", "redis-cli", *args, timeout=30)

    def stored_keys(self) -> list[str]:
        """The object keys in the stack's bucket, listed from inside the web container with its own settings."""
        code = ("from common.settings import get_settings; from common.store import store_from_settings; "
                "s = store_from_settings(get_settings()); "
                "print('\\n'.join(o['Key'] for p in s.client.get_paginator('list_objects_v2')"
                ".paginate(Bucket=s.bucket) for o in p.get('Contents', [])))")
        return self.exec("web", "python", "-c", code).split()

    def save_logs(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for service in ("redis", "s3", "web", "worker"):
            out = docker("service", "logs", "--no-task-ids", "--timestamps", f"{self.name}_{service}",
                         check=False, timeout=120)
            (folder / f"{self.name}_{service}.log").write_text(out.stdout + out.stderr, encoding="utf-8")

    # ------------------------------------------------------------------ down

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.stack.namespace={self.name}"
        return {
            "services": docker("service", "ls", "-q", "--filter", label).stdout.split(),
            "containers": docker("ps", "-aq", "--filter", label).stdout.split(),
            "networks": docker("network", "ls", "-q", "--filter", label).stdout.split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
            "secrets": docker("secret", "ls", "-q", "--filter", f"name={self.name}_").stdout.split(),
        }

    def down(self) -> dict[str, list[str]]:
        """`docker stack rm`, then its volumes and secrets; the swarm is left if this test started it."""
        if swarm_state() != "active":
            self.is_down = True
            return {}
        docker("stack", "rm", self.name, check=False, timeout=120)
        label = f"label=com.docker.stack.namespace={self.name}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and docker("ps", "-aq", "--filter", label).stdout.split():
            time.sleep(1)
        # `stack rm` removes the networks once; when that races the tasks' endpoints going away, the engine gives up
        # and the network stays (moby#30064, docker/for-linux#531: seen once in 3 CI rehearsals). Removed here as an
        # operator would (docs/deploy.md), and said so.
        deadline = time.monotonic() + 60
        while networks := docker("network", "ls", "-q", "--filter", label).stdout.split():
            if time.monotonic() > deadline:
                break
            time.sleep(2)
            for network in networks:
                if docker("network", "rm", network, check=False).returncode == 0:
                    print(f"[swarm] network {network} left by stack rm: removed with docker network rm",
                          file=sys.stderr)
        for volume in docker("volume", "ls", "-q", "--filter", label).stdout.split():
            docker("volume", "rm", volume, check=False)
        for secret in docker("secret", "ls", "-q", "--filter", f"name={self.name}_").stdout.split():
            docker("secret", "rm", secret, check=False)
        left = self.leftovers()
        if OURS.exists():
            docker("swarm", "leave", "--force", check=False, timeout=120)
            OURS.unlink()
        self.is_down = True
        return left


def _base_env() -> dict[str, str]:
    from scripts.docker.compose import clean_env

    return clean_env()


def main() -> None:
    parser = argparse.ArgumentParser(description="The Docker test's swarm stack.")
    parser.add_argument("action", choices=["build", "down"])
    args = parser.parse_args()
    if args.action == "build":
        seconds = build_s3_image()
        (STATE_DIR / "s3-image.json").write_text(json.dumps({"s3_image_build_s": seconds}), encoding="utf-8")
        print(f"[swarm] S3 image {S3_IMAGE}: {seconds:.0f} s", file=sys.stderr)
    else:
        left = SwarmStack().down()
        if any(left.values()):
            print(f"[swarm] left over after stack rm: {left}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
