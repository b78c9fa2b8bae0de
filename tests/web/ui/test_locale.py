"""Chromium in English (--lang=en-US, Accept-Language en-US) through everything that made Gradio speak English on
its own: a wrong file type on each tab, a file over the size cap, the buttons' tooltips, the chat picture's share
button, the progress timer, the API page. After each, the visible text, the pop-ups and the tooltips hold no English
word but a few names; numbers have the Russian decimal comma. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.web.chromium import SHOTS, open_page
from tests.web.conftest import start_web
from web.ui.locale import inject, page_head
from web.ui.locale_ru import GRADIO_VERSION, RU_KEYS, TEXT

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CAP_MB = 1  # MAX_UPLOAD_MB of the second web; Gradio's own cap there is 2 × 1 MB

# Names that stay in Latin letters. Words with digits or "_" (SmolVLM2, x1, bfloat16, describe_region), paths,
# URLs, file extensions, the files this test uploads and whatever sits in code blocks are not checked at all.
NAMES = {"SmolVLM2", "OCR", "MP4", "API", "cpu", "cuda", "mps"}
API_NAMES = {"Python", "JavaScript", "CLI", "cURL", "MCP", "Gradio", "HF", "HuggingChat", "JSON", "URL", "MIME"}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'’]*(?:-[A-Za-z0-9_]+)*")

# Visible text and tooltips of the page, less code blocks and chat messages (the model's words are not the UI).
VISIBLE = r"""() => {
  const skip = 'script, style, pre, code, .code, textarea, [data-testid="bot"], [data-testid="user"]';
  const out = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walker.nextNode());) {
    const el = n.parentElement;
    if (!n.nodeValue.trim() || !el || el.closest(skip)) continue;
    if (el.checkVisibility({ visibilityProperty: true })) out.push(n.nodeValue);
  }
  const tips = [];
  for (const el of document.querySelectorAll('[title], [aria-label], [placeholder]')) {
    if (el.closest('[data-testid="bot"], [data-testid="user"]') || !el.checkVisibility()) continue;
    for (const a of ['title', 'aria-label', 'placeholder'])
      if (el.getAttribute(a)) tips.push(a + ': ' + el.getAttribute(a));
  }
  return [out.join('\n'), tips];
}"""
DROP = """([selector, name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const target = document.querySelector(selector);
  for (const type of ['dragenter', 'dragover', 'drop'])
    target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
}"""


def file_size(size: int) -> str:
    """Bytes as the page must show Gradio's file sizes (1024-based, one decimal) once translated: 2620 → "2,6 КБ"."""
    units = ["Б", "КБ", "МБ", "ГБ", "ПБ"]
    value, unit = float(size), 0
    while value > 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f}".replace(".", ",") + f"\u00a0{units[unit]}"


def english(text: str, *files: str, names: set[str] = NAMES) -> list[str]:
    """The English words in text, less names, identifiers, paths, URLs, file names and the given files."""
    for name in files:  # the file list shows a name as its stem and its extension apart
        text = text.replace(name, " ").replace(Path(name).stem, " ")
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"(?<![\w.])/[\w./-]+", " ", text)  # /vqa, /tmp/…/test-model
    text = re.sub(r"[\w-]*\.[A-Za-z0-9]{2,4}\b", " ", text)  # file names and extensions: scene.png, .mp4
    allowed = {n.lower() for n in names}  # «python» is shown as «Python» by CSS
    return sorted({w for w in WORD.findall(text) if w.lower() not in allowed and not re.search(r"[\d_]", w)})


def assert_russian(pg, *files: str, names: set[str] = NAMES, where: str = "") -> None:
    text, tips = pg.evaluate(VISIBLE)
    assert not english(text, *files, names=names), f"{where}: English on the page: {english(text, *files, names=names)}"
    bad = [t for t in tips if english(t.split(": ", 1)[1], *files, names=names)]
    assert not bad, f"{where}: English tooltips / labels: {bad}"


