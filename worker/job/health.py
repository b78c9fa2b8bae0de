"""python -m worker.job.health: the container healthcheck. Healthy while a worker of this container keeps its
heartbeat in Redis (instance names start with the hostname, unique per replica)."""

from __future__ import annotations

import socket
import sys

from common import events
from common.settings import get_settings


def main() -> int:
    client = events.connect(get_settings().redis_url)
    mine = [w for w in events.list_workers(client) if w.name.startswith(f"{socket.gethostname()}-")]
    return 0 if mine else 1


if __name__ == "__main__":
    sys.exit(main())
