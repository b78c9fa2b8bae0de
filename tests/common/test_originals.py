"""common.originals: the Russian history an API caller sends back is mapped to the model's own English turns."""

from __future__ import annotations

from common import events, originals
from common.schemas import Turn


def test_known_turns_come_back_as_the_models_own_and_unknown_ones_stay(redis_server):
    client = events.connect(redis_server.url)
    originals.remember(client, {"Что на картинке?": "What is in the picture?",
                                "На картинке кошка.": "The picture shows a cat.",
                                "same": "same"}, ttl_s=60)
    turns = [
        Turn(question="Что на картинке?", answer=" На картинке кошка. "),  # as shown, spaces aside
        Turn(question="What colour is it?", answer="На картинке кошка."),  # English question: seen as it is
        Turn(question="Кто это?", answer="На картинке кошка."),  # a question the web never saw
        Turn(question="Кто это?", answer="Не знаю.", original=True),  # marked by the UI: never touched
    ]
    out = originals.recall(client, turns)
    assert out[0] == Turn(question="What is in the picture?", answer="The picture shows a cat.", original=True)
    assert out[1] == Turn(question="What colour is it?", answer="The picture shows a cat.", original=True)
    assert out[2] == Turn(question="Кто это?", answer="The picture shows a cat.", original=False)
    assert out[3] == turns[3]
    assert client.ttl(originals._key("Что на картинке?")) > 0
    assert not client.exists(originals._key("same"))  # nothing to map