def toast(pg) -> str:
    """The text of the first pop-up, once it shows."""
    body = pg.locator('[data-testid="toast-body"]').first
    body.wait_for()
    return body.inner_text()


def drop(pg, selector: str, path: Path, mime: str) -> None:
    """Drag a file from the desktop onto an upload area, the way a user drops it."""
    pg.evaluate(DROP, [selector, path.name, mime, base64.b64encode(path.read_bytes()).decode()])


@pytest.fixture
def page(browser, web_url):
    pg = open_page(browser, web_url)
    yield pg
    pg.context.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory, media) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("i18n-files")
    notes = d / "notes.txt"
    notes.write_text("Список покупок\n", encoding="utf-8")
    clip = d / "my_clip.mp4"
    clip.write_bytes(media["video"].read_bytes())
    huge = d / "huge.mp4"
    huge.write_bytes(b"\0" * (2 * CAP_MB * 1024 * 1024 + 512 * 1024))  # over Gradio's cap of 2 × MAX_UPLOAD_MB
    return {"notes": notes, "clip": clip, "huge": huge, "scene": media["scene"], "text": media["text"]}


@pytest.fixture(scope="module")
def capped_web_url(settings, worker, tmp_path_factory) -> str:
    svc, url = start_web(settings, tmp_path_factory.mktemp("web-cap"), name="web-i18n-cap", MAX_UPLOAD_MB=str(CAP_MB))
    yield url
    svc.stop()


