"""Money: currencies, amounts and the conversion to providers' minor units."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from crm_core.money import (
    ISO_4217_CODES,
    MAX_AMOUNT,
    currency_exponent,
    format_money,
    from_minor_units,
    parse_amount,
    to_minor_units,
    validate_currency,
)


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        ("12.34", "EUR", 1234),
        ("0.01", "GBP", 1),
        ("500", "JPY", 500),
        ("1000", "KRW", 1000),
        ("15000", "CLP", 15000),
        ("1.234", "KWD", 1234),
        ("0.005", "BHD", 5),
        ("10", "JOD", 10000),
    ],
)
def test_amount_converts_to_minor_units_and_back(amount, currency, units):
    assert to_minor_units(Decimal(amount), currency) == units
    assert from_minor_units(units, currency) == Decimal(amount)


@pytest.mark.parametrize(
    ("currency", "places"), [("EUR", 2), ("GBP", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3)]
)
def test_currency_exponent_knows_zero_and_three_decimal_currencies(currency, places):
    assert currency_exponent(currency) == places


def test_from_minor_units_keeps_the_currency_decimal_places():
    assert str(from_minor_units(1200, "GBP")) == "12.00"
    assert str(from_minor_units(1200, "KWD")) == "1.200"
    assert str(from_minor_units(1200, "JPY")) == "1200"


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1.5", "JPY"), ("0.1", "KRW"), ("1.2345", "KWD"), ("12.345", "GBP"), ("0.001", "EUR")],
)
def test_amount_the_currency_cannot_express_is_refused_not_rounded(amount, currency):
    with pytest.raises(ValidationError) as error:
        to_minor_units(amount, currency)
    assert error.value.code == "too_many_decimal_places"


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [("1.5", "JPY", "JPY amounts are whole numbers."),
     ("1.2345", "KWD", "KWD amounts have at most 3 decimal places.")],
)  # fmt: skip
def test_refusal_says_how_the_currency_is_written(amount, currency, message):
    with pytest.raises(ValidationError) as error:
        parse_amount(amount, currency)
    assert error.value.messages == [message]


def test_trailing_zeros_beyond_the_currency_places_are_fine():
    assert to_minor_units("500.00", "JPY") == 500
    assert parse_amount("12.500", "GBP") == Decimal("12.50")


@pytest.mark.parametrize("amount", ["-1", "-0.01", Decimal("-5")])
def test_negative_amount_is_refused(amount):
    with pytest.raises(ValidationError) as error:
        parse_amount(amount, "GBP")
    assert error.value.code == "amount_not_positive"


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-Infinity", Decimal("NaN")])
def test_not_a_number_and_infinity_are_refused(amount):
    with pytest.raises(ValidationError) as error:
        parse_amount(amount, "GBP")
    assert error.value.code == "invalid_amount"


@pytest.mark.parametrize("amount", ["1e3", "1E+2", "1_000", "1,000", "0x32", "12.50 GBP", ""])
def test_text_other_than_plain_digits_is_refused(amount):
    with pytest.raises(ValidationError) as error:
        parse_amount(amount, "GBP")
    assert error.value.code == "invalid_amount"


@pytest.mark.parametrize("amount", [" 12.5 ", "12.", ".5", "+12.50", "１２"])
def test_plain_digits_are_read_with_or_without_a_decimal_point(amount):
    assert parse_amount(amount, "GBP") == Decimal(amount.strip().replace("１２", "12"))


@pytest.mark.parametrize("amount", ["10000000000", str(10**400), MAX_AMOUNT + 1])
def test_absurd_amount_is_refused(amount):
    with pytest.raises(ValidationError) as error:
        parse_amount(amount, "GBP")
    assert error.value.code == "amount_too_large"


def test_largest_accepted_amount_is_max_amount():
    assert parse_amount(MAX_AMOUNT, "KWD") == MAX_AMOUNT


@pytest.mark.parametrize("amount", [True, False, 12.5, 0.1, None, [12], {"amount": 12}])
def test_bools_floats_and_other_types_are_refused(amount):
    # A float has already lost the exact amount (0.1 is not 0.1); text or Decimal only.
    with pytest.raises(ValidationError) as error:
        parse_amount(amount, "GBP")
    assert error.value.code == "invalid_amount"


@pytest.mark.parametrize("amount", ["abc", "", "12,50", "1.2.3", "12.50 GBP"])
def test_text_that_is_not_a_number_is_refused(amount):
    with pytest.raises(ValidationError) as error:
        parse_amount(amount, "GBP")
    assert error.value.code == "invalid_amount"


def test_zero_is_refused_unless_allowed():
    with pytest.raises(ValidationError):
        parse_amount("0", "GBP")
    assert parse_amount("0", "GBP", allow_zero=True) == Decimal("0.00")


def test_negative_zero_is_plain_zero():
    assert str(parse_amount("-0", "GBP", allow_zero=True)) == "0.00"


def test_integers_and_text_with_spaces_are_read():
    assert parse_amount(12, "GBP") == Decimal("12.00")
    assert parse_amount(" 12.50 ", "GBP") == Decimal("12.50")


@pytest.mark.parametrize("code", ["XXX", "usd1", "US", "EURO", "", "   ", "€", None, 978, ["EUR"]])
def test_unknown_currency_is_refused(code):
    with pytest.raises(ValidationError) as error:
        validate_currency(code)
    assert error.value.code == "invalid_currency"


def test_lowercase_currency_is_read_as_the_iso_code():
    # Stripe writes currencies in lower case; "usd" is unambiguous.
    assert validate_currency("usd") == "USD"
    assert validate_currency(" eur ") == "EUR"
    assert to_minor_units("1.50", "usd") == 150


def test_amount_in_an_unknown_currency_is_refused():
    with pytest.raises(ValidationError) as error:
        to_minor_units("10", "XXX")
    assert error.value.code == "invalid_currency"


@pytest.mark.parametrize("units", [-1, 1.5, "100", True, None, 10**30])
def test_from_minor_units_refuses_what_is_not_a_valid_count(units):
    with pytest.raises(ValidationError):
        from_minor_units(units, "GBP")


def test_format_money_shows_the_currency_places():
    assert format_money(Decimal("5"), "gbp") == "5.00 GBP"
    assert format_money(Decimal("500"), "JPY") == "500 JPY"


@st.composite
def valid_amounts(draw):
    currency = draw(st.sampled_from(sorted(ISO_4217_CODES)))
    places = currency_exponent(currency)
    units = draw(st.integers(min_value=0, max_value=int(MAX_AMOUNT.scaleb(places))))
    return Decimal(units).scaleb(-places), currency


@given(valid_amounts())
def test_every_valid_amount_survives_the_round_trip(amount_and_currency):
    amount, currency = amount_and_currency
    assert from_minor_units(to_minor_units(amount, currency), currency) == amount


@given(st.integers(min_value=0, max_value=int(MAX_AMOUNT)), st.sampled_from(["GBP", "JPY", "KWD"]))
def test_every_valid_unit_count_survives_the_round_trip(units, currency):
    assert to_minor_units(from_minor_units(units, currency), currency) == units
