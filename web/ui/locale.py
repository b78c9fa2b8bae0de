"""The page is Russian whatever the browser's language.

Gradio 6.31 picks its interface language from navigator.language, once, when its scripts start, and then
translates what its components label through i18n keys. Three layers keep everything Russian:

1. RussianPage (an ASGI middleware) puts a script at the top of every HTML page that reports ru-RU before
   Gradio's i18n starts (launch(head=...) comes too late), so Gradio loads its own Russian bundle.
2. I18N (pass it to launch(i18n=I18N)): Gradio's own mechanism, the keys its Russian bundle lacks.
3. The same script translates what Gradio writes in English without any i18n key (hard-coded in its
   frontend): pop-ups («Invalid file type…», «File(s) exceed…», the «Error» title), tooltips («Copy»,
   «Fullscreen», «Remove Image»…), file sizes («2.6 KB» → «2,6 КБ»), the progress timer («1.2s» → «1,2 с»)
   and the API page. TEXT (web.ui.locale_ru) and RULES (the script below) list every such string, as written by
   this Gradio version. A style hides the share buttons: sharing works only on Hugging Face Spaces, elsewhere it
   only shows an English error.

Chat messages, code blocks and text fields are never touched: only the text Gradio itself writes."""

from __future__ import annotations

import json

import gradio as gr

from common import fmt
from web.ui.locale_ru import RU_KEYS, TEXT

I18N = gr.I18n(ru=RU_KEYS)  # for launch(i18n=I18N)


