"""A mistyped CRM setting is reported by ``manage.py check``."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def test_unknown_refund_policy_fails_the_system_check(settings):
    settings.CRM = {"REFUND_MEMBERSHIP_POLICY": "delete"}
    with pytest.raises(SystemCheckError, match="REFUND_MEMBERSHIP_POLICY"):
        call_command("check")


def test_documented_refund_policies_pass_the_system_check(settings, capsys):
    settings.CRM = {"REFUND_MEMBERSHIP_POLICY": "keep", "REFUND_REGISTRATION_POLICY": "cancel"}
    call_command("check")
    assert "no issues" in capsys.readouterr().out
