"""The doors of a real `python -m web` with login on (AUTH_USERS): every route of the app's real route list (the
FastAPI app Gradio builds from the same Blocks and routes as web.app) is closed (404) or needs a person (401, the
page a redirect to /login) without a session, and the routes the app uses work with one; a route added later is
closed until it is listed in web.http.doors.ROUTES. Login, logout, a wrong password, brute force slowed, API
tokens and API_KEY on /v1, METRICS_TOKEN, the trusted proxy's user header."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from common.store import MediaStore
from tests.conftest import ARTIFACTS
from tests.web.conftest import start_web
from web.http import doors, login
from web.http.users import Users

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"
KEY = "doors-api-key-0123456789"
METRICS = "doors-metrics-token-0123"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "users"
    users = Users(path)
    users.set_password("alice", PASSWORD)
    users.set_password("bob", PASSWORD + "!")
    return path, users.new_token("alice")


@pytest.fixture(scope="module")
def site(settings, worker, tmp_path_factory, users_file):
    path, token = users_file
    svc, url = start_web(settings, tmp_path_factory.mktemp("doors-web"), name="web-doors", AUTH_USERS=str(path),
                         API_KEY=KEY, METRICS_TOKEN=METRICS, TRUSTED_PROXIES="127.0.0.2",
                         AUTH_PROXY_HEADER="X-Forwarded-User")
    yield url, token
    svc.stop()


def logged_in(url: str, user: str = "alice", password: str = PASSWORD) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=60)
    r = http.post("/login", data={"username": user, "password": password, "next": "/"})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text[:300]
    assert login.SESSION_COOKIE in http.cookies
    return http


def app_routes(settings) -> list[tuple[str, str]]:
    """(method, path template) of every route of the app as web.app builds it."""
    from gradio.routes import App

    from web import app as composition
    from web.queue.client import JobClient
    from web.queue.registry import ActiveJobs
    from web.ui.layout import Handlers, build_blocks

    store = MediaStore(settings.media_dir, settings.results_dir, settings.max_upload_bytes)
    client = JobClient(settings)
    demo = build_blocks(Handlers.build(settings, client, store, ActiveJobs()), settings, {})
    demo.queue()
    fastapi_app = App.create_app(demo, app_kwargs={"routes": composition.routes(settings, client, store)})
    found: list[tuple[str, str]] = []

    def walk(routes) -> None:
        for r in routes:
            if hasattr(r, "path"):
                found.extend((m, r.path) for m in sorted(getattr(r, "methods", None) or {"GET"}))
            else:
                walk(r.original_router.routes)

    walk(fastapi_app.routes)
    return found


def concrete(path: str) -> str:
    """A request path for a template: every {parameter} filled with a plausible value."""
    return re.sub(r"\{[^}]+\}", lambda m: "x.png" if "path" in m[0] else "abc123", path)


def test_every_route_of_the_app_is_closed_or_needs_a_person(settings, site):
    url, _ = site
    routes = app_routes(settings)
    assert len(routes) > 60  # Gradio's own and the app's: the real list, not a sample
    with httpx.Client(base_url=url, timeout=60) as anon:
        for method, template in routes:
            path = concrete(template)
            r = anon.request(method, path)
            assert r.status_code in (303, 401, 404), (method, template, r.status_code)
            if doors.route_open(method, path):
                assert r.status_code in (303, 401), (method, template)
                if r.status_code == 303:
                    assert r.headers["location"].startswith("/login")


# The routes the app uses, with a session: (method, path, what answers).
USED = [
    ("GET", "/", 200), ("GET", "/config", 200), ("GET", "/gradio_api/info", 200), ("GET", "/theme.css", 200),
    ("GET", "/metrics", 200), ("GET", "/v1/models", 200), ("GET", "/gradio_api/startup-events", 200),
]


@pytest.mark.parametrize(("method", "path", "status"), USED)
def test_the_routes_the_app_uses_work_with_a_session(site, method, path, status):
    url, _ = site
    assert logged_in(url).request(method, path).status_code == status


def test_upload_and_api_work_with_a_session_and_are_refused_without(site, media):
    url, _ = site
    with open(media["scene"], "rb") as f:
        assert httpx.post(url + "gradio_api/upload", files={"files": ("s.png", f)}).status_code == 401
    http = logged_in(url)
    with open(media["scene"], "rb") as f:
        r = http.post("/gradio_api/upload", files={"files": ("s.png", f)})
    assert r.status_code == 200 and r.json()[0].endswith(".png")
    assert http.get("/gradio_api/file=" + r.json()[0]).status_code == 200


def test_the_login_page_is_russian_and_a_wrong_password_says_so(site):
    url, _ = site
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        page = http.get("/login").text
        assert 'lang="ru"' in page and "Имя пользователя" in page and "Пароль" in page and "Войти" in page
        t0 = time.monotonic()
        bad = http.post("/login", data={"username": "alice", "password": "wrong password"})
        assert bad.status_code == 401 and login.BAD_LOGIN in bad.text
        assert time.monotonic() - t0 >= login.FAIL_DELAY_S
        assert login.SESSION_COOKIE not in http.cookies


def test_logout_ends_the_session_everywhere(site):
    url, _ = site
    http = logged_in(url)
    token = http.cookies[login.SESSION_COOKIE]
    assert http.get("/config").status_code == 200
    assert http.get("/logout").status_code == 303
    again = httpx.Client(base_url=url, cookies={login.SESSION_COOKIE: token}, timeout=60)
    assert again.get("/config").status_code == 401


def test_the_cookie_is_httponly_and_samesite(site):
    url, _ = site
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/login", data={"username": "alice", "password": PASSWORD})
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # plain HTTP here
        proxied = http.post("/login", data={"username": "alice", "password": PASSWORD},
                            headers={"X-Forwarded-Proto": "https"})
        assert "Secure" not in proxied.headers["set-cookie"]  # 127.0.0.1 is not a trusted proxy here


def test_a_next_target_off_the_site_is_ignored(site):
    url, _ = site
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/login", data={"username": "alice", "password": PASSWORD, "next": "//evil.example/"})
        assert r.headers["location"] == "/"


def test_brute_force_is_slowed_then_refused_per_address(site):
    url, _ = site
    with httpx.Client(base_url=url, timeout=60) as http:
        codes = [http.post("/login", data={"username": "bob", "password": f"guess {i}"}).status_code
                 for i in range(login.FAILS_PER_WINDOW + 2)]
        assert codes[-1] == 429 and codes.count(401) <= login.FAILS_PER_WINDOW
        refused = http.post("/login", data={"username": "bob", "password": PASSWORD + "!"})
        assert refused.status_code == 429 and "Повторите через" in refused.text  # even the right one, for a while
    log = (ARTIFACTS / "logs" / "web-doors.log").read_text(errors="replace")
    assert "login failed for 'bob'" in log and "guess 0" not in log  # who and from where, never the password


def test_v1_takes_a_user_token_or_the_api_key(site):
    url, token = site
    with httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/v1/models").status_code == 401
        assert http.get("/v1/models", headers={"Authorization": "Bearer sv2_wrong"}).status_code == 401
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_metrics_take_a_session_or_the_metrics_token(site):
    url, _ = site
    with httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).status_code == 401
        assert http.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).status_code == 200


def test_a_user_header_counts_only_from_a_trusted_proxy(site):
    url, _ = site
    with httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/config", headers={"X-Forwarded-User": "mallory"}).status_code == 401


def test_users_cli_writes_argon2_hashes(tmp_path):
    import subprocess
    import sys

    from scripts.stack import ROOT

    path = tmp_path / "users"
    out = subprocess.run([sys.executable, "-m", "web.users", "add", "carol", "--file", str(path)], cwd=ROOT,
                         input="a long password\n", capture_output=True, text=True, check=True)
    assert "carol" in out.stdout
    line = path.read_text().splitlines()[-1]
    assert line.startswith("carol:$argon2id$") and "a long password" not in path.read_text()
    assert Users(path).check_password("carol", "a long password")
    assert not Users(path).check_password("carol", "a long passworD")
    short = subprocess.run([sys.executable, "-m", "web.users", "add", "dave", "--file", str(path)], cwd=ROOT,
                           input="short\n", capture_output=True, text=True)
    assert short.returncode != 0 and "короткий" in short.stderr


def test_without_login_each_browser_gets_its_own_cookie(web_url):
    a = httpx.get(web_url)
    b = httpx.get(web_url)
    ca, cb = a.cookies.get(doors.BROWSER_COOKIE), b.cookies.get(doors.BROWSER_COOKIE)
    assert ca and cb and ca != cb
    assert "HttpOnly" in a.headers["set-cookie"]

