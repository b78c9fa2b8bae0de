"""Limits per person (issue 20): two browsers on one address (as behind Docker's port publishing on one host) each
get their own MAX_JOBS_PER_CLIENT, while a caller without a browser session (gradio_client) counts by its address.
Chromium against a private stack whose worker writes long answers; MAX_JOBS_PER_CLIENT=1."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from common.errors import too_many_jobs
from scripts import samples
from scripts.stack import Stack, wait_for
from tests.conftest import ARTIFACTS
from tests.web.chromium import open_page
from tests.web.ui.test_ui_flows import LONG_Q, ask, upload_chat, wait_text
from web.queue.client import JobClient

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, test_model, endless_env):
    stack = Stack(tmp_path_factory.mktemp("per-person"), test_model, log_dir=ARTIFACTS / "logs" / "per-person")
    try:
        stack.start_redis()
        # Endless: the first browser's answer (3000 tokens) still runs while the others ask, on any CPU.
        stack.start_worker("person-worker", **endless_env, MAX_NEW_TOKENS="3000", MODEL_DTYPE="float32")
        stack.start_web("person-web", MAX_NEW_TOKENS="3000", MAX_JOBS_PER_CLIENT="1")
    except BaseException:
        stack.stop()
        raise
    stack.client = JobClient(stack.settings_for())
    yield stack
    stack.stop()


def test_two_browsers_on_one_address_each_have_their_own_limit(browser, stack, tmp_path):
    image = samples.scene_image(tmp_path / "scene.png", (320, 240))
    first, second = open_page(browser, stack.url), open_page(browser, stack.url)
    try:
        for pg in (first, second):
            upload_chat(pg, image)
        ask(first, LONG_Q)
        wait_text(first, "#chat-status", "генерирует ответ")  # the worker busy with the first browser's job
        ask(second, LONG_Q)  # before: «У вас уже выполняется 1 заданий…» (both counted as 127.0.0.1)
        wait_text(second, "#chat-status", "Ваше место в очереди")
        # A caller without a browser session counts by its address, apart from both browsers.
        api = Client(stack.url, verbose=False).submit(handle_file(str(image)), LONG_Q, [], api_name="/vqa")
        wait_for(lambda: stack.client.queue_length() >= 2, 30, "the API call queued too")
        # …and a second call from that address is over its limit.
        with pytest.raises(AppError) as err:
            Client(stack.url, verbose=False).predict(handle_file(str(image)), "Hi?", [], api_name="/vqa")
        assert str(err.value) == too_many_jobs(1).message
        api.cancel()
    finally:
        for pg in (first, second):
            for button in ("#chat-stop",):
                if pg.locator(button).is_visible():
                    pg.locator(button).click()
            pg.context.close()
