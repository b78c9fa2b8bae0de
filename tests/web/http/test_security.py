"""web.http's guards and web.http.uploads: headers, Host / X-Forwarded-* handling, the upload limits, URL file
inputs and the deletion of refused uploads. Unit tests on small ASGI apps, then a real
`python -m web` (no worker needed: nothing here runs a job) and Chromium on it."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from common.errors import MediaError
from web.http import uploads
from web.http.file_input_guard import NOT_UPLOADED, REMOTE_FILE, FileInputGuard, remote_files
from web.http.headers import CSP, SecurityHeaders
from web.http.host import BAD_HOST, HostGuard, HostPolicy, split_host
from web.http.upload_guard import RateWindow, UploadGuard

MB = 1024 * 1024


# ------------------------------------------------------------------------------------------------ unit: parts

def test_split_host():
    assert split_host("Example.COM:7860") == "example.com"
    assert split_host("127.0.0.1") == "127.0.0.1"
    assert split_host("[::1]:7860") == "::1"
    assert split_host("localhost.") == "localhost"
    for bad in ["evil.com/x", "a b", "evil.com:80:80", "[::1", "[zz]", "x@evil.com", "", "evil.com:x", "<a>"]:
        assert split_host(bad) is None, bad


def test_host_policy_default_allows_local_names_and_ip_addresses_only():
    p = HostPolicy("0.0.0.0", "")
    for ok in ["localhost", "127.0.0.1", "::1", "app.localhost", "192.168.1.10", "203.0.113.5", "web", "gpu-box",
               "gpu-box.local", "demo.internal", "nas.home.arpa"]:
        assert p.allows(ok), ok
    for bad in ["evil.example", "example.com", "evil.com.", "internal.evil.com", "local.evil.com"]:
        assert not p.allows(bad), bad
    assert p.allows("web", server="web")  # the address the connection came in on


def test_host_policy_with_public_hosts_is_strict():
    p = HostPolicy("0.0.0.0", "demo.example.org, *.example.net")
    for ok in ["demo.example.org", "example.net", "a.b.example.net", "localhost", "127.0.0.1"]:
        assert p.allows(ok), ok
    for bad in ["evil.example", "203.0.113.5", "example.org", "notexample.net", "web", "gpu-box.local"]:
        assert not p.allows(bad), bad
    assert HostPolicy("0.0.0.0", "*").allows("anything.example")
    assert HostPolicy("demo.internal", "").allows("demo.internal")


def test_rate_window_slides():
    w = RateWindow(10 * MB, window_s=60)
    assert w.take("a", 6 * MB, now=1000.0) == 0
    assert w.take("a", 3 * MB, now=1010.0) == 0
    wait = w.take("a", 2 * MB, now=1020.0)  # 11 MB: over; fits once the first 6 MB leave at t=1060
    assert wait == pytest.approx(40.0)
    assert w.take("b", 9 * MB, now=1020.0) == 0  # another client has its own window
    assert w.take("a", 2 * MB, now=1061.0) == 0
    assert w.used("a", now=1061.0) == 5 * MB
    assert w.take("a", 11 * MB, now=2000.0) == 60  # never fits
    assert w.add("c", 8 * MB, now=0.0) and not w.add("c", 3 * MB, now=1.0)


def test_rate_window_forgets_clients_beyond_its_bound():
    w = RateWindow(MB, max_clients=3)
    for i in range(10):
        w.take(f"c{i}", 1, now=1.0)
    assert w.clients == 3


def test_remote_files_finds_urls_anywhere_in_the_request():
    fd = lambda path: {"path": path, "meta": {"_type": "gradio.FileData"}}  # noqa: E731
    body = {"data": [fd("/tmp/gradio/abc/x.png"), "вопрос", [["q", fd("https://example.com/a.png")]]],
            "event_data": None, "fn_index": 3, "session_hash": "s"}
    assert remote_files(body) == [(2, "https://example.com/a.png")]
    for url in ["http://x/y.png", "HTTPS://x/y", " ftp://x/y", "data:image/png;base64,AAAA", "file:///etc/passwd"]:
        assert remote_files({"data": [fd(url)]}) == [(0, url)], url
    # a local path, a browser upload's own URL field, a dict without Gradio's meta: not remote files
    local = {**fd("/tmp/gradio/abc/x.png"), "url": "http://127.0.0.1:7860/gradio_api/file=/tmp/gradio/abc/x.png"}
    assert remote_files({"data": [local, {"path": "http://x/y.png"}]}) == []
    assert remote_files([fd("http://x/y")]) == [(None, "http://x/y")]
    inline = {**fd("/tmp/gradio/abc/x.png"), "url": "data:image/png;base64,iVBORw0KGgo="}  # gr.Image decodes it
    assert remote_files({"data": [inline]}) == [(0, "data:image/png;base64,iVBORw0KGgo=")]


def test_a_flood_of_refusals_is_a_few_lines_in_the_log(caplog):
    from web.http.asgi import Refusals

    note = Refusals(every_s=60)
    with caplog.at_level("INFO", logger="web.http"):
        for i in range(100):
            note("rate", "198.51.100.7", "upload rate of %s", "198.51.100.7", now=1000.0 + i / 10)
        note("rate", "198.51.100.8", "upload rate of %s", "198.51.100.8", now=1010.0)
        note("rate", "198.51.100.7", "upload rate of %s", "198.51.100.7", now=1061.0)
    assert caplog.messages == ["refused: upload rate of 198.51.100.7", "refused: upload rate of 198.51.100.8",
                               "refused: upload rate of 198.51.100.7 (and 99 more like it)"]


# ------------------------------------------------------------------------------------------------ unit: ASGI

@pytest.fixture
def gradio_tmp(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "gradio"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


async def _echo(request):
    return JSONResponse({"host": request.headers.get("host"), "xfh": request.headers.get("x-forwarded-host"),
                         "xff": request.headers.get("x-forwarded-for"), "client": request.client.host,
                         "body": (await request.body()).decode()})


async def _upload(request):
    form = await request.form()
    return JSONResponse([f"/tmp/gradio/{form['files'].filename}"])


def _app(*middleware) -> Starlette:
    from starlette.middleware import Middleware

    return Starlette(routes=[Route("/gradio_api/upload", _upload, methods=["POST"]),
                             Route("/{path:path}", _echo, methods=["GET", "POST"])],
                     middleware=[Middleware(m, **kw) for m, kw in middleware])


def test_security_headers_on_every_response_even_errors():
    async def boom(request):
        return PlainTextResponse("нет", status_code=404, headers={"X-Frame-Options": "ALLOWALL"})

    from starlette.middleware import Middleware

    app = Starlette(routes=[Route("/", boom)], middleware=[Middleware(SecurityHeaders)])
    r = TestClient(app).get("/")
    assert r.status_code == 404
    assert r.headers["content-security-policy"] == CSP and "frame-ancestors 'self'" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]


def test_host_guard_untrusted_peer():
    app = _app((HostGuard, {"policy": HostPolicy("0.0.0.0", ""), "trusted": frozenset({"10.0.0.1"})}))
    c = TestClient(app, client=("198.51.100.7", 1234), base_url="http://127.0.0.1:7860")
    r = c.get("/", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-For": "1.2.3.4",
                            "X-Gradio-Server": "http://evil.example", "Forwarded": "host=evil.example"})
    assert r.status_code == 200
    assert r.json() == {"host": "127.0.0.1:7860", "xfh": None, "xff": None, "client": "198.51.100.7", "body": ""}
    r = c.get("/", headers={"Host": "evil.example"})
    assert r.status_code == 400 and r.text == BAD_HOST and "evil" not in r.text


def test_host_guard_trusted_proxy_forwards_but_its_host_is_checked():
    policy = HostPolicy("0.0.0.0", "demo.example.org")
    app = _app((HostGuard, {"policy": policy, "trusted": frozenset({"10.0.0.1"})}))
    c = TestClient(app, client=("10.0.0.1", 1234), base_url="http://web:7860")
    r = c.get("/", headers={"X-Forwarded-Host": "demo.example.org", "X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200 and r.json()["xfh"] == "demo.example.org" and r.json()["xff"] == "203.0.113.9"
    assert c.get("/", headers={"X-Forwarded-Host": "evil.example, demo.example.org"}).status_code == 400
    assert c.get("/").status_code == 200  # the address the connection came in on ("web")
    assert c.get("/", headers={"Host": "other.internal"}).status_code == 400  # not a public name


def test_upload_guard_content_length_and_rate():
    app = _app((UploadGuard, {"max_upload_bytes": MB, "request_limit": 2 * MB, "rate_bytes": 3 * MB}))
    c = TestClient(app, client=("198.51.100.7", 1))
    r = c.post("/gradio_api/upload", files={"files": ("big.png", b"x" * (2 * MB + 10))})
    assert r.status_code == 413 and r.text == "Файл слишком большой: можно загружать файлы до 1 МБ."
    for i in range(2):
        r = c.post("/gradio_api/upload", files={"files": (f"f{i}.png", b"x" * MB)})
        assert r.status_code == 200, r.text
        assert uploads.received(f"/tmp/gradio/f{i}.png")
    r = c.post("/gradio_api/upload", files={"files": ("f2.png", b"x" * MB)})
    assert r.status_code == 429
    assert re.fullmatch(r"Слишком много загрузок с вашего адреса: не больше 3 МБ в минуту\. Повторите через \d+ с\.",
                        r.text), r.text
    assert 1 <= int(r.headers["retry-after"]) <= 60
    other = TestClient(app, client=("198.51.100.8", 1))  # another address: its own budget
    assert other.post("/gradio_api/upload", files={"files": ("g.png", b"x" * MB)}).status_code == 200
    assert c.post("/gradio_api/queue/join", content=b"{}").status_code == 200  # other routes: untouched


def test_upload_guard_counts_a_body_without_content_length():
    app = _app((UploadGuard, {"max_upload_bytes": MB, "request_limit": 2 * MB, "rate_bytes": 0}))
    c = TestClient(app, client=("198.51.100.7", 1))

    def chunks():
        for _ in range(5):
            yield b"x" * MB

    r = c.post("/gradio_api/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413


def test_file_input_guard_answers_in_gradio_validation_format(gradio_tmp):
    app = _app((FileInputGuard, {}))
    c = TestClient(app)
    fd = {"path": "https://example.com/a.png", "url": "https://example.com/a.png",
          "meta": {"_type": "gradio.FileData"}}
    r = c.post("/gradio_api/queue/join", json={"data": ["q", fd], "fn_index": 0, "session_hash": "s"})
    assert r.status_code == 422
    assert r.json()["detail"] == [{"__type__": "validate", "is_valid": False, "message": REMOTE_FILE,
                                   "parameter_name": "параметр 2"}]
    from gradio_client.utils import extract_validation_message

    assert REMOTE_FILE in extract_validation_message(httpx.Response(422, json=r.json()))
    r = c.post("/gradio_api/call/ocr", json={"data": [fd]})
    assert r.status_code == 400 and r.json()["error"] == REMOTE_FILE
    # the same request with the meta written with JSON escapes is still seen
    escaped = json.dumps({"data": [fd]}).replace("gradio.FileData", "gradio\\u002eFileData")
    assert c.post("/gradio_api/run/ocr", content=escaped).status_code == 400
    ok = {"data": [{"path": str(gradio_tmp / "a" / "x.png"), "meta": {"_type": "gradio.FileData"}}, "вопрос"]}
    r = c.post("/gradio_api/queue/join", json=ok)
    assert r.status_code == 200 and json.loads(r.json()["body"]) == ok  # the body reaches the app intact
    assert c.post("/v1/chat/completions", json={"data": [fd]}).status_code == 200  # not Gradio's API


@pytest.mark.parametrize("path", ["/etc/hostname", "relative.png", "{tmp}/../../etc/passwd"])
def test_file_input_guard_refuses_paths_never_uploaded(gradio_tmp, path):
    """Gradio refuses these itself, but with a traceback in the log and an empty message for the caller."""
    app = _app((FileInputGuard, {}))
    fd = {"path": path.format(tmp=gradio_tmp), "meta": {"_type": "gradio.FileData"}}
    r = TestClient(app).post("/gradio_api/queue/join", json={"data": [fd]})
    assert r.status_code == 422 and r.json()["error"] == NOT_UPLOADED


def test_file_input_guard_refuses_huge_json():
    app = _app((FileInputGuard, {"max_body": 1000}))
    r = TestClient(app).post("/gradio_api/queue/join", content=b"[" + b"1," * 1000 + b"1]")
    assert r.status_code == 413


# ------------------------------------------------------------------------------------------------ unit: discard

def test_discard_deletes_only_registered_uploads_inside_the_cache(gradio_tmp, tmp_path):
    upload = gradio_tmp / "abc123" / "x.txt"
    upload.parent.mkdir()
    upload.write_text("x")
    example = gradio_tmp / "def456" / "scene.png"  # in the cache, but never uploaded (an example)
    example.parent.mkdir()
    example.write_text("x")
    outside = tmp_path / "media.txt"
    outside.write_text("x")
    uploads.register([str(upload), str(outside)])
    assert not uploads.discard(example) and example.exists()
    assert not uploads.discard(outside) and outside.exists()  # registered, but outside the cache
    assert not uploads.discard(None) and not uploads.discard(gradio_tmp)
    assert uploads.discard(str(upload))
    assert not upload.exists() and not upload.parent.exists()  # its <hash> folder went too
    assert not uploads.discard(str(upload))  # twice: nothing to do


def test_discard_on_refusal_deletes_for_media_errors_only(gradio_tmp):
    files = []
    for name in ("a", "b"):
        files.append(gradio_tmp / name / "f.bin")
        files[-1].parent.mkdir()
        files[-1].write_text("x")
    uploads.register(map(str, files))
    with pytest.raises(MediaError), uploads.discard_on_refusal(files[0]):
        raise MediaError("Неподдерживаемый тип файла")
    with pytest.raises(ValueError), uploads.discard_on_refusal(files[1]):
        raise ValueError("not the file's fault")
    assert not files[0].exists() and files[1].exists()


# ------------------------------------------------------------------------------------------------ a real web

SITECUSTOMIZE = """
import os
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio.processing_utils as pu
pu.async_transport = False  # the harness: Gradio's own public-address check off, as if the URL were public
"""


@pytest.fixture(scope="module")
def web(settings, tmp_path_factory):
    """`python -m web` with MAX_UPLOAD_MB=1, UPLOAD_RATE_MB_PER_MIN=4, and Gradio's SSRF check switched off (so
    that only FileInputGuard stands between a URL input and a download)."""
    from tests.web.conftest import start_web

    tmp = tmp_path_factory.mktemp("sec-web")
    hook = tmp / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    svc, url = start_web(settings, tmp, "web-security", MAX_UPLOAD_MB="1", UPLOAD_RATE_MB_PER_MIN="4",
                         PYTHONPATH=str(hook), GRADIO_ANALYTICS_ENABLED="False")
    yield url, tmp / "gradio", svc
    svc.stop()


def png_bytes(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.integration
def test_headers_on_the_page_config_api_and_errors(web):
    url, _, _ = web
    with httpx.Client(base_url=url, timeout=30) as c:
        for path in ["/", "/config", "/gradio_api/info", "/nonexistent", "/gradio_api/upload"]:
            r = c.get(path)
            assert r.headers["content-security-policy"] == CSP, path
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin", path


@pytest.mark.integration
def test_host_and_forwarded_headers_do_not_reach_config(web):
    url, _, _ = web
    own = httpx.URL(url)
    with httpx.Client(base_url=url, timeout=30) as c:
        root = c.get("/config").json()["root"]
        assert root == f"http://127.0.0.1:{own.port}"
        spoof = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Gradio-Server": "http://evil.example"}
        for path in ["/config", "/"]:
            r = c.get(path, headers=spoof)
            assert r.status_code == 200 and "evil.example" not in r.text and "https://127.0.0.1" not in r.text
        r = c.get("/config", headers={"Host": "evil.example"})
        assert r.status_code == 400 and r.text == BAD_HOST
        assert c.get("/", headers={"Host": f"evil.example:{own.port}"}).status_code == 400
        assert c.get("/config", headers={"Host": f"localhost:{own.port}"}).json()["root"] == f"http://localhost:{own.port}"


@pytest.mark.integration
def test_upload_flood_is_cut_at_the_rate_and_a_spoofed_x_forwarded_for_does_not_help(web):
    """4 MB per minute here (200 by default): from one address (127.0.0.2, so the other tests keep their budget),
    each request claiming another X-Forwarded-For (uvicorn would have believed it from 127.0.0.1)."""
    url, cache, _ = web
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    codes = []
    with httpx.Client(base_url=url, timeout=30, transport=transport) as c:
        r = c.post("/gradio_api/upload", files={"files": ("big.png", b"x" * (3 * MB + 100))})
        assert r.status_code == 413 and "до 1 МБ" in r.text  # over 2 × MAX_UPLOAD_MB (+ 1 MB of form)
        for i in range(8):
            body = os.urandom(900 * 1024)  # distinct contents: Gradio would store each
            r = c.post("/gradio_api/upload", files={"files": (f"f{i}.png", body)},
                       headers={"X-Forwarded-For": f"203.0.113.{i}"})
            codes.append(r.status_code)
        assert r.status_code == 429 and "не больше 4 МБ в минуту" in r.text and int(r.headers["retry-after"]) >= 1
    assert codes == [200] * 4 + [429] * 4, codes
    stored = sum(p.stat().st_size for p in cache.rglob("f*.png"))
    assert stored <= 4 * MB, stored


@pytest.mark.integration
def test_an_upload_without_content_length_is_cut_at_the_cap(web):
    url, cache, svc = web
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"chunked.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(6):
            yield b"x" * MB
        yield f"\r\n--{boundary}--\r\n".encode()

    transport = httpx.HTTPTransport(local_address="127.0.0.3")
    with httpx.Client(base_url=url, timeout=30, transport=transport) as c:
        r = c.post("/gradio_api/upload", content=body(),
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "до 1 МБ" in r.text  # Gradio's own check (one file over its cap), in Russian

    def many():  # five files under Gradio's cap, over ours together
        for i in range(5):
            yield head.replace(b"chunked.png", f"part{i}.png".encode())
            yield b"x" * (900 * 1024) + b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    with httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.4")) as c:
        r = c.post("/gradio_api/upload", content=many(),
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "до 1 МБ" in r.text
    assert not list(cache.rglob("chunked.png")) and not list(cache.rglob("part*.png"))
    assert "Traceback" not in svc.log_path.read_text(errors="replace")


@pytest.fixture
def file_server(tmp_path):
    """A local HTTP server with one picture; records every request it gets."""
    (tmp_path / "x.png").write_bytes(png_bytes())
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, fmt, *args):
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/x.png", seen
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_a_file_by_url_is_refused_and_never_fetched(web, file_server):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import ValidationError

    url, _, _ = web
    picture, seen = file_server
    client = Client(url, verbose=False)
    with pytest.raises(ValidationError) as info:
        client.predict(handle_file(picture), api_name="/ocr")
    assert REMOTE_FILE in str(info.value)
    with pytest.raises(ValidationError):  # hidden in the history of /vqa (a JSON input) all the same
        client.predict(handle_file(png_path(web)), "Что здесь?", [["q", handle_file(picture)]], api_name="/vqa")
    with httpx.Client(base_url=url, timeout=30) as c:  # the curl API
        r = c.post("/gradio_api/call/ocr", json={"data": [handle_file(picture)]})
        assert r.status_code == 400 and r.json()["error"] == REMOTE_FILE
    assert seen == []


@pytest.mark.integration
def test_a_path_never_uploaded_is_one_line_in_the_log_not_a_traceback(web):
    url, _, svc = web
    transport = httpx.HTTPTransport(local_address="127.0.0.5")  # its own line in the log (one per client a while)
    with httpx.Client(base_url=url, timeout=30, transport=transport) as c:
        ocr = next(d["id"] for d in c.get("/config").json()["dependencies"] if d.get("api_name") == "ocr")
        fd = {"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}
        r = c.post("/gradio_api/queue/join", json={"data": [fd], "fn_index": ocr, "session_hash": "s1"})
    assert r.status_code == 422 and r.json()["error"] == NOT_UPLOADED
    log = svc.log_path.read_text(errors="replace")
    assert "refused: file input '/etc/hostname'" in log and "Traceback" not in log


@pytest.mark.integration
def test_inline_data_in_a_file_input_is_refused(web):
    """gr.Image (the region tab) decodes FileData.url = "data:..." into a new file of Gradio's cache: an upload
    that skips the upload route and its limits."""
    import base64

    url, cache, _ = web
    with httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.6")) as c:
        cfg = c.get("/config").json()
        ids = {comp["id"] for comp in cfg["components"] if comp.get("props", {}).get("elem_id") == "region-image"}
        dep = next(d for d in cfg["dependencies"] if any(t[0] in ids and t[1] == "change" for t in d["targets"]))
        uploaded = c.post("/gradio_api/upload", files={"files": ("small.png", png_bytes())}).json()[0]
        inline = "data:image/png;base64," + base64.b64encode(png_bytes((300, 200))).decode()
        fd = {"path": uploaded, "url": inline, "orig_name": "inline.png", "meta": {"_type": "gradio.FileData"}}
        r = c.post("/gradio_api/queue/join", json={"data": [fd, ""], "fn_index": dep["id"], "session_hash": "s2"})
    assert r.status_code == 422 and r.json()["error"] == REMOTE_FILE
    assert not list(cache.rglob("inline*"))


def png_path(web) -> str:
    path = Path(web[1]).parent / "local.png"
    path.write_bytes(png_bytes())
    return str(path)


@pytest.mark.integration
def test_a_refused_upload_leaves_gradios_cache_at_once(web):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, cache, _ = web
    notes = Path(web[1]).parent / "notes.txt"
    notes.write_text("не картинка")
    bomb = Path(web[1]).parent / "bomb.png"  # 7000×7000 > MAX_IMAGE_PIXELS (40 Mpx), ~100 KB
    Image.new("L", (7000, 7000)).save(bomb)
    client = Client(url, verbose=False)
    for path, api, args in [(notes, "/vqa", ("Что здесь?", [])), (bomb, "/ocr", ())]:
        with pytest.raises(AppError):
            client.predict(handle_file(str(path)), *args, api_name=api)
        assert not list(cache.rglob(path.name)), path.name


# ------------------------------------------------------------------------------------------------ Chromium

@pytest.mark.integration
@pytest.mark.browser
def test_the_page_still_works_under_these_headers(web, tmp_path, browser):
    """The CSP, nosniff and the Host check break nothing: the page loads with no CSP report, an upload goes
    through the guarded upload route and the region preview (a queued event) comes back."""
    url, _, _ = web
    picture = tmp_path / "scene.png"
    picture.write_bytes(png_bytes((640, 480)))
    problems: list[str] = []
    page = browser.new_page(locale="en-US")
    page.set_default_timeout(60_000)
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text
            or "Refused" in m.text else None)
    response = page.goto(url)
    assert response.headers["content-security-policy"] == CSP
    page.get_by_role("tab", name="Описание области").click()
    page.locator("#region-image input[type=file]").set_input_files(str(picture))
    page.wait_for_function("document.querySelector('#region-hint').innerText.includes('640×480')")
    page.locator("#region-preview img").wait_for()
    page.context.close()
    assert problems == []
