"""Numbers as Russian text writes them, for every message either process shows."""

from __future__ import annotations

NBSP = "\u00a0"


def number(value: float, digits: int = 1) -> str:
    """1234567.25 → '1 234 567,3' (no-break spaces between thousands, a decimal comma); a trailing ',0' is dropped."""
    text = f"{value:,.{digits}f}".replace(",", NBSP).replace(".", ",")
    return text.removesuffix("," + "0" * digits) if digits else text


def megabytes(n_bytes: float) -> str:
    return f"{number(n_bytes / (1024 * 1024))} МБ"


def size(n_bytes: float) -> str:
    """A file size in Russian units: байт, КБ, МБ, ГБ."""
    if n_bytes < 1024:
        return f"{int(n_bytes)} байт"
    for unit, scale in (("КБ", 1024), ("МБ", 1024**2), ("ГБ", 1024**3)):
        if n_bytes < scale * 1024 or unit == "ГБ":
            return f"{number(n_bytes / scale)} {unit}"
    raise AssertionError  # pragma: no cover


def seconds(value: float | None) -> str:
    """1.234 → '1,2 с'; 42.4 → '42 с'; None → '—'."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} с".replace(".", ",")
    return f"{number(value, 0)} с"


def duration(value: float) -> str:
    """A rough wait: 'около 40 с', 'около 3 мин'."""
    if value < 90:
        return f"{max(1, round(value))} с"
    return f"{round(value / 60)} мин"
