"""python -m web.users: who may log in (the AUTH_USERS file; docs/security.md).

    python -m web.users add NAME        # asks for the password twice (or reads one line from stdin)
    python -m web.users token NAME      # a new API token for /v1 (printed once; the old one stops working)
    python -m web.users remove NAME
    python -m web.users list
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from common.settings import get_settings
from web.http.users import NAME, Users

MIN_PASSWORD = 8


def _password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Пароль: ")
    if getpass.getpass("Пароль ещё раз: ") != first:
        sys.exit("Пароли не совпадают.")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web.users", description="Пользователи веб-интерфейса "
                                     "(файл AUTH_USERS).")
    parser.add_argument("command", choices=["add", "token", "remove", "list"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--file", type=Path, help="файл пользователей (по умолчанию — AUTH_USERS)")
    args = parser.parse_args(argv)
    path = args.file or get_settings().auth_users
    if path is None:
        parser.error("не задан файл: укажите --file или AUTH_USERS")
    users = Users(path)
    if args.command == "list":
        for user in users.all().values():
            print(user.name + ("  (есть API-токен)" if user.token_digest else ""))
        return 0
    if not args.name or not NAME.match(args.name):
        parser.error("имя: латинские буквы, цифры, _ . @ - (до 64 символов)")
    if args.command == "add":
        password = _password()
        if len(password) < MIN_PASSWORD:
            sys.exit(f"Пароль слишком короткий: нужно не меньше {MIN_PASSWORD} символов.")
        users.set_password(args.name, password)
        print(f"Пользователь {args.name} сохранён в {path}.")
    elif args.command == "token":
        if args.name not in users.all():
            sys.exit(f"Нет пользователя {args.name}: сначала python -m web.users add {args.name}.")
        print(users.new_token(args.name))
    elif not users.remove(args.name):
        sys.exit(f"Нет пользователя {args.name}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
