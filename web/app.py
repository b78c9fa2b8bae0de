"""The web's one composition root: it builds the queue client, the media store, the registry of each session's
running jobs, the page (web.ui), the routes beside it (web.openai, /metrics) and the one middleware list
(web.http), and launches Gradio on APP_HOST:APP_PORT. The web never loads the model: jobs go to the workers through
Redis. Files are served only from RESULTS_DIR (plus Gradio's own upload cache)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from starlette.middleware import Middleware

from common.settings import Settings, get_settings
from common.store import MediaStore, store_from_settings
from web.http import metrics
from web.http.artefacts import ArtefactGuard, Owners
from web.http.client import trust_no_proxy_headers
from web.http.doors import Doors
from web.http.file_input_guard import FileInputGuard
from web.http.headers import SecurityHeaders
from web.http.host import HostGuard, HostPolicy
from web.http.login import Sessions
from web.http.session_gone import SessionGone
from web.http.upload_guard import MULTIPART_SLACK, RateWindow, UploadGuard
from web.http.users import Users
from web.openai import routes as openai_routes
from web.queue.client import JobClient
from web.queue.registry import ActiveJobs
from web.ui.layout import CSS, THEME, Handlers, build_blocks
from web.ui.locale import I18N, RussianPage

log = logging.getLogger("web")

SAMPLES = {"text": "text.png", "scene": "scene.png", "clip": "clip.mp4"}  # scripts/samples.py writes these
MAX_THREADS = 256  # for the few sync handlers (previews, uploads); waiting on jobs holds no thread


def find_samples(folder: Path) -> dict[str, Path]:
    """The examples' media, written by scripts/samples.py (`make setup`, the web image's first stage)."""
    found = {k: folder / name for k, name in SAMPLES.items() if (folder / name).is_file()}
    if len(found) < len(SAMPLES):
        log.warning("examples incomplete: %s missing in %s (make setup writes them)",
                    ", ".join(sorted(set(SAMPLES.values()) - {p.name for p in found.values()})), folder)
    return found


def upload_window(settings: Settings) -> RateWindow | None:
    """The per-person upload budget (UPLOAD_RATE_MB_PER_MIN), one for /gradio_api/upload and /v1 together."""
    rate = int(settings.upload_rate_mb_per_min * 1024 * 1024)
    return RateWindow(rate) if rate > 0 else None


def routes(settings: Settings, client: JobClient, store: MediaStore, window: RateWindow | None = None) -> list:
    """HTTP routes beside Gradio's, on the same app and port (FastAPI(routes=...), so they come first):
    the OpenAI-compatible API (/v1/...) and the Prometheus metrics (/metrics)."""
    return [*openai_routes.router(settings, client, store, window).routes, *metrics.router(client.redis).routes]


def middleware(settings: Settings, client: JobClient | None = None, active: ActiveJobs | None = None,
               window: RateWindow | None = None) -> list:
    """ASGI middleware around the whole app, outermost first: security headers, the Host check, the doors (closed
    routes, login, the person each request counts for), the upload limits, file inputs that must be uploads, a
    closed page's jobs stopped, the page made Russian."""
    trusted = settings.trusted_proxy_set
    gone = [Middleware(SessionGone, active=active, cancel=client.cancel, abandon=client.abandon,
                       abandon_after_s=settings.abandon_after_s)] if client is not None else []
    users = Users(settings.auth_users) if settings.auth_users else None
    sessions = Sessions(client.redis, settings.auth_session_hours * 3600) if client is not None else None
    return [
        Middleware(SecurityHeaders),
        Middleware(HostGuard, policy=HostPolicy(settings.app_host, settings.public_hosts), trusted=trusted),
        Middleware(Doors, settings=settings, sessions=sessions, users=users),
        Middleware(UploadGuard, max_upload_bytes=settings.max_upload_bytes,
                   request_limit=2 * settings.max_upload_bytes + MULTIPART_SLACK,
                   rate_bytes=int(settings.upload_rate_mb_per_min * 1024 * 1024), trusted=trusted, window=window),
        Middleware(FileInputGuard),
        *([Middleware(ArtefactGuard, owners=Owners(client.redis, settings.media_ttl_hours * 3600),
                      results_dir=settings.results_dir)] if client is not None else []),
        *gone,
        Middleware(RussianPage, upload_limit_bytes=settings.max_upload_bytes),
    ]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    store = store_from_settings(settings)
    store.ensure_dirs()
    # Gradio's upload cache beside the uploads, not in /tmp (Docker sets it to the media volume); Gradio reads it
    # when the app is built, below.
    os.environ.setdefault("GRADIO_TEMP_DIR", str((settings.media_dir / "gradio").resolve()))
    trust_no_proxy_headers()  # before launch: X-Forwarded-For is believed from TRUSTED_PROXIES only
    client = JobClient(settings)
    active = ActiveJobs()  # each session's running jobs: stopped when its page or API caller goes away
    window = upload_window(settings)
    demo = build_blocks(Handlers.build(settings, client, store, active), settings, find_samples(settings.samples_dir))
    demo.queue(default_concurrency_limit=None)
    log.info("web on %s:%s, redis %s", settings.app_host, settings.app_port, settings.redis_url)
    demo.launch(
        server_name=settings.app_host,
        server_port=settings.app_port,
        allowed_paths=[str(settings.results_dir.resolve())],
        # Gradio's own cap (gradio_client checks it before sending) is a ceiling against abuse; MAX_UPLOAD_MB
        # itself is enforced on save; the pop-up for a file over this cap names MAX_UPLOAD_MB (RussianPage).
        max_file_size=2 * settings.max_upload_bytes,
        max_threads=MAX_THREADS,
        show_error=False,
        ssr_mode=False,
        footer_links=["api"],
        theme=THEME,
        css=CSS,
        i18n=I18N,  # Gradio's own keys its Russian bundle lacks
        app_kwargs={"middleware": middleware(settings, client, active, window),
                    "routes": routes(settings, client, store, window)},
    )
