"""The Gradio Blocks: three tabs («Чат», «OCR», «Описание области»), a model status line, and three public API
endpoints (/vqa, /ocr, /describe_region) on hidden components. The handlers: web.ui.chat, .ocr, .region, .api,
.status (Handlers, below, holds one of each)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from common.settings import Settings
from common.store import IMAGE_EXTS, VIDEO_EXTS, MediaStore
from web.queue.client import JobClient
from web.queue.registry import ActiveJobs
from web.ui import chat, ocr, region, render
from web.ui.api import PublicApi
from web.ui.chat import ChatState, ChatTab
from web.ui.ocr import OcrTab
from web.ui.region import RegionTab
from web.ui.status import ModelStatus

STATUS_REFRESH_S = 0.5  # with WORKERS_CACHE_S = 0.25 (web.ui.status): a worker's change shows within ~0.75 s
TITLE = "SmolVLM2 — демо"
CSS = """
#model-status, #chat-status, #ocr-status, #region-status, #region-hint { min-height: 1.5em; }
#model-status p, #chat-status p, #ocr-status p, #region-status p, #region-hint p { margin: 0; }
#chat-bot .message img, #chat-bot .message video { max-height: 260px !important; width: auto !important; }
/* A block's floating label stops short of the block's icons (top right): it wraps instead of hiding under them. */
.block label[data-testid="block-label"].float { max-width: calc(100% - 5rem); }
@media (max-width: 640px) {  /* phones: the inputs compact, the chat short enough to see its question box */
  .gradio-container h1 { font-size: 1.6rem; }
  #chat-file .upload-container { height: 120px !important; }
  #chat-bot { height: min(340px, 45vh) !important; }
  #chat-bot .message img, #chat-bot .message video { max-height: 160px !important; }
  #ocr-image, #region-image, #region-preview { height: 260px !important; }
}
"""
# After a press and after the answer: the tab's status line (and the result just above it) scrolled into view, on a
# phone below the inputs; "nearest" leaves the page alone when it is on screen already. Once more a moment later:
# the last update's layout (a taller text, a download button) may settle after the event has ended.
REVEAL = """() => {{
  const el = document.getElementById("{}");
  const reveal = () => el && el.scrollIntoView({{ block: "nearest", behavior: "smooth" }});
  requestAnimationFrame(reveal);
  setTimeout(reveal, 350);
}}"""
THEME = gr.themes.Soft()

# UI events: private (not part of the API), never limited by Gradio's queue: the real queue is Redis.
UI = {"api_visibility": "private", "concurrency_limit": None}
# A send while the tab's job runs is never dropped nor refused: it waits in the page and goes the moment that job
# ends, with what the inputs hold then (the follow-up typed meanwhile, the conversation with the answer just given).
STREAM = {**UI, "show_progress": "minimal", "trigger_mode": "always_last"}
QUIET = {**UI, "show_progress": "hidden"}


def run_event(triggers: list, fn, inputs, outputs, status_id: str):
    """A job's event: one event for all its triggers (the button, Enter), so a send while it runs waits for it
    (STREAM); the status line is scrolled into view at the press and at the end."""
    reveal = {"js": REVEAL.format(status_id), "api_visibility": "private"}
    gr.on(triggers, None, None, None, **reveal)
    event = gr.on(triggers, fn, inputs, outputs, **STREAM)
    event.then(None, None, None, **reveal)
    return event


# A question whose job failed comes back to the box, unless the next one has been typed there meanwhile.
RESTORE_FAILED = "(box, failed) => [(box && box.trim()) ? box : (failed || box)]"


def stop_button(elem_id: str) -> gr.Button:
    return gr.Button("Остановить", variant="stop", visible=False, elem_id=elem_id)


def _chat_tab(h: ChatTab, samples: dict[str, Path], language: gr.Radio) -> None:
    state = gr.State(ChatState())
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            file = gr.File(
                label="Изображение или видео", file_types=sorted(IMAGE_EXTS | VIDEO_EXTS), type="filepath",
                elem_id="chat-file", height=200,
            )
            if samples:
                gr.Examples(
                    [[str(samples[k])] for k in ("scene", "clip", "text") if k in samples],
                    inputs=[file], label="Примеры (щёлкните, чтобы загрузить)",
                )
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                label="Диалог", height=460, elem_id="chat-bot", buttons=["copy"], feedback_options=None,
                placeholder="Загрузите изображение или видео (MP4) и задайте вопрос о нём.",
            )
            question = gr.Textbox(
                label="Вопрос", placeholder="Например: «Опиши изображение» или «Что происходит на видео?»",
                elem_id="chat-question", max_lines=6,
            )
            with gr.Row():
                send = gr.Button("Отправить", variant="primary", elem_id="chat-send")
                stop = stop_button("chat-stop")
                reset = gr.Button("Новый диалог", elem_id="chat-reset")
            status = gr.Markdown(elem_id="chat-status")
            frames = gr.Gallery(visible=False, elem_id="chat-frames", columns=8, height=150, object_fit="contain",
                                buttons=[], allow_preview=True)
            failed = gr.Textbox(visible=False, elem_id="chat-failed")  # the last question whose job failed

    parts = {"state": state, "chatbot": chatbot, "question": question, "status": status, "run": send, "stop": stop,
             "frames": frames, "failed": failed}
    file.change(h.file_changed, [file, question], chat.FILE.of(parts), **QUIET)
    file.change(lambda: gr.Gallery(value=None, visible=False), None, frames, **QUIET)  # frames of an older video
    resets = chat.RESET.of(parts)
    reset.click(h.reset, [state], resets, **QUIET)
    chatbot.clear(h.reset, [state], resets, **QUIET)  # the chatbot's own 🗑 button
    stop.click(h.stop, None, status, **QUIET)
    event = run_event([send.click, question.submit], h.send, [question, state, language], chat.SEND.of(parts),
                      "chat-status")
    event.then(None, [question, failed], [question], js=RESTORE_FAILED, api_visibility="private")


def _ocr_tab(h: OcrTab, samples: dict[str, Path]) -> None:
    with gr.Row():
        with gr.Column():
            image = gr.Image(
                label="Изображение с текстом", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                elem_id="ocr-image", height=380,
            )
            with gr.Row():
                run = gr.Button("Распознать текст", variant="primary", elem_id="ocr-run")
                stop = stop_button("ocr-stop")
            if "text" in samples:
                gr.Examples([[str(samples["text"])]], inputs=[image], label="Пример")
        with gr.Column():
            text = gr.Textbox(
                label="Распознанный текст", lines=14, max_lines=30, interactive=False, buttons=["copy"],
                placeholder="Здесь появится распознанный текст.", elem_id="ocr-text",
            )
            download = gr.DownloadButton("Скачать .txt", visible=False, elem_id="ocr-download")
            status = gr.Markdown(elem_id="ocr-status")
    parts = {"text": text, "download": download, "status": status, "run": run, "stop": stop}
    run_event([run.click], h.run, [image], ocr.OUTPUTS.of(parts), "ocr-status")
    stop.click(h.stop, None, status, **QUIET)


def _region_tab(h: RegionTab, samples: dict[str, Path], language: gr.Radio) -> None:
    corner = gr.State(None)  # the first clicked corner, until the second click
    with gr.Row():
        with gr.Column():
            image = gr.Image(
                label="Изображение", type="filepath", image_mode=None,
                sources=["upload", "clipboard"], elem_id="region-image", height=380,
            )
            box = gr.Textbox(
                label="Координаты области, пиксели", placeholder="x1,y1,x2,y2", elem_id="region-box",
                info="Щёлкните два противоположных угла области на изображении (или на выбранной области) либо "
                     "введите x1,y1,x2,y2: левый верхний и правый нижний углы, отсчёт от левого верхнего угла "
                     "изображения",
            )
            with gr.Row():
                run = gr.Button("Описать область", variant="primary", elem_id="region-run")
                stop = stop_button("region-stop")
            hint = gr.Markdown(elem_id="region-hint")
            if "scene" in samples:
                gr.Examples(
                    [[str(samples["scene"]), "80,160,208,288"], [str(samples["scene"]), "320,120,480,280"]],
                    inputs=[image, box], label="Примеры", example_labels=["Красный квадрат", "Синий круг"],
                )
        with gr.Column():
            preview = gr.Image(
                label="Выбранная область", interactive=False, elem_id="region-preview",
                height=380, buttons=["fullscreen"],
            )
            text = gr.Textbox(
                label="Описание области", lines=6, max_lines=20, interactive=False, buttons=["copy"],
                placeholder="Здесь появится описание выбранной области.", elem_id="region-text",
            )
            with gr.Accordion(render.ORIGINAL_TITLE, open=False, visible=False, elem_id="region-original") as original:
                original_text = gr.Textbox(show_label=False, lines=3, max_lines=12, interactive=False,
                                           buttons=["copy"], elem_id="region-original-text")
            status = gr.Markdown(elem_id="region-status")

    parts = {"text": text, "status": status, "run": run, "stop": stop, "hint": hint, "preview": preview,
             "corner": corner, "box": box, "original": original, "original_text": original_text}
    image.upload(lambda: ("", None), None, [box, corner], **QUIET)  # a new picture: the old box is meaningless
    image.change(h.image_changed, [image, box], region.IMAGE.of(parts), **QUIET)
    box.change(h.preview, [image, box], region.PREVIEW.of(parts),
               trigger_mode="always_last", **QUIET)
    clicks = [image, corner], region.CLICK.of(parts)
    image.select(h.click_image, *clicks, **QUIET)
    preview.select(h.click_preview, *clicks, **QUIET)
    run_event([run.click, box.submit], h.run, [image, box, language], region.RUN.of(parts),
              "region-status")
    stop.click(h.stop, None, status, **QUIET)


def _api(a: PublicApi) -> None:
    """Hidden components whose only purpose is the public API: calls that return the final answer. The API page
    («Использовать через API») shows their labels and the docstrings of web.ui.api: both Russian."""
    api = {"concurrency_limit": None, "show_progress": "hidden"}
    with gr.Column(visible=False):
        file = gr.File(label="Изображение или видео", type="filepath")
        question = gr.Textbox(label="Вопрос")
        history = gr.JSON(label="История диалога", value=[])
        answer = gr.Textbox(label="Ответ")
        gr.Button(visible=False).click(a.vqa, [file, question, history], answer, api_name="vqa", **api)

        image = gr.File(label="Изображение", type="filepath")
        text = gr.Textbox(label="Распознанный текст")
        txt = gr.File(label="Файл .txt с текстом")
        gr.Button(visible=False).click(a.ocr, [image], [text, txt], api_name="ocr", **api)

        region_image = gr.File(label="Изображение", type="filepath")
        box = gr.Textbox(label="Область x1,y1,x2,y2")
        description = gr.Textbox(label="Описание области")
        gr.Button(visible=False).click(
            a.describe_region, [region_image, box], description, api_name="describe_region", **api
        )


@dataclass
class Handlers:
    """One handler object per tab, the public API's and the status line's; they share the registry of each
    session's running jobs."""

    chat: ChatTab
    ocr: OcrTab
    region: RegionTab
    api: PublicApi
    status: ModelStatus

    @classmethod
    def build(cls, settings: Settings, client: JobClient, store: MediaStore,
              active: ActiveJobs | None = None) -> Handlers:
        active = active or ActiveJobs()
        parts = (settings, client, store, active)
        return cls(ChatTab(*parts), OcrTab(*parts), RegionTab(*parts), PublicApi(*parts), ModelStatus(client))


