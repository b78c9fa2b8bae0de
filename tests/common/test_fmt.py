"""common.fmt: numbers in messages are written the Russian way."""

from common import fmt


def test_numbers_use_a_decimal_comma_and_thin_thousands():
    assert fmt.number(1_000_001) == "1\u00a0000\u00a0001"
    assert fmt.number(2.54) == "2,5" and fmt.number(240.0) == "240" and fmt.number(0.25) == "0,2"
    assert fmt.number(57.25, 2) == "57,25" and fmt.number(3, 0) == "3"


def test_sizes_and_seconds():
    assert fmt.size(512) == "512 байт"
    assert fmt.size(2.6 * 1024) == "2,6 КБ"
    assert fmt.megabytes(57.2 * 1024 * 1024) == "57,2 МБ"
    assert fmt.size(4.5 * 1024**3) == "4,5 ГБ"
    assert fmt.seconds(1.234) == "1,2 с" and fmt.seconds(0) == "0,0 с" and fmt.seconds(42.4) == "42 с"
    assert fmt.seconds(None) == "—"
    assert fmt.duration(40.2) == "40 с" and fmt.duration(200) == "3 мин"
