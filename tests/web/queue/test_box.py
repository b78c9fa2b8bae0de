"""web.queue.box: every kind of box mistake has its own Russian message; good boxes parse."""

import pytest

from common.errors import UserError
from common.schemas import Box
from web.queue.box import BoxError, box_text, corners_to_box, parse_box

W, H = 640, 480


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10,20,200,150", (10, 20, 200, 150)),
        (" 10 , 20 , 200 , 150 ", (10, 20, 200, 150)),
        ("10,20,200,150\n", (10, 20, 200, 150)),
        ("0,0,640,480", (0, 0, 640, 480)),  # the whole image
        ("+5,6,70,80", (5, 6, 70, 80)),
        ("636,476,640,480", (636, 476, 640, 480)),  # exactly the minimum size, at the corner
        ("0010,0020,0200,0150", (10, 20, 200, 150)),
    ],
)
def test_good_boxes(text, expected):
    box = parse_box(text, W, H)
    assert isinstance(box, Box)
    assert box.as_tuple() == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Укажите область"),
        ("   ", "Укажите область"),
        (None, "Укажите область"),
        ("10,20,200", "ровно четыре целых числа через запятую, а получено 3"),
        ("10,20,200,150,5", "а получено 5"),
        ("10 20 200 150", "Разделяйте числа запятыми: x1,y1,x2,y2"),
        ("10;20;200;150", "а не точкой с запятой"),
        ("10,,200,150", "Пропущено число y1"),
        ("10.5,20,200,150", "x1 = «10.5» — дробное число"),
        ("10,20,200.,150", "x2 = «200.» — дробное число"),
        ("abc,20,200,150", "«abc» (на месте x1) — не число"),
        ("10,20,2e2,150", "«2e2» (на месте x2) — не число"),
        ("１０,20,200,150", "(на месте x1) — не число"),  # full-width digits are not accepted
        ("-10,20,200,150", "не могут быть отрицательными: x1 = -10"),
        ("10,−20,200,150", "не могут быть отрицательными: y1 = −20"),  # Unicode minus
        ("200,20,10,150", "Левая граница x1 = 200 должна быть меньше правой x2 = 10"),
        ("10,20,10,150", "Левая граница x1 = 10 должна быть меньше правой x2 = 10"),
        ("10,150,200,20", "Верхняя граница y1 = 150 должна быть меньше нижней y2 = 20"),
        ("10,20,641,150",
         "за правый край: x2 = 641, а ширина изображения 640 пикс. (размер изображения 640×480 пикс.)"),
        ("700,20,800,150", "выходит за правый край: x2 = 800"),
        ("10,20,200,481",
         "выходит за нижний край: y2 = 481, а высота изображения 480 пикс. (размер изображения 640×480"),
        ("10,20,13,150", "слишком маленькая: 3×130 пикс., нужно не меньше 4×4 пикс."),
        ("10,20,200,22", "слишком маленькая: 190×2 пикс."),
    ],
)
def test_each_mistake_has_its_message(text, message):
    with pytest.raises(BoxError) as info:
        parse_box(text, W, H)
    assert message in info.value.message
    assert isinstance(info.value, UserError)


def test_messages_differ_by_kind_of_mistake():
    bad = ["", "1,2,3", "1 2 3 4", "1,,3,4", "1.5,2,30,40", "a,2,30,40", "-1,2,30,40", "30,2,10,40", "1,40,30,2",
           "1,2,700,40", "1,2,30,700", "1,2,3,40"]
    messages = set()
    for text in bad:
        with pytest.raises(BoxError) as info:
            parse_box(text, W, H)
        messages.add(info.value.message.split(":")[0].split("=")[0])
    assert len(messages) == len(bad)


def test_min_size_is_configurable():
    assert parse_box("0,0,2,2", W, H, min_size=2).as_tuple() == (0, 0, 2, 2)
    with pytest.raises(BoxError, match="не меньше 8×8"):
        parse_box("0,0,7,100", W, H, min_size=8)


def test_corners_to_box_normalises_and_includes_both_pixels():
    assert corners_to_box((200, 150), (10, 20), W, H) == (10, 20, 201, 151)
    assert corners_to_box((10, 150), (200, 20), W, H) == (10, 20, 201, 151)
    assert corners_to_box((0, 0), (W - 1, H - 1), W, H) == (0, 0, W, H)
    assert corners_to_box((-5, -5), (W + 10, H + 10), W, H) == (0, 0, W, H)
    assert box_text(corners_to_box((5, 6), (50, 60), W, H)) == "5,6,51,61"
    assert box_text(Box(x1=1, y1=2, x2=30, y2=40)) == "1,2,30,40"