def build_blocks(h: Handlers, settings: Settings, samples: dict[str, Path] | None = None) -> gr.Blocks:
    samples = samples or {}
    # Gradio keeps every upload in its own cache: clear it on the same schedule as MEDIA_DIR (hourly check).
    ttl = max(3600, int(settings.media_ttl_hours * 3600))
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, ttl)) as demo:
        gr.Markdown(
            f"# {TITLE}\nВопросы по изображениям и видео, распознавание текста и описание области "
            "изображения моделью SmolVLM2. Задания выполняются по очереди обработчиками."
        )
        if settings.auth_users:  # logged in by the app itself (a proxy's login is the proxy's to end)
            gr.HTML('<a href="/logout" id="logout" style="float:right">Выйти</a>')
        with gr.Row(equal_height=True):
            model_status = gr.Markdown("Проверяю обработчики…", elem_id="model-status")
            # Per page (this browser tab): overrides ANSWER_LANGUAGE for its chat and region answers
            # (docs/translation.md). In the status line's row: the tabs keep their height.
            language = gr.Radio([("русский", "ru"), ("английский", "en")], value=settings.answer_language,
                                label="Язык ответа", show_label=True, container=False, scale=0, min_width=260,
                                elem_id="answer-language")
        with gr.Tabs():
            with gr.Tab("Чат", id="chat", elem_id="tab-chat"):
                _chat_tab(h.chat, samples, language)
            with gr.Tab("OCR", id="ocr", elem_id="tab-ocr"):
                _ocr_tab(h.ocr, samples)
            with gr.Tab("Описание области", id="region", elem_id="tab-region"):
                _region_tab(h.region, samples, language)
        _api(h.api)
        timer = gr.Timer(STATUS_REFRESH_S)
        timer.tick(h.status.line, None, model_status, **QUIET)
        demo.load(h.status.line, None, model_status, **QUIET)
    return demo
