"""`make run`: the whole stack on this machine without Docker, in one command.

    python scripts/run_local.py
    SMOLVLM2_MODEL_ID=data/test-model TRANSLATION_MODEL_RU_EN=data/test-translation-ru-en \
      TRANSLATION_MODEL_EN_RU=data/test-translation-en-ru HF_HUB_OFFLINE=1 python scripts/run_local.py  # tiny models
    WORKERS=2 python scripts/run_local.py
    MODEL_ENGINE=openvino-int4 python scripts/run_local.py  # the workers from .venv-ov (docs/engines.md)

Starts redis-server when REDIS_URL points at this machine and nothing listens there, then WORKERS worker
processes (default 1), then the web; their output is shown here with a [name] prefix. Ctrl+C (SIGINT) or
SIGTERM stops everything it started: the web first, then the workers, then redis-server.
Settings come from the environment and .env, as for `python -m web` / `python -m worker`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}


def say(text: str) -> None:
    print(f"[run_local] {text}", flush=True)


def start_redis(url: str):
    from scripts.stack import RedisServer, listening

    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss") or (parsed.hostname or "") not in LOCAL_HOSTS:
        say(f"Redis: {url} (внешний, не запускаю)")
        return None
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if listening(host, port):
        say(f"Redis уже работает на {host}:{port}")
        return None
    bind = "127.0.0.1" if host in ("localhost", "0.0.0.0", "") else host
    try:
        server = RedisServer(tempfile.mkdtemp(prefix="smolvlm2-redis-"), port=port, host=bind).start()
    except RuntimeError as exc:
        raise SystemExit(f"[run_local] {exc}") from None
    say(f"redis-server запущен на {bind}:{port} (данные не сохраняются на диск)")
    return server


def ensure_samples(folder: Path) -> None:
    """The UI's example media (as `make setup` does), made here when missing: the web only reads them."""
    if not (folder / "clip.mp4").is_file():
        from scripts import samples

        samples.write_all(folder)


def worker_python(engine: str) -> str:
    """The workers' interpreter: MODEL_ENGINE=openvino-* runs them from the OpenVINO venv (made here once)."""
    if not engine.startswith("openvino"):
        return sys.executable
    python = ROOT / ".venv-ov" / "bin" / "python"
    if not python.exists():
        say(f"MODEL_ENGINE={engine}: готовлю окружение OpenVINO (.venv-ov, один раз, несколько минут)…")
        subprocess.run(["bash", str(ROOT / "scripts" / "setup_openvino.sh")], check=True)
    return str(python)


def main() -> int:
    os.chdir(ROOT)  # .env and the relative data/ paths are read from the repository root
    sys.path.insert(0, str(ROOT))
    from common.settings import get_settings
    from scripts.stack import Service, stop_in_order

    settings = get_settings()
    stopping = False

    def on_signal(signum: int, _frame) -> None:
        nonlocal stopping
        if not stopping:
            say(f"получен {signal.Signals(signum).name}: останавливаю всё запущенное…")
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ensure_samples(settings.samples_dir)
    redis_server = start_redis(settings.redis_url)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    n = settings.workers
    python = worker_python(settings.model_engine)
    workers = [Service.module(f"worker-{i}" if n > 1 else "worker", "worker", env, python=python).start()
               for i in range(1, n + 1)]
    say(f"обработчиков: {n}, модель {settings.smolvlm2_model_id} (загрузка может занять время)")
    web = Service.module("web", "web", env).start()
    host = "localhost" if settings.app_host in ("0.0.0.0", "::", "") else settings.app_host
    say(f"веб-интерфейс: http://{host}:{settings.app_port}/ — Ctrl+C останавливает всё")
    code, reported = 0, set()
    try:
        while not stopping:
            if not web.alive:
                say(f"веб-интерфейс завершился (код {web.proc.returncode})")
                code = web.proc.returncode or 1
                break
            for w in workers:
                if not w.alive and w.name not in reported:
                    reported.add(w.name)
                    say(f"{w.name} завершился (код {w.proc.returncode}); остальное продолжает работать")
            if redis_server is not None and not redis_server.alive and "redis" not in reported:
                reported.add("redis")
                say("redis-server завершился: очередь недоступна")
            time.sleep(0.5)
    finally:
        stop_in_order([web], workers, [redis_server])
        if redis_server is not None:
            shutil.rmtree(redis_server.workdir, ignore_errors=True)
        say("остановлено")
    return code


if __name__ == "__main__":
    sys.exit(main())
