from decimal import Decimal

import pytest

from app.core import money
from app.core.errors import DomainError


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("1250.50", "USD", 125050), ("1250.5", "USD", 125050), ("1", "USD", 100), ("0.001", "BHD", 1),
    ("1000", "JPY", 1000), ("1000.0", "JPY", 1000), ("10000000000000", "USD", 10**15),
])
def test_exact_conversion(text, currency, minor):
    assert money.to_minor(money.parse_decimal(text), currency) == minor


@pytest.mark.parametrize(("text", "currency", "code"), [
    ("1.001", "USD", "AMOUNT_SCALE"), ("1.5", "JPY", "AMOUNT_SCALE"), ("0.0001", "BHD", "AMOUNT_SCALE"),
    ("10000000000000.01", "USD", "AMOUNT_OUT_OF_RANGE"), ("1", "XXX", "UNKNOWN_CURRENCY"),
    ("1", "XAU", "UNKNOWN_CURRENCY"), ("1", "usd", "UNKNOWN_CURRENCY"), ("1", "ZZZ", "UNKNOWN_CURRENCY"),
])
def test_refusals(text, currency, code):
    with pytest.raises(DomainError) as caught:
        money.to_minor(money.parse_decimal(text), currency)
    assert caught.value.code == code


@pytest.mark.parametrize("text", ["1e3", "1.2505E+3", " 1", "1,5", "", "abc", "01", "NaN", "Infinity", "1.", ".5"])
def test_wire_form_is_plain_decimal(text):
    with pytest.raises(DomainError) as caught:
        money.parse_decimal(text)
    assert caught.value.code == "VALIDATION"


@pytest.mark.parametrize(("text", "code"), [("0", "AMOUNT_NOT_POSITIVE"), ("-5", "AMOUNT_NOT_POSITIVE"),
                                            ("0.00", "AMOUNT_NOT_POSITIVE")])
def test_transfer_amounts_are_positive(text, code):
    with pytest.raises(DomainError) as caught:
        money.positive_minor(money.parse_decimal(text), "USD")
    assert caught.value.code == code


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (125050, "USD", "1250.50"), (5, "USD", "0.05"), (-5, "USD", "-0.05"), (0, "USD", "0.00"),
    (1000, "JPY", "1000"), (1, "BHD", "0.001"), (10**15, "USD", "10000000000000.00"),
])
def test_format(minor, currency, text):
    assert money.format_minor(minor, currency) == text
    assert Decimal(text) == Decimal(minor).scaleb(-money.currency_scale(currency))


@pytest.mark.parametrize("currency", ["USD", "JPY", "BHD", "XAU", "ZZZ", "usd"])
@pytest.mark.parametrize("text", [
    "0", "0.00", "1", "1.0", "1.00", "1.000", "1.001", "1.010", "-1", "-0", "-0.00", "0.01", "0.001", "01", "1.",
    ".5", "1e5", " 1", "1 ", "", "1000000000000000", "10000000000000.00", "10000000000000.01", "9999999999999.99",
    "1" * 30, "1" * 31, "1.000000000000000000", "0.000000000000000001", "0.0000001", "12.50", "12.500", "1\n", 5,
    None,
])
def test_integer_parse_answers_as_the_decimal_path(text, currency):
    """parse_positive_minor is positive_minor(parse_decimal(...)) without Decimal: same minor units, same refusal."""
    def outcome(parse):
        try:
            return parse()
        except DomainError as exc:
            return exc.code, exc.message

    assert outcome(lambda: money.parse_positive_minor(text, currency)) == \
        outcome(lambda: money.positive_minor(money.parse_decimal(text), currency))
