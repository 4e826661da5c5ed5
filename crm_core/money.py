"""Money: a ``Decimal`` amount plus an ISO 4217 currency code.

This module is the one place that knows how many decimal places a currency
has. Payment providers charge in minor units (cents, pence, yen, fils);
``to_minor_units`` and ``from_minor_units`` convert, and refuse amounts that
a currency cannot express (1.5 yen, 1.2345 dinar) instead of rounding money
silently.
"""

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# Active ISO 4217 codes (list one, 2026). Exponent 2 unless named below.
ISO_4217_CODES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV
    BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK
    DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
    HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
    LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
    MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
    TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG
    XOF XPF YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905 - a table reads better than 180 quoted strings
)

_EXPONENTS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(),  # noqa: SIM905
        0,
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),  # noqa: SIM905
    **dict.fromkeys("CLF UYW".split(), 4),  # noqa: SIM905
}

# Largest amount accepted anywhere (a contribution, a fee, a refund). It fits
# the DECIMAL(14, 3) columns with room to sum; larger "absurd" amounts from a
# typo or an attack are refused with a message.
MAX_AMOUNT = Decimal("9999999999")


def validate_currency(code):
    """Return the upper-case ISO 4217 code, or raise ``ValidationError``."""
    if not isinstance(code, str) or code.strip().upper() not in ISO_4217_CODES:
        raise ValidationError(
            _("%(code)s is not an ISO 4217 currency code.") % {"code": str(code)[:10]},
            code="invalid_currency",
        )
    return code.strip().upper()


def currency_exponent(code):
    """Decimal places of a currency: 0 for JPY, 2 for EUR, 3 for KWD."""
    return _EXPONENTS.get(validate_currency(code), 2)


# Digits with an optional decimal point and sign ("12.50", "12.", ".5", "-3");
# any script's digits ("１２"), as Decimal reads them.
_AMOUNT_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def parse_amount(value, currency, *, allow_zero=False):
    """Read an amount (Decimal, int, or text such as "12.50") for ``currency``.

    Returns a ``Decimal`` with the currency's decimal places. Raises
    ``ValidationError`` for text that is not a number, negative amounts,
    amounts over ``MAX_AMOUNT``, and more decimal places than the currency has.
    """
    exponent = currency_exponent(currency)
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ValidationError(_("Expected an amount such as 12.50."), code="invalid_amount")
    if isinstance(value, str) and not _AMOUNT_TEXT.fullmatch(value.strip()):
        # Decimal also reads "1e3" and "1_000": nobody means 1,000 by those.
        raise ValidationError(_("Expected an amount such as 12.50."), code="invalid_amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError(
            _("Expected an amount such as 12.50."), code="invalid_amount"
        ) from None
    if not amount.is_finite():
        raise ValidationError(_("Expected an amount such as 12.50."), code="invalid_amount")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationError(_("The amount must be more than zero."), code="amount_not_positive")
    if amount > MAX_AMOUNT:
        raise ValidationError(_("The amount is too large."), code="amount_too_large")
    quantum = Decimal(1).scaleb(-exponent)
    if amount != amount.quantize(quantum):
        if exponent == 0:
            message = _("%(currency)s amounts are whole numbers.")
        else:
            message = _("%(currency)s amounts have at most %(places)d decimal places.")
        raise ValidationError(
            message % {"currency": currency.upper(), "places": exponent},
            code="too_many_decimal_places",
        )
    # copy_abs: "-0" is zero, not a negative zero stored and shown as "-0.00".
    return amount.quantize(quantum).copy_abs()


def to_minor_units(amount, currency):
    """12.34 EUR -> 1234; 500 JPY -> 500; 1.234 KWD -> 1234."""
    amount = parse_amount(amount, currency, allow_zero=True)
    return int(amount.scaleb(currency_exponent(currency)))


def from_minor_units(units, currency):
    """1234, "EUR" -> Decimal("12.34"); 500, "JPY" -> Decimal("500").

    Refuses what ``parse_amount`` refuses: negative and absurd amounts.
    """
    if isinstance(units, bool) or not isinstance(units, int):
        raise ValidationError(_("Expected a whole number of minor units."), code="invalid_amount")
    exponent = currency_exponent(currency)
    if units < 0:
        raise ValidationError(_("The amount must not be negative."), code="amount_negative")
    if units > MAX_AMOUNT.scaleb(exponent):
        raise ValidationError(_("The amount is too large."), code="amount_too_large")
    return Decimal(units).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def format_money(amount, currency):
    """Plain "12.50 EUR" for messages and exports (locale formatting is the template's).

    Never raises for a currency it does not know (it shows two places), so a
    bad row can still be displayed and corrected.
    """
    code = str(currency or "").upper()
    exponent = _EXPONENTS.get(code, 2)
    return f"{Decimal(amount).quantize(Decimal(1).scaleb(-exponent))} {code}".strip()
