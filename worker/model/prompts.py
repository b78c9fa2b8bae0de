"""Chat messages for each job kind. Prompts to the model are English (the models are English-
only); the user's own question is passed through, except the UI's default questions."""

from __future__ import annotations

from common.contract import model_question
from common.schemas import MediaKind, Turn

OCR_PROMPT = (
    "Read all the text visible in this image. Write it exactly as it appears, line by line, "
    "keeping the original language, spelling and line breaks. Output only the text itself: "
    "no introduction, no description of the image, no commentary, no markdown."
)

REGION_PROMPT = (
    "This picture is a crop of a larger image around a region the user selected. "
    "What is the main object in it? Answer in one or two sentences: name the object and "
    "describe its appearance (colour, shape, material, any visible text)."
)


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


def chat_messages(media: MediaKind, history: list[Turn], question: str) -> list[dict]:
    """The media goes in the first user turn, then every earlier turn, then the new question."""
    turns = [*history, None]
    messages: list[dict] = []
    for i, turn in enumerate(turns):
        q = model_question(turn.question if turn else question)
        content = [{"type": media.value}, _text(q)] if i == 0 else [_text(q)]
        messages.append({"role": "user", "content": content})
        if turn is not None:
            messages.append({"role": "assistant", "content": [_text(turn.answer)]})
    return messages


def ocr_messages() -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, _text(OCR_PROMPT)]}]


def region_messages() -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, _text(REGION_PROMPT)]}]
