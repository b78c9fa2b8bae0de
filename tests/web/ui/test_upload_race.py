"""A question sent while its file is still uploading is never ignored (issue 20): it waits for the upload and then
goes; if the upload fails, it stays in the box with a Russian message that nothing overwrites. Chromium (English
browser) against a private stack, the upload slowed by the browser's own network throttling (DevTools: ~300 KB/s,
so a 0.5 MB image takes ~1.5 s), a question typed and sent with Enter the moment the file is set: 20 times on a
fresh page, 20 times after a video→image switch on one page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from scripts import samples
from scripts.stack import Stack
from tests.conftest import ARTIFACTS
from tests.web.chromium import open_page
from tests.web.ui.test_ui_flows import BOTS, question_box, wait_bots, wait_text

pytestmark = [pytest.mark.integration, pytest.mark.browser]
ROUNDS = 20
UPLOAD_BYTES_PER_S = 300_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory, test_model):
    stack = Stack(tmp_path_factory.mktemp("upload-race"), test_model, log_dir=ARTIFACTS / "logs" / "upload-race")
    try:
        stack.start_redis()
        stack.start_worker("race-worker", MAX_NEW_TOKENS="4")
        stack.start_web("race-web", MAX_NEW_TOKENS="4")
    except BaseException:
        stack.stop()
        raise
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("race-files")
    noisy = d / "noisy.png"  # random pixels: ~0.5 MB that PNG cannot shrink
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 560, 3), np.uint8)).save(noisy)
    broken = d / "broken.mp4"
    broken.write_bytes(bytes(np.random.default_rng(2).integers(0, 255, 400_000, np.uint8)))
    return {"image": noisy, "video": samples.video(d / "clip.mp4", seconds=3, fps=10, size=(160, 120)),
            "broken": broken}


def throttled(browser, url: str):
    pg = open_page(browser, url)
    cdp = pg.context.new_cdp_session(pg)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                  "uploadThroughput": UPLOAD_BYTES_PER_S})
    return pg


def set_file_and_ask(pg, path: Path, question: str) -> None:
    """The file set, and at once (its upload still under way) the question typed and sent with Enter."""
    if pg.locator("#chat-file input[type=file]").count() == 0:  # a file is there: its ✕ first
        pg.locator("#chat-file").get_by_role("button", name="Очистить").click()
    pg.locator("#chat-file input[type=file]").set_input_files(str(path))
    box = question_box(pg)
    box.fill(question)
    box.press("Enter")


def answered(pg, question: str) -> None:
    """Wait until the page shows question with its one answer and «Готово»."""
    pg.wait_for_function("([sel, q]) => document.querySelectorAll(sel).length === 1 && "
                         "document.querySelector('#chat-status').innerText.includes('Готово') && "
                         "document.querySelector('#chat-bot').innerText.includes(q)",
                         arg=[BOTS, question], timeout=30_000)


def user_bubbles(pg) -> list[str]:
    return [t.strip() for t in pg.locator('#chat-bot [data-testid="user"]').all_inner_texts()]


def test_a_question_sent_during_the_upload_is_answered_on_a_fresh_page(browser, stack, files):
    missed = []
    for i in range(ROUNDS):
        pg = throttled(browser, stack.url)
        try:
            set_file_and_ask(pg, files["image"], f"Вопрос {i}?")
            try:
                wait_bots(pg, 1)
                wait_text(pg, "#chat-status", "Готово")
            except (AssertionError, PlaywrightTimeout):
                missed.append((i, pg.locator("#chat-status").inner_text(), question_box(pg).input_value()))
                continue
            assert any(f"Вопрос {i}?" in u for u in user_bubbles(pg))
            assert question_box(pg).input_value() == ""
        finally:
            pg.context.close()
    assert not missed, missed


def test_a_question_sent_during_the_upload_after_a_video_is_answered(browser, stack, files):
    pg = throttled(browser, stack.url)
    missed = []
    try:
        for i in range(ROUNDS):
            for what, path in (("Видео", files["video"]), ("Картинка", files["image"])):
                set_file_and_ask(pg, path, f"{what} {i}?")
                try:
                    # This round's own answer: the last round's bubble and «Готово» stay on the page until the ✕
                    # and the new file reach it, and a wait on them would set the next file too early.
                    answered(pg, f"{what} {i}?")
                except PlaywrightTimeout:
                    pass  # recorded below: the assertion lists every miss
                if not any(f"{what} {i}?" in u for u in user_bubbles(pg)):
                    missed.append((what, i, pg.locator("#chat-status").inner_text(), question_box(pg).input_value()))
    finally:
        pg.context.close()
    assert not missed, missed


def test_a_question_sent_during_a_failing_upload_stays_with_a_message(browser, stack, files):
    pg = throttled(browser, stack.url)
    try:
        set_file_and_ask(pg, files["broken"], "Что на видео?")
        status = wait_text(pg, "#chat-status", "Не удалось")
        pg.wait_for_timeout(2000)  # nothing comes later to overwrite it
        assert pg.locator("#chat-status").inner_text().strip() == status
        assert question_box(pg).input_value() == "Что на видео?"
        assert pg.locator(BOTS).count() == 0
    finally:
        pg.context.close()