# The page script. It reports ru-RU to Gradio, then a MutationObserver translates, as Gradio writes them, the text
# of each element and its title / aria-label / placeholder: first the regular expressions of RULES over all the
# element's pieces joined with "|", then runs of pieces listed in TEXT, then each piece alone (TEXT, then RULES).
# Gradio rewrites a piece with its English when it changes, and the observer translates it again.
_JS = r"""
(() => {
  for (const [k, v] of [['language', 'ru-RU'], ['languages', ['ru-RU', 'ru']]]) {
    try { Object.defineProperty(navigator, k, { get: () => v, configurable: true }); } catch (e) {}
  }
  const C = __CONFIG__, T = C.text;
  const UNIT = { B: 'Б', KB: 'КБ', MB: 'МБ', GB: 'ГБ', TB: 'ТБ', PB: 'ПБ' };
  const num = (s) => String(s).replace('.', ',');
  const plural = (n, one, few, many) => {
    const a = Math.abs(n) % 100, b = a % 10;
    return a > 10 && a < 20 ? many : b === 1 ? one : b > 1 && b < 5 ? few : many;
  };
  const duration = (v, u) => num(v) + '\u00a0' + (u === 'ms' ? 'мс' : 'с');
  const quoted = (list) => list.map((s) => '«' + s + '»').join(', ');
  const ACCEPT = { 'image/*': 'изображения', 'video/*': 'видео', 'audio/*': 'аудио' };
  const KIND = { image: 'изображение', video: 'видео', audio: 'аудио', file: 'файл' };
  const COMPONENT = { File: 'файл', Textbox: 'текст', Json: 'JSON', Image: 'изображение', Video: 'видео',
    Number: 'число', Checkbox: 'флажок', Dropdown: 'список', Chatbot: 'диалог' };
  const SEQUENCE = { tuple: 'кортеж', list: 'список', 'an array': 'массив', array: 'массив' };
  const RULES = [
    // pop-ups: the Upload component's check of file_types (image-only for gr.Image)…
    [/^Invalid file types?: (.+?)(?: and (\d+) more)?\. Only (.+) allowed\.$/, (m) =>
      (m[0].startsWith('Invalid file types') ? 'Неподдерживаемые типы файлов: ' : 'Неподдерживаемый тип файла: ')
      + m[1] + (m[2] ? ' и ещё ' + m[2] : '') + '. '
      + (ACCEPT[m[3]] ? 'Здесь можно загрузить только ' + ACCEPT[m[3]] + '.' : 'Допустимые типы: ' + m[3] + '.')],
    // …and the client's check of launch(max_file_size=...): the limit named is MAX_UPLOAD_MB when known
    [/^File\(s\) exceed the maximum allowed size of ([\d.]+) (\w+): (.+)$/, (m) => {
      const files = [...m[3].matchAll(/"([^"]*)"/g)].map((x) => x[1]);
      const limit = C.uploadLimit || num(m[1]) + '\u00a0' + (UNIT[m[2].toUpperCase()] || m[2]);
      return (files.length > 1 ? 'Файлы ' + quoted(files) + ' слишком большие'
        : 'Файл ' + quoted(files) + ' слишком большой') + ': можно загружать файлы до ' + limit + '.';
    }],
    // numbers: file sizes in the file list, the progress timer («1.2s», «1.2/3.4s»), durations on the API page
    [/^(\d+(?:\.\d+)?)[\s\u00a0](B|KB|MB|GB|TB|PB)$/, (m) => num(m[1]) + '\u00a0' + UNIT[m[2]]],
    [/^(\d+\.\d+)(?:\/(\d+\.\d+))?s$/, (m) => num(m[1]) + (m[2] ? '/' + num(m[2]) : '') + '\u00a0с'],
    [/^(\d+(?:\.\d+)?) (ms|s)$/, (m) => duration(m[1], m[2])],
    [/^queue: (\d+)\/(\d*) \|$/, (m) => 'очередь: ' + m[1] + '/' + m[2] + ' |'],
    // screen-reader labels of chat messages
    [/^(user|bot)'s message: (.*)$/s, (m) => (m[1] === 'user' ? 'Сообщение пользователя: ' : 'Ответ модели: ')
      + m[2].replace(/^a component of type (\w+)$/, (x, t) => KIND[t] || t)],
    // the API page
    [/^(API|CLI|MCP)\|documentation$/, (m) => [m[1], '— документация']],
    [/^(API endpoint|CLI endpoint|MCP Tool)(\|s)?$/, (m, el) => {
      const n = parseInt(el.querySelector('.url')?.textContent || '1', 10);
      const what = m[1] === 'MCP Tool' ? plural(n, 'инструмент', 'инструмента', 'инструментов') + ' MCP'
        : plural(n, 'метод', 'метода', 'методов') + (m[1] === 'CLI endpoint' ? ' CLI' : ' API');
      return m[2] ? [what, ''] : what;
    }],
    [/^Accepts (\d+) parameter(\|s)?\|:$/, (m) => ['Принимает ' + m[1] + ' '
      + plural(+m[1], 'параметр', 'параметра', 'параметров'), ...(m[2] ? [''] : []), ':']],
    [/^Accepts a JSON object with (\d+) key(\|s)?\|:$/, (m) => ['Принимает JSON-объект из ' + m[1] + ' '
      + plural(+m[1], 'ключа', 'ключей', 'ключей'), ...(m[2] ? [''] : []), ':']],
    [/^(tuple|list|an array|array) of (\d+) elements?$/, (m) => SEQUENCE[m[1]] + ' из ' + m[2] + ' '
      + plural(+m[2], 'элемента', 'элементов', 'элементов')],
    [/^(\d+) elements?$/, (m) => m[1] + ' ' + plural(+m[1], 'элемент', 'элемента', 'элементов')],
    [/^The (input|output) value that (?:is provided in|appears in) the "(.*?)" (\w+) component\.\s*(.*)$/, (m) =>
      (m[1] === 'input' ? 'Входное значение: «' : 'Выходное значение: «') + m[2] + '» ('
      + (COMPONENT[m[3]] || m[3]) + ').' + (m[4] ? ' ' + (T[m[4]] || m[4]) : '')],
    [/^Copy (\w+) Docs as Markdown for LLMs$/, (m) => 'Скопировать документацию (' + m[1] + ') для языковой модели'],
    [/^Ask Questions About The (\w+) Docs$/, (m) => 'Задать вопросы по документации (' + m[1] + ')'],
    [/^Here is the code snippet to replay the most recently recorded API calls using the (\w+) client\.$/,
      (m) => 'Код, который повторит последние записанные вызовы API через клиент ' + m[1] + '.'],
    [/^(\d+) requests \((\d+)% successful, p50: (\d+(?:\.\d+)?) (ms|s)\)$/, (m) => m[1] + ' '
      + plural(+m[1], 'вызов', 'вызова', 'вызовов') + ' (успешных: ' + m[2] + '%, медиана: '
      + duration(m[3], m[4]) + ')'],
  ];
  const RUNS = Object.entries(T).filter(([, v]) => Array.isArray(v)).map(([k, v]) => [k.split('|'), v]);

  const has = Object.prototype.hasOwnProperty;
  const rule = (key, el) => {
    for (const [re, fn] of RULES) { const m = re.exec(key); if (m) return fn(m, el); }
    return null;
  };
  const one = (piece, el) => {
    const t = has.call(T, piece) ? T[piece] : rule(piece, el);
    return typeof t === 'string' ? t : null;
  };
  const norm = (s) => s.replace(/\s+/g, ' ').trim();
  const put = (node, text) => {
    const old = node.nodeValue;
    const lead = /^\s/.test(old) && !/^[,.:;!?)]/.test(text) ? ' ' : '';
    const value = lead + text + (text && /\s$/.test(old) ? ' ' : '');
    if (value !== old) node.nodeValue = value;
  };
  // Chat messages, code and text fields are content, not Gradio's interface.
  const SKIP = 'script, style, pre, code, textarea, [contenteditable="true"], '
    + '[data-testid="bot"], [data-testid="user"]';
  const LATIN = /[A-Za-z]/;
  const texts = (el) => {
    const nodes = [];
    for (const n of el.childNodes) if (n.nodeType === 3 && n.nodeValue.trim()) nodes.push(n);
    if (!nodes.length || !nodes.some((n) => LATIN.test(n.nodeValue)) || el.closest(SKIP)) return;
    const parts = nodes.map((n) => norm(n.nodeValue)), done = [];
    if (nodes.length > 1) {
      const all = rule(parts.join('|'), el);
      if (Array.isArray(all) && all.length === nodes.length) { nodes.forEach((n, i) => put(n, all[i])); return; }
      for (const [keys, values] of RUNS) {
        for (let i = 0; i + keys.length <= parts.length; i++) {
          if (!keys.every((k, j) => parts[i + j] === k)) continue;
          keys.forEach((k, j) => { put(nodes[i + j], values[j]); done[i + j] = true; });
        }
      }
    }
    nodes.forEach((n, i) => { const t = done[i] ? null : one(parts[i], el); if (t !== null) put(n, t); });
  };
  const ATTRS = ['title', 'aria-label', 'placeholder'];
  const attrs = (el) => {
    for (const a of ATTRS) {
      const v = el.getAttribute(a);
      const t = v && LATIN.test(v) ? one(norm(v), el) : null;
      if (t !== null && t !== v) el.setAttribute(a, t);
    }
  };
  const walk = (node) => {
    if (node.nodeType === 3) { if (node.parentElement) texts(node.parentElement); return; }
    if (node.nodeType !== 1) return;
    for (const el of [node, ...node.querySelectorAll('*')]) { texts(el); if (el.hasAttributes()) attrs(el); }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'childList') r.addedNodes.forEach(walk);
      else if (r.type === 'characterData') { if (r.target.parentElement) texts(r.target.parentElement); }
      else attrs(r.target);
    }
  }).observe(document.documentElement, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ATTRS,
  });
})();
"""

