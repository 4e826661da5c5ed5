"""``{{ amount|money:currency }}``: "30.00 GBP", "500 JPY", "1.500 KWD"."""

from django import template

from crm_core.money import format_money

register = template.Library()


@register.filter
def money(amount, currency):
    if amount is None or amount == "":
        return ""
    return format_money(amount, currency)
