"""Chromium: answers are Russian by default, the model's English is collapsed under each answer, and the page's
«Язык ответа» switch gives English answers for that page only (another page stays Russian)."""

from __future__ import annotations

import re

import pytest

from tests.web.chromium import SHOTS, open_page
from tests.web.ui.test_browser import BOTS, bot_messages, wait_done

pytestmark = [pytest.mark.browser, pytest.mark.integration]
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
LATIN = re.compile(r"[A-Za-z]")


def first_lines(messages: list[str]) -> list[str]:
    """Each answer without its note («— ответ обрезан…») and its collapsed «Ответ модели (англ.)» line."""
    return [m.split("Ответ модели (англ.)")[0].split("\n\n—")[0].strip() for m in messages]


def ask(pg, image, question: str | None = None, answers: int = 1) -> list[str]:
    if question is None:
        pg.get_by_role("tab", name="Чат").click()
        pg.locator("#chat-file input[type=file]").set_input_files(str(image))
        pg.wait_for_function("document.querySelector('#chat-status').innerText.includes('Изображение загружено')")
    else:
        pg.locator("#chat-question").get_by_role("textbox").fill(question)
    pg.get_by_role("button", name="Отправить").click()
    wait_done(pg, "chat-status", f"{BOTS} == {answers}")
    return bot_messages(pg)


def test_russian_answers_with_the_english_collapsed_and_a_per_page_switch(browser, web_url, media):
    page, other = open_page(browser, web_url), open_page(browser, web_url)
    try:
        radio = page.locator("#answer-language")
        assert radio.get_by_label("русский").is_checked()  # ANSWER_LANGUAGE=ru
        [answer] = first_lines(ask(page, media["scene"]))
        assert CYRILLIC.search(answer) and not LATIN.search(answer), answer
        details = page.locator("#chat-bot details")
        assert details.count() == 1 and details.locator("summary").inner_text().strip() == "Ответ модели (англ.)"
        assert not details.evaluate("d => d.open")  # collapsed: the English is not on the screen
        english = details.evaluate("d => d.textContent")
        assert LATIN.search(english.replace("Ответ модели (англ.)", ""))
        details.locator("summary").click()
        assert details.evaluate("d => d.open")
        page.screenshot(path=str(SHOTS / "chat-translated.png"), full_page=True)

        radio.get_by_label("английский").check()
        answers = first_lines(ask(page, media["scene"], "What else is there?", answers=2))
        assert not CYRILLIC.search(answers[1]) and LATIN.search(answers[1]), answers
        assert page.locator("#chat-bot details").count() == 1  # nothing translated: no original to show

        assert other.locator("#answer-language").get_by_label("русский").is_checked()  # the switch is per page
        [theirs] = first_lines(ask(other, media["scene"]))
        assert CYRILLIC.search(theirs)
    finally:
        page.context.close()
        other.context.close()
