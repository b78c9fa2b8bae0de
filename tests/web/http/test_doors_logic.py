"""The doors' pure logic, without a server: which routes are open, where a login may send the browser back, failed
logins per address, the users file, artefact ids, and which jobs nobody follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.schemas import JobKind
from web.http import login
from web.http.artefacts import artefact_of
from web.http.doors import route_open
from web.http.users import Users, parse
from web.queue.registry import ActiveJobs


@pytest.mark.parametrize(("method", "path", "open_"), [
    ("GET", "/", True), ("GET", "/config", True), ("GET", "/assets/index-x.js", True),
    ("POST", "/gradio_api/upload", True), ("POST", "/gradio_api/queue/join", True),
    ("GET", "/gradio_api/queue/data", True), ("GET", "/gradio_api/file=/tmp/x.png", True),
    ("GET", "/gradio_api/heartbeat/abc123", True), ("POST", "/gradio_api/call/vqa", True),
    ("GET", "/gradio_api/call/vqa/ev1", True), ("POST", "/v1/chat/completions", True), ("GET", "/metrics", True),
    ("POST", "/gradio_api/process_recording", False), ("POST", "/gradio_api/component_server", False),
    ("GET", "/gradio_api/vibe-code", False), ("GET", "/monitoring", False), ("GET", "/openapi.json", False),
    ("GET", "/gradio_api/proxy=http://x/", False), ("POST", "/metrics", False), ("DELETE", "/", False),
    ("GET", "/gradio_api/run-history/buckets", False), ("POST", "/gradio_api/run/predict", False),
])
def test_only_the_routes_the_app_uses_are_open(method, path, open_):
    assert route_open(method, path) is open_


@pytest.mark.parametrize(("target", "safe"), [
    ("/", "/"), ("/?__theme=dark", "/?__theme=dark"), ("//evil.example/", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), ("", "/"), ("/x\r\nSet-Cookie: a=b", "/"),
])
def test_after_login_only_a_path_on_this_site(target, safe):
    assert login.safe_next(target) == safe


def test_failed_logins_are_counted_per_address_in_a_window(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(login.time, "monotonic", lambda: now[0])
    failures = login.Failures()
    for _ in range(login.FAILS_PER_WINDOW):
        assert failures.wait_s("1.2.3.4") == 0
        failures.add("1.2.3.4")
    assert failures.wait_s("1.2.3.4") == pytest.approx(login.WINDOW_S)
    assert failures.wait_s("5.6.7.8") == 0  # another address is not affected
    now[0] += login.WINDOW_S + 1
    assert failures.wait_s("1.2.3.4") == 0


def test_the_users_file(tmp_path):
    users = Users(tmp_path / "users")
    users.set_password("alice", "first password")
    token = users.new_token("alice")
    assert users.check_password("alice", "first password") and not users.check_password("alice", "first passwor")
    assert not users.check_password("nobody", "first password")
    assert users.by_token(token) == "alice" and users.by_token(token + "x") is None and users.by_token("") is None
    users.set_password("alice", "second password")  # the token survives a new password
    assert users.by_token(token) == "alice" and users.check_password("alice", "second password")
    text = (tmp_path / "users").read_text()
    assert token not in text and "password" not in text.split("\n", 1)[1]
    assert (tmp_path / "users").stat().st_mode & 0o777 == 0o600
    assert users.remove("alice") and users.all() == {}
    # Lines that are not name:argon2-hash are skipped (with a warning), never half-read.
    assert list(parse("# comment\nbob:plaintext\n:$argon2id$x\ncarol:$argon2id$v=19$abc\n")) == ["carol"]


def test_artefact_ids_come_from_the_results_layout():
    root = Path("/data/results")
    assert artefact_of(root / "frames" / "job1" / "00.jpg", root) == "job1"
    assert artefact_of(root / "f00d" / "ocr_result_1.txt", root) == "f00d"
    assert artefact_of(root / "frames", root) is None
    assert artefact_of(Path("/data/media/uploads/x.png"), root) is None


def test_a_job_whose_session_never_opens_its_stream_is_unfollowed():
    active = ActiveJobs()
    active.begin("quiet", "api:1", "job-quiet", JobKind.chat, watched=True)
    active.begin("reader", "api:2", "job-reader", JobKind.chat, watched=True)
    active.begin("curl", "api:3", "job-curl", JobKind.chat, watched=False)  # the call API: its own stream route
    active.stream_opened("reader")
    later = active.get("quiet", "api:1").begun + 16
    assert [r.job_id for r in active.unfollowed(15, now=later)] == ["job-quiet"]
    assert active.unfollowed(15, now=later - 2) == []
    active.stream_closed("reader")  # closed after it was read from: SessionGone's business, not abandoned
    assert [r.job_id for r in active.unfollowed(15, now=later)] == ["job-quiet"]
