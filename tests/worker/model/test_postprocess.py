import pytest

from worker.model.postprocess import clean_answer, clean_ocr, collapse_repeated_lines, find_cycle


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("```\nHello\nWorld\n```", "Hello\nWorld"),
        ("```text\nTotal: 5\n```", "Total: 5"),
        ("Here is the text from the image:\nSTOP\nNo parking", "STOP\nNo parking"),
        ("Sure! Here's the extracted text:\nInvoice 42", "Invoice 42"),
        ("The text in the image reads: OPEN", "OPEN"),
        ('"Welcome home"', "Welcome home"),
        ("Line one\nI hope this helps!", "Line one"),
        ("EXIT\nEXIT\nEXIT\nEXIT\nEXIT", "EXIT\nEXIT"),
        ("plain text   \n second line", "plain text\n second line"),
        ("", ""),
    ],
)
def test_clean_ocr(raw, expected):
    assert clean_ocr(raw) == expected


def test_clean_ocr_keeps_real_text_that_mentions_text():
    assert clean_ocr("Text messages cost 5 RUB") == "Text messages cost 5 RUB"


def test_find_cycle():
    assert find_cycle([1, 2, 3, 4, 5]) is None
    assert find_cycle([9, 1, 2, 1, 2, 1, 2, 1, 2]) == 2
    assert find_cycle([7] * 4) == 1
    assert find_cycle([7] * 3) is None


def test_repetition_is_collapsed():
    assert clean_answer("a cat. the cat the cat the cat the cat") == "a cat. the cat"
    assert collapse_repeated_lines("a\na\na\nb", max_repeats=1) == "a\nb"
