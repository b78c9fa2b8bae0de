"""The people who may come in (AUTH_USERS): a file of `name:password-hash[:token-hash]` lines, hashes by argon2id
(argon2-cffi), API tokens kept as their SHA-256 only. Read again when the file changes, so `python -m web.users add`
takes effect without a restart. The CLI (web/users.py) writes it."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
TOKEN_PREFIX = "sv2_"
_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password (no user probing).
_DUMMY = _hasher.hash(secrets.token_hex(16))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class User:
    name: str
    password_hash: str
    token_digest: str = ""

    def line(self) -> str:
        return ":".join([self.name, self.password_hash, *([self.token_digest] if self.token_digest else [])])


def parse(text: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) not in (2, 3) or not NAME.match(parts[0]) or not parts[1].startswith("$argon2"):
            log.warning("AUTH_USERS line %d ignored: expected name:argon2-hash[:token-sha256]", number)
            continue
        users[parts[0]] = User(*parts)
    return users


class Users:
    """The AUTH_USERS file, re-read when its modification time or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    def all(self) -> dict[str, User]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._users = parse(self.path.read_text(encoding="utf-8")) if stamp else {}
                except OSError as exc:
                    log.error("AUTH_USERS %s unreadable: %s", self.path, exc)
                    self._users = {}
                self._stamp = stamp
            return self._users

    def check_password(self, name: str, password: str) -> bool:
        user = self.all().get(name)
        try:
            return _hasher.verify(user.password_hash if user else _DUMMY, password) and user is not None
        except (VerificationError, InvalidHashError):
            return False

    def by_token(self, token: str) -> str | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        digest = token_digest(token)
        for user in self.all().values():
            if user.token_digest and hmac.compare_digest(user.token_digest, digest):
                return user.name
        return None

    # ------------------------------------------------------------ writing (the CLI)

    def save(self, users: dict[str, User]) -> None:
        """Write the file anew (0600), atomically: a web reading it meanwhile sees the old or the new one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# name:argon2-hash[:sha256 of the API token] (python -m web.users)\n")
            f.writelines(u.line() + "\n" for u in users.values())
        os.replace(tmp, self.path)

    def set_password(self, name: str, password: str) -> None:
        users = dict(self.all())
        old = users.get(name)
        users[name] = User(name, _hasher.hash(password), old.token_digest if old else "")
        self.save(users)

    def new_token(self, name: str) -> str:
        users = dict(self.all())
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        users[name].token_digest = token_digest(token)
        self.save(users)
        return token

    def remove(self, name: str) -> bool:
        users = dict(self.all())
        if users.pop(name, None) is None:
            return False
        self.save(users)
        return True
