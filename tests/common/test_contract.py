"""common.contract: the rules web and worker both enforce."""

import pytest

from common import contract
from common.errors import MediaError, UserError
from common.schemas import MediaKind, Turn


def test_check_question():
    assert contract.check_question("  Что на фото?  ", 100) == "Что на фото?"
    with pytest.raises(UserError, match="Вопрос пустой"):
        contract.check_question("   ", 100)
    with pytest.raises(UserError, match="Вопрос слишком длинный: 11 символов при ограничении 10"):
        contract.check_question("x" * 11, 10)


def test_history_is_capped_by_turns_then_by_size():
    turns = [Turn(question=f"q{i}", answer="a") for i in range(6)]
    assert [t.question for t in contract.trim_history(turns, 3, 10)] == ["q3", "q4", "q5"]
    assert contract.trim_history(turns, 0, 10) == []
    huge = "x" * (contract.HISTORY_CHARS_PER_QUESTION * 10)
    kept = contract.trim_history([Turn(question="old", answer=huge), Turn(question="new", answer="ok")], 20, 10)
    assert [t.question for t in kept] == ["new"]
    assert contract.trim_history([Turn(question="only", answer=huge * 2)], 20, 10) == []


def test_image_only_tabs():
    contract.require_image(MediaKind.image)
    with pytest.raises(MediaError) as info:
        contract.require_image(MediaKind.video)
    assert info.value.message == contract.IMAGE_ONLY


def test_the_ui_questions_are_asked_in_english_and_the_defaults_are_among_them():
    assert set(contract.DEFAULT_QUESTION.values()) <= set(contract.UI_QUESTIONS)
    assert contract.model_question("Опиши изображение") == "Describe this image in detail."
    assert contract.model_question("  опиши видео. ") == "Describe this video in detail."
    assert contract.model_question("что на изображении") == "What is shown in this image?"
    assert contract.model_question(" Сколько здесь людей? ") == "Сколько здесь людей?"
