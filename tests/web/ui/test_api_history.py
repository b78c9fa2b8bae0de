"""web.ui.api.parse_history: the public API's history, a JSON list of [question, answer] pairs, or a clear Russian
message."""

import json

import pytest

from common.errors import UserError
from web.ui.api import parse_history


def test_parse_history():
    assert parse_history(None) == []
    assert parse_history("") == []
    assert parse_history([]) == []
    turns = parse_history([["Что это?", "Кошка."], {"question": "А цвет?", "answer": "Рыжая."}])
    assert [(t.question, t.answer) for t in turns] == [("Что это?", "Кошка."), ("А цвет?", "Рыжая.")]
    assert len(parse_history(json.dumps([["q", "a"]]))) == 1
    for bad in ("{not json", [["only question"]], [[1, 2]], "42", {"q": "a"}):
        with pytest.raises(UserError, match="История должна быть JSON-списком пар"):
            parse_history(bad)