# Sharing needs Hugging Face Spaces; the chatbot shows its share button on every picture regardless.
_CSS = 'button[aria-label="Поделиться"], button[aria-label="Share"] { display: none !important; }'


def page_head(upload_limit_bytes: int | None = None) -> bytes:
    """The <style> and <script> that go first in every page's <head>."""
    # A no-break space keeps the number with its unit in the pop-up.
    limit = fmt.megabytes(upload_limit_bytes).replace(" ", fmt.NBSP) if upload_limit_bytes else None
    config = {"text": TEXT, "uploadLimit": limit}
    js = _JS.replace("__CONFIG__", json.dumps(config, ensure_ascii=False).replace("</", "<\\/"))
    return f"<style>{_CSS}</style><script>{js.strip()}</script>".encode()


SCRIPT = page_head()


class RussianPage:
    """Pure ASGI middleware: buffers only uncompressed text/html responses and inserts the page head after
    <head> (upload_limit_bytes: MAX_UPLOAD_MB, named in the «file too large» pop-up instead of Gradio's cap)."""

    def __init__(self, app, upload_limit_bytes: int | None = None) -> None:
        self.app = app
        self.head = page_head(upload_limit_bytes) if upload_limit_bytes else SCRIPT

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def wrapped(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                html = headers.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in headers:
                    start = message  # hold it until the body is complete
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = inject(b"".join(chunks), self.head)
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, wrapped)


def inject(body: bytes, head: bytes = SCRIPT) -> bytes:
    """Insert head right after <head>; the page's <html lang="en"> becomes lang="ru" from the first byte."""
    at = body.find(b"<head>")
    if at < 0:
        return body
    at += len(b"<head>")
    return body[:at].replace(b'lang="en"', b'lang="ru"', 1) + head + body[at:]
