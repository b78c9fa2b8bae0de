"""The region box, typed («x1,y1,x2,y2») or clicked (two corners): pure functions. Every mistake gets its own
Russian message (BoxError), naming the image size where it matters."""

from __future__ import annotations

import re

from common.errors import UserError
from common.schemas import Box

MIN_BOX_PX = 4
FORMAT_HINT = "x1,y1,x2,y2 (например, 10,20,200,150)"

_INT = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"[-−][0-9]+")
_DECIMAL = re.compile(r"[-−+]?[0-9]*\.[0-9]+|[-−+]?[0-9]+\.[0-9]*")


class BoxError(UserError):
    """The coordinates typed by the user cannot be used."""


def _number(part: str, index: int) -> int:
    names = ("x1", "y1", "x2", "y2")
    name = names[index]
    if not part:
        raise BoxError(f"Пропущено число {name}: между запятыми ничего нет. Формат: {FORMAT_HINT}.")
    if _INT.fullmatch(part):
        return int(part)
    if part.startswith("+") and _INT.fullmatch(part[1:]):
        return int(part[1:])
    if _NEGATIVE.fullmatch(part):
        raise BoxError(
            f"Координаты не могут быть отрицательными: {name} = {part}. Отсчёт идёт от 0 (левый верхний угол)."
        )
    if _DECIMAL.fullmatch(part):
        raise BoxError(f"Координаты должны быть целыми числами (пикселями), а {name} = «{part}» — дробное число.")
    raise BoxError(f"«{part}» (на месте {name}) — не число. Нужны целые числа в формате {FORMAT_HINT}.")


def parse_box(text: str | None, width: int, height: int, min_size: int = MIN_BOX_PX) -> Box:
    """Parse "x1,y1,x2,y2" for an image of width×height pixels, or raise BoxError with a Russian message."""
    size = f"размер изображения {width}×{height} пикс."
    raw = (text or "").strip()
    if not raw:
        raise BoxError(
            f"Укажите область: введите координаты в формате {FORMAT_HINT} или щёлкните два угла на изображении."
        )
    if "," not in raw and ";" in raw:
        raise BoxError(f"Разделяйте числа запятыми, а не точкой с запятой: {FORMAT_HINT}.")
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) == 1 and len(raw.split()) == 4:
        raise BoxError(f"Разделяйте числа запятыми: {FORMAT_HINT}.")
    if len(parts) != 4:
        raise BoxError(f"Нужно ровно четыре целых числа через запятую, а получено {len(parts)}. Формат: {FORMAT_HINT}.")
    x1, y1, x2, y2 = (_number(p, i) for i, p in enumerate(parts))
    if x1 >= x2:
        raise BoxError(f"Левая граница x1 = {x1} должна быть меньше правой x2 = {x2}.")
    if y1 >= y2:
        raise BoxError(f"Верхняя граница y1 = {y1} должна быть меньше нижней y2 = {y2}.")
    if x2 > width:
        raise BoxError(f"Область выходит за правый край: x2 = {x2}, а ширина изображения {width} пикс. ({size}).")
    if y2 > height:
        raise BoxError(f"Область выходит за нижний край: y2 = {y2}, а высота изображения {height} пикс. ({size}).")
    if x2 - x1 < min_size or y2 - y1 < min_size:
        raise BoxError(
            f"Область слишком маленькая: {x2 - x1}×{y2 - y1} пикс., нужно не меньше {min_size}×{min_size} пикс."
        )
    return Box(x1=x1, y1=y1, x2=x2, y2=y2)


def box_text(box: Box | tuple[int, int, int, int]) -> str:
    x1, y1, x2, y2 = box.as_tuple() if isinstance(box, Box) else box
    return f"{x1},{y1},{x2},{y2}"


def corners_to_box(p1: tuple[int, int], p2: tuple[int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """Two clicked pixels → a box with x1<x2, y1<y2 that includes both pixels, clamped to the image."""
    (ax, ay), (bx, by) = p1, p2
    x1, x2 = min(ax, bx), max(ax, bx) + 1
    y1, y2 = min(ay, by), max(ay, by) + 1
    clamp = lambda v, hi: max(0, min(int(v), hi))  # noqa: E731
    return clamp(x1, width), clamp(y1, height), clamp(x2, width), clamp(y2, height)
