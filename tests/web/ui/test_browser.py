"""Chromium (Debian's, through Playwright) through every tab of the real stack; screenshots of each tab go to
test-artifacts/screenshots/. The browser reports English: the page must still be Russian throughout."""

from __future__ import annotations

import re

import pytest

from tests.web.chromium import SHOTS, TIMEOUT_MS, open_page
from web.queue.box import BoxError, parse_box

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture(scope="module")
def page(browser, web_url):
    pg = open_page(browser, web_url, accept_downloads=True)
    yield pg
    pg.context.close()


def status(pg, elem_id: str) -> str:
    return pg.locator(f"#{elem_id}").inner_text().strip()


def settled_box(pg, locator, frames: int = 5) -> dict:
    """The element's bounding box once it has not moved for a few animation frames (layout settled)."""
    last, same = None, 0
    while same < frames:
        pg.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        box = locator.bounding_box()
        same = same + 1 if box == last else 0
        last = box
    return last


def wait_done(pg, elem_id: str, extra: str = "true") -> str:
    """Wait until the status line says «Готово» (and the extra JS condition holds); return the line."""
    pg.wait_for_function(
        f"document.querySelector('#{elem_id}').innerText.includes('Готово') && ({extra})", timeout=TIMEOUT_MS
    )
    return status(pg, elem_id)


def bot_messages(pg) -> list[str]:
    return [t.strip() for t in pg.locator('#chat-bot [data-testid="bot"]').all_inner_texts()]


BOX_VALUE = "document.querySelector('#region-box').querySelector('input, textarea').value"
BOTS = "document.querySelectorAll('#chat-bot [data-testid=\"bot\"]').length"


def test_page_is_russian_even_for_an_english_browser(page):
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.get_by_role("tab", name="Чат").is_visible()
    assert page.get_by_role("tab", name="OCR").is_visible()
    assert page.get_by_role("tab", name="Описание области").is_visible()
    body = page.locator("body").inner_text()
    assert "Нажмите для загрузки" in body and "Click to Upload" not in body
    assert "Модель:" in status(page, "model-status")


def test_chat_upload_question_answer_follow_up(page, media):
    page.get_by_role("tab", name="Чат").click()
    page.locator("#chat-file input[type=file]").set_input_files(str(media["scene"]))
    question = page.locator("#chat-question").get_by_role("textbox")
    page.wait_for_function("document.querySelector('#chat-status').innerText.includes('Изображение загружено')")
    assert question.input_value() == "Опиши изображение"
    page.locator("#chat-bot img").first.wait_for()  # the picture is the first message

    page.get_by_role("button", name="Отправить").click()
    line = wait_done(page, "chat-status", f"{BOTS} == 1")
    assert re.search(r"ожидание в очереди: [\d,]+ с · обработка: [\d,]+ с · токенов: \d+", line), line
    first = bot_messages(page)
    assert len(first) == 1 and first[0] and first[0] != "…"
    assert question.input_value() == ""

    question.fill("А что ещё есть на картинке?")
    question.press("Enter")
    wait_done(page, "chat-status", f"{BOTS} == 2")
    answers = bot_messages(page)
    assert len(answers) == 2 and answers[0] == first[0] and answers[1] and answers[1] != "…"
    assert "А что ещё есть на картинке?" in page.locator("#chat-bot").inner_text()
    page.screenshot(path=str(SHOTS / "chat.png"), full_page=True)

    page.get_by_role("button", name="Новый диалог").click()
    page.wait_for_function(f"{BOTS} == 0")
    assert page.locator("#chat-bot img").count() == 1  # the same file stays

    page.locator("#chat-file").get_by_role("button", name="Очистить").click()  # the upload's ✕
    page.wait_for_function(f"{BOTS} == 0 && !document.querySelector('#chat-bot img')")
    page.locator("#chat-file input[type=file]").set_input_files(str(media["video"]))  # a new file: a new chat
    page.wait_for_function("document.querySelector('#chat-status').innerText.includes('Видео загружено')")
    assert question.input_value() == "Опиши видео"
    page.locator("#chat-bot video").first.wait_for(state="attached")
    page.get_by_role("button", name="Отправить").click()
    line = wait_done(page, "chat-status", f"{BOTS} == 1")
    assert re.search(r"кадров видео: \d+", line), line


def test_ocr_recognise_and_download(page, media, tmp_path):
    page.get_by_role("tab", name="OCR").click()
    page.locator("#ocr-image input[type=file]").set_input_files(str(media["text"]))
    page.locator("#ocr-image img").first.wait_for()
    page.get_by_role("button", name="Распознать текст").click()
    wait_done(page, "ocr-status")
    text = page.locator("#ocr-text textarea").input_value()
    assert text.strip()
    button = page.locator("#ocr-download")
    assert re.fullmatch(r"Скачать ocr_result_\d{8}_\d{6}\.txt", button.inner_text().strip())
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert re.fullmatch(r"ocr_result_\d{8}_\d{6}\.txt", download.suggested_filename), download.suggested_filename
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_text(encoding="utf-8") == text
    page.screenshot(path=str(SHOTS / "ocr.png"), full_page=True)


def test_region_bad_box_then_clicked_box(page, media):
    page.get_by_role("tab", name="Описание области").click()
    page.locator("#region-image input[type=file]").set_input_files(str(media["scene"]))
    page.locator("#region-preview img").first.wait_for()
    box = page.locator("#region-box").get_by_role("textbox")

    box.fill("80, 160, 700, 288")
    page.get_by_role("button", name="Описать область").click()
    with pytest.raises(BoxError) as expected:
        parse_box("80, 160, 700, 288", 640, 480)
    page.wait_for_function("document.querySelector('#region-hint').innerText.includes('правый край')")
    assert status(page, "region-hint").endswith(expected.value.message)
    assert page.locator("body").inner_text().count(expected.value.message) == 1  # said once, under the box

    img = page.locator("#region-image img").first
    bb = settled_box(page, img)
    page.mouse.click(bb["x"] + bb["width"] * 0.125 + 2, bb["y"] + bb["height"] / 3 + 2)
    page.wait_for_function("document.querySelector('#region-hint').innerText.includes('Угол 1')")
    bb = settled_box(page, img)  # the new hint and preview can move the image: measure again
    page.mouse.click(bb["x"] + bb["width"] * 0.325, bb["y"] + bb["height"] * 0.6)
    page.wait_for_function(f"/^\\d+,\\d+,\\d+,\\d+$/.test({BOX_VALUE})")
    x1, y1, x2, y2 = parse_box(box.input_value(), 640, 480).as_tuple()
    assert abs(x1 - 80) <= 4 and abs(y1 - 160) <= 4 and abs(x2 - 208) <= 4 and abs(y2 - 288) <= 4
    page.get_by_role("button", name="Описать область").click()
    wait_done(page, "region-status")
    assert page.locator("#region-text textarea").input_value().strip()
    page.screenshot(path=str(SHOTS / "region.png"), full_page=True)
