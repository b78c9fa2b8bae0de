"""python -m worker: one worker process (solo pool, concurrency 1) that owns the model."""

from __future__ import annotations

import logging
import os

from common.settings import get_settings


def main() -> None:
    settings = get_settings()
    if settings.hf_home:
        os.environ.setdefault("HF_HOME", settings.hf_home)
    if settings.hf_hub_offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from worker.job import tasks  # after the environment is set: Hugging Face libraries read it on import

    parts = tasks.start(settings)
    tasks.app.worker_main([
        "worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO", "--without-gossip",
        "--without-mingle", "--without-heartbeat", f"--hostname={parts.liveness.name}@%h",
        "-Q", f"{parts.liveness.queue},{tasks.app.conf.task_default_queue}",  # own queue first (common.queue)
    ])


if __name__ == "__main__":
    main()