def test_the_page_head_and_the_tables():
    """No browser: the head goes first, names MAX_UPLOAD_MB with a decimal comma; the tables are well formed."""
    head = page_head(upload_limit_bytes=int(1.5 * 2**20))
    page = inject(b'<!doctype html><html\n\tlang="en"><head><meta charset="utf-8"><script src="app.js"></script>', head)
    assert page.index(head) < page.index(b"app.js") and b'lang="ru"' in page
    assert "1,5\u00a0МБ".encode() in head and b"</" not in head.split(b"<script>", 1)[1][: -len(b"</script>")]
    assert file_size(2620) == "2,6\u00a0КБ" and file_size(3 * 1024 * 1024) == "3,0\u00a0МБ"
    assert "50\u00a0МБ".encode() in page_head(upload_limit_bytes=50 * 2**20)
    assert all(len(v) == len(k.split("|")) for k, v in TEXT.items() if isinstance(v, list))
    assert all(re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", k) for k in RU_KEYS)
    import gradio

    assert gradio.__version__ == GRADIO_VERSION, "a new Gradio: check web/ui/locale_ru.py against its frontend"


def test_the_page_is_russian_for_an_english_browser(page):
    assert page.evaluate("navigator.language") == "ru-RU"
    assert page.locator("html").get_attribute("lang") == "ru"
    for tab in ("Чат", "OCR", "Описание области"):
        page.get_by_role("tab", name=tab).click()
        assert_russian(page, where=tab)


def test_a_text_file_dropped_on_the_chat(page, files):
    drop(page, "#chat-file button", files["notes"], "text/plain")
    message = toast(page)
    assert "notes.txt" in message and "Invalid file type" not in message, message
    assert message.startswith("Ошибка"), message
    assert_russian(page, "notes.txt", where="a .txt on «Чат»")
    page.screenshot(path=str(SHOTS / "i18n-chat-txt.png"))


@pytest.mark.parametrize("tab, elem_id", [("OCR", "ocr-image"), ("Описание области", "region-image")])
def test_a_video_dropped_on_an_image_tab(page, files, tab, elem_id):
    page.get_by_role("tab", name=tab).click()
    drop(page, f"#{elem_id} button", files["clip"], "video/mp4")
    message = toast(page)
    assert "my_clip.mp4" in message and "image/*" not in message, message
    assert_russian(page, "my_clip.mp4", where=f"an mp4 on «{tab}»")


def test_a_file_over_the_size_cap(browser, capped_web_url, files):
    pg = open_page(browser, capped_web_url)
    try:
        pg.locator("#chat-file input[type=file]").set_input_files(str(files["huge"]))
        message = toast(pg)
        assert "huge.mp4" in message and "exceed" not in message, message
        assert f"{CAP_MB}\u00a0МБ" in message, f"the limit named is not MAX_UPLOAD_MB: {message}"
        assert_russian(pg, "huge.mp4", where="a file over the cap")
        pg.screenshot(path=str(SHOTS / "i18n-too-large.png"))
    finally:
        pg.context.close()


def test_tooltips_sizes_and_no_share_button(page, files):
    page.locator("#chat-file input[type=file]").set_input_files(str(files["scene"]))
    page.locator("#chat-bot img").first.wait_for()
    assert file_size(files["scene"].stat().st_size) in page.locator("#chat-file").inner_text()  # «2,6 КБ»
    share = page.locator('#chat-bot button[aria-label="Поделиться"], #chat-bot button[aria-label="Share"]')
    assert share.count() == 0 or not any(b.is_visible() for b in share.all()), "the share button is shown"
    page.locator("#chat-bot img").first.hover()
    assert_russian(page, files["scene"].name, where="a picture in the chat")

    page.get_by_role("tab", name="OCR").click()
    page.locator("#ocr-image input[type=file]").set_input_files(str(files["text"]))
    page.locator("#ocr-image img").first.wait_for()
    page.locator("#ocr-image").hover()
    assert page.locator("#ocr-image").get_by_role("button", name="Удалить изображение").is_visible()
    assert page.locator("#ocr-text").get_by_role("button", name="Копировать").count() == 1
    assert_russian(page, files["text"].name, where="«OCR» with a picture")

    page.get_by_role("tab", name="Описание области").click()
    page.locator("#region-image input[type=file]").set_input_files(str(files["scene"]))
    page.locator("#region-preview img").first.wait_for()
    page.locator("#region-preview").hover()
    assert page.locator("#region-preview").get_by_role("button", name="Во весь экран").is_visible()
    assert_russian(page, files["scene"].name, where="«Описание области» with a picture")
    page.screenshot(path=str(SHOTS / "i18n-region.png"))


def test_the_progress_timer_has_a_decimal_comma(page, files):
    page.evaluate("""() => {
      window.timers = [];
      new MutationObserver(() => document.querySelectorAll('.progress-text').forEach(
        (e) => e.textContent.trim() && window.timers.push(e.textContent.trim()))
      ).observe(document.body, { subtree: true, childList: true, characterData: true });
    }""")
    page.locator("#chat-file input[type=file]").set_input_files(str(files["scene"]))
    page.wait_for_function("document.querySelector('#chat-status').innerText.includes('Изображение загружено')")
    page.get_by_role("button", name="Отправить").click()
    page.wait_for_function("document.querySelector('#chat-status').innerText.includes('Готово')")
    timers = page.evaluate("window.timers")
    assert timers, "no progress timer was shown"
    assert all(re.fullmatch(r"(очередь: \d+/\d* \| |обработка \| )?\d+,\d(/\d+,\d)?\s?с", t) for t in timers), timers


TWO_FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


def test_the_api_page(page):
    page.get_by_role("button", name="Использовать через API").click()
    page.get_by_text("/describe_region").first.wait_for()
    # the endpoints' parameter names and types, shown as code, may be named in the descriptions too
    names = NAMES | API_NAMES | set(WORD.findall(" ".join(page.locator("span.code").all_inner_texts())))
    descriptions = [d.strip() for d in page.locator("span.desc").all_inner_texts()]
    assert len(descriptions) == 3 and all(d and not english(d, names=names) for d in descriptions), descriptions
    assert_russian(page, names=names, where="the API page")
    page.screenshot(path=str(SHOTS / "i18n-api.png"), full_page=True)
    for tab in ("JavaScript", "CLI", "cURL", "MCP", "Python"):
        page.locator("li.snippet", has_text=tab).first.click()
        page.evaluate(TWO_FRAMES)  # the tab's text is rendered, then translated, within one frame
        assert_russian(page, names=names, where=f"the API page, {tab}")
