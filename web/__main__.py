"""python -m web: the Gradio UI on APP_HOST:APP_PORT. It never loads the model: jobs go to the workers
through Redis. Files are served only from RESULTS_DIR (plus Gradio's own upload cache)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

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


def routes(settings, client, store) -> list:
    """HTTP routes beside Gradio's, on the same app and port (FastAPI(routes=...), so they come first):
    the OpenAI-compatible API (/v1/...) and the Prometheus metrics (/metrics)."""
    from web import metrics, openai_api

    return [*openai_api.router(settings, client, store).routes, *metrics.router(client).routes]


def middleware(settings, client=None, active=None) -> list:
    """ASGI middleware around the whole app, outermost first."""
    from starlette.middleware import Middleware

    from web.locale import RussianPage
    from web.security import security_middleware, trust_no_proxy_headers
    from web.session import SessionGone

    trust_no_proxy_headers()  # before launch: X-Forwarded-For is believed from TRUSTED_PROXIES only (web.security)
    gone = [Middleware(SessionGone, active=active, cancel=client.cancel)] if client is not None else []
    return [*security_middleware(settings), *gone, Middleware(RussianPage, upload_limit_mb=settings.max_upload_mb)]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from common.settings import get_settings
    from common.storage import store_from_settings
    from web.app import CSS, THEME, build_app
    from web.jobs import JobClient
    from web.locale import I18N
    from web.session import ActiveJobs

    settings = get_settings()
    store = store_from_settings(settings)
    store.ensure_dirs()
    # Gradio's upload cache beside the uploads, not in /tmp (Docker sets it to the media volume); Gradio reads it
    # when the app is built, below.
    os.environ.setdefault("GRADIO_TEMP_DIR", str((settings.media_dir / "gradio").resolve()))
    samples = find_samples(settings.samples_dir)
    client = JobClient(settings)
    active = ActiveJobs()  # each session's running jobs: stopped when its page or API caller goes away
    demo = build_app(settings, client, store, samples, active)
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
        app_kwargs={"middleware": middleware(settings, client, active), "routes": routes(settings, client, store)},
    )


if __name__ == "__main__":
    main()
