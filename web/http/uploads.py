"""Gradio's copies of uploaded files (its upload cache, GRADIO_TEMP_DIR): a refused upload goes at once.

Gradio keeps every upload in its cache until the hourly sweep (Blocks(delete_cache=...)), refused or not: a
client sending files that are then refused would fill the disk for an hour. discard() deletes one such copy
right away. It deletes only files that came in through Gradio's upload route (web.http.upload_guard registers
the paths Gradio returns): an example, a result file, anything in MEDIA_DIR is never touched.

Delete only on a refusal that belongs to the file itself (its type, its size, unreadable, too many pixels): the
cache is content-addressed, so another page showing the same file would have it refused too. A refusal that
depends on where the file was sent (a video where an image is expected) must keep it."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from common.errors import MediaError

log = logging.getLogger(__name__)

REMEMBERED = 50_000  # the most recent upload paths kept (older ones are left to Gradio's hourly sweep)
_received: OrderedDict[str, str | None] = OrderedDict()  # path → who sent it
_lock = threading.Lock()


def upload_folder() -> Path:
    """Gradio's upload cache, as Gradio itself names it (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _key(path: str | Path) -> str:
    return os.path.abspath(path)


def register(paths: Iterable[str], owner: str | None = None) -> None:
    """Paths Gradio's upload route returned: files a client (owner: the person, web.http.client.person) sent, which
    discard() may delete and web.http.artefacts serves to that person only."""
    with _lock:
        for p in paths:
            key = _key(p)
            _received[key] = owner
            _received.move_to_end(key)
        while len(_received) > REMEMBERED:
            _received.popitem(last=False)


def owner(path: str | Path) -> str | None:
    """Who sent this upload (None: not received through the upload route, or long ago)."""
    with _lock:
        return _received.get(_key(path))


def received(path: str | Path) -> bool:
    with _lock:
        return _key(path) in _received


def discard(path: str | Path | None) -> bool:
    """Delete an uploaded file from Gradio's upload cache (and its folder, <cache>/<hash>/, once empty); True if
    deleted. Anything else (not received through the upload route, outside the cache, the cache itself, a folder,
    a link) is left alone."""
    if not path or not received(path):
        return False
    root = upload_folder()
    try:
        target = Path(path)
        if target.is_symlink():
            return False
        target = target.resolve()
        if target == root or not target.is_relative_to(root) or not target.is_file():
            return False
        target.unlink()
    except OSError as exc:  # gone already (the sweep, a second refusal), or not ours to delete
        log.debug("upload copy not discarded: %s (%s)", path, exc)
        return False
    parent = target.parent
    if parent != root and parent.parent == root:
        try:
            os.rmdir(parent)  # only if empty
        except OSError:
            pass
    with _lock:
        _received.pop(_key(path), None)
    log.info("refused upload deleted from Gradio's cache: %s", target.name)
    return True


@contextmanager
def discard_on_refusal(path: str | Path | None) -> Iterator[None]:
    """Run the checks of an upload; if they refuse the file itself (MediaError), delete its copy and re-raise."""
    try:
        yield
    except MediaError:
        discard(path)
        raise


# ---------------------------------------------------------------- uploads under way (a send waits for them)

SETTLE_S = 3.0  # after an upload ends, its page's change event may still be on its way
_under_way: dict[str, int] = {}  # person → uploads being received now
_ended: dict[str, tuple[float, bool]] = {}  # person → (when the last one ended, whether it was accepted)


def upload_started(person: str) -> None:
    with _lock:
        _under_way[person] = _under_way.get(person, 0) + 1


def upload_ended(person: str, accepted: bool) -> None:
    with _lock:
        left = _under_way.get(person, 1) - 1
        if left > 0:
            _under_way[person] = left
        else:
            _under_way.pop(person, None)
        _ended[person] = (time.monotonic(), accepted)
        while len(_ended) > REMEMBERED:
            _ended.pop(next(iter(_ended)))


def upload_state(person: str) -> tuple[bool, float | None, bool]:
    """(an upload of this person is being received, when its last one ended or None, whether that was accepted)."""
    with _lock:
        ended = _ended.get(person)
        return bool(_under_way.get(person)), ended[0] if ended else None, ended[1] if ended else False
