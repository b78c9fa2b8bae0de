"""python -m worker.health: the container healthcheck. Healthy while a worker of this container keeps its
heartbeat in Redis (instance names start with the hostname, unique per replica)."""

from __future__ import annotations

import socket
import sys

from common import events, keys
from common.settings import get_settings


def main() -> int:
    client = events.connect(get_settings().redis_url)
    mine = client.scan_iter(match=keys.worker(f"{socket.gethostname()}-*"), count=1000)
    return 0 if next(mine, None) else 1


if __name__ == "__main__":
    sys.exit(main())
