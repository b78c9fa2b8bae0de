"""The real stack for the queue benchmarks: redis-server on a free loopback port, `python -m worker`
processes and optionally `python -m web`, all with their own environment and logs under bench/work/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis

from bench.common import WORK
from common import events
from common.settings import Settings
from tests.procs import RedisServer, Service, base_env, free_port, wait_for


class Stack:
    """Context manager: `with Stack("queue", model, workers=1, web=True, MAX_NEW_TOKENS="4") as st: ...`."""

    def __init__(self, name: str, model: Path, workers: int = 1, web: bool = False, **env: str) -> None:
        self.name, self.model, self.n_workers, self.with_web = name, model, workers, web
        self.env = {"MAX_NEW_TOKENS": "4", "WORKER_HEARTBEAT_S": "0.5", **env}
        self.root = WORK / "stacks" / name
        self.redis: RedisServer | None = None
        self.workers: list[Service] = []
        self.web: Service | None = None
        self.port = 0

    # ------------------------------------------------------------ settings

    def settings(self, **overrides) -> Settings:
        values = dict(
            redis_url=self.redis.url, smolvlm2_model_id=str(self.model), media_dir=self.root / "media",
            results_dir=self.root / "results", model_device="cpu", hf_hub_offline=True,
            max_new_tokens=int(self.env["MAX_NEW_TOKENS"]), queue_wait_timeout=120,
        )
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def _env(self, **extra: str) -> dict[str, str]:
        return base_env(self.redis.url, self.model, self.root / "media", self.root / "results",
                        **{**self.env, **extra})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def client(self) -> redis.Redis:
        return events.connect(self.redis.url)

    # ------------------------------------------------------------ processes

    def start_worker(self, i: int) -> Service:
        log = self.root / "logs" / f"worker{i}.log"
        svc = Service("worker", self._env(), log).start()
        self.workers.append(svc)
        return svc

    def wait_workers(self, timeout: float = 180) -> None:
        client = self.client()

        def ready() -> bool:
            for svc in self.workers:
                if not svc.alive:
                    raise RuntimeError(f"worker exited:\n{svc.log_tail()}")
            infos = events.list_workers(client)
            tags = [f"-{svc.proc.pid}-" for svc in self.workers]
            return all(any(t in w.name and w.state == "ready" for w in infos) for t in tags)

        wait_for(ready, timeout, "workers ready", interval=0.1)

    def start_web(self, timeout: float = 120) -> Service:
        import httpx

        self.port = free_port()
        env = self._env(APP_HOST="127.0.0.1", APP_PORT=str(self.port), SAMPLES_DIR=str(WORK / "samples"),
                        GRADIO_ANALYTICS_ENABLED="False", NO_PROXY="127.0.0.1,localhost")
        self.web = Service("web", env, self.root / "logs" / "web.log").start()

        def up() -> bool:
            if not self.web.alive:
                raise RuntimeError(f"web exited:\n{self.web.log_tail()}")
            try:
                return httpx.get(self.url + "config", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, "web up", interval=0.2)
        return self.web

    def __enter__(self) -> Stack:
        shutil.rmtree(self.root, ignore_errors=True)
        for d in ("media", "results", "logs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.redis = self._own_redis()
        try:
            for i in range(self.n_workers):
                self.start_worker(i)
            if self.with_web:
                self.start_web()
            self.wait_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def _own_redis(self) -> RedisServer:
        """A redis-server of our own: the free port may be taken by another stack between the check and the
        start, and then the ping would answer from someone else's server."""
        for _ in range(5):
            server = RedisServer(self.root / "redis").start()
            time.sleep(0.2)
            if server.proc.poll() is None:
                return server
        raise RuntimeError("could not start redis-server on a free port")

    def worker_names(self) -> list[str]:
        """The heartbeat names (worker@host-pid-…) of this stack's workers."""
        tags = [f"-{svc.proc.pid}-" for svc in self.workers]
        return [w.name for w in events.list_workers(self.client()) if any(t in w.name for t in tags)]

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        for svc in [*self.workers, *([self.web] if self.web else [])]:
            try:
                svc.stop()
            except Exception:  # noqa: BLE001 - best effort on the way out
                svc.kill()
        if self.redis is not None:
            self.redis.stop()


def put_media(settings: Settings, path: Path):
    """Copy a file into the stack's MEDIA_DIR and return its MediaRef."""
    from common.schemas import MediaKind, MediaRef

    dest = settings.media_dir / path.name
    shutil.copyfile(path, dest)
    kind = MediaKind.video if path.suffix.lower() in (".mp4", ".webm", ".mov") else MediaKind.image
    return MediaRef(path=path.name, kind=kind)

