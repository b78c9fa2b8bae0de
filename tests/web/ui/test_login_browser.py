"""Login in Chromium (English browser) against a real `python -m web` with AUTH_USERS: the page sends a stranger
to a Russian login form, a wrong password says so in Russian, the right one opens the app, which works (a question
answered); «Выйти» ends the session: the app and its API answer 401 again."""

from __future__ import annotations

import pytest

from tests.web.chromium import open_page
from tests.web.conftest import start_web
from tests.web.ui.test_ui_flows import question_box, wait_bots, wait_text
from web.http import login
from web.http.users import Users

pytestmark = [pytest.mark.integration, pytest.mark.browser]
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(settings, worker, tmp_path_factory):
    users = tmp_path_factory.mktemp("login-browser") / "users"
    Users(users).set_password("alice", PASSWORD)
    svc, url = start_web(settings, tmp_path_factory.mktemp("login-web"), name="web-login", AUTH_USERS=str(users))
    yield url
    svc.stop()


def test_login_page_wrong_password_right_password_logout(browser, site, media):
    pg = open_page(browser, site, wait_workers=False)
    try:
        assert pg.url.endswith("/login")
        assert pg.locator("html").get_attribute("lang") == "ru"
        assert pg.get_by_label("Имя пользователя").is_visible() and pg.get_by_label("Пароль").is_visible()
        pg.get_by_label("Имя пользователя").fill("alice")
        pg.get_by_label("Пароль").fill("not the password")
        pg.get_by_role("button", name="Войти").click()
        assert pg.locator("#login-error").inner_text() == login.BAD_LOGIN
        pg.get_by_label("Пароль").fill(PASSWORD)
        pg.get_by_role("button", name="Войти").click()
        pg.locator("#model-status").get_by_text("обработчиков: 1").wait_for()
        cookie = next(c for c in pg.context.cookies() if c["name"] == login.SESSION_COOKIE)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        pg.locator("#chat-file input[type=file]").set_input_files(str(media["scene"]))
        wait_text(pg, "#chat-status", "Изображение загружено")
        question_box(pg).fill("Что на картинке?")
        pg.locator("#chat-send").click()
        wait_bots(pg, 1)
        pg.locator("#logout").click()
        pg.wait_for_url("**/login")
        assert pg.request.get(site + "config").status == 401
        pg.goto(site)
        assert pg.url.endswith("/login")
    finally:
        pg.context.close()
