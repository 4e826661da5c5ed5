"""Reference data every site starts with: status rules, roles, funds.

Sites may edit or deactivate them; the migration only creates what is missing.
"""

from django.db import migrations

STATUS_RULES = [
    # status, from, offset (unit, n), until, offset (unit, n), counts as member
    ("new", "join", ("day", 0), "join", ("month", 3), True, 10),
    ("current", "start", ("day", 0), "end", ("day", 0), True, 20),
    ("grace", "end", ("day", 1), "grace_end", ("day", 0), True, 30),
    ("expired", "grace_end", ("day", 1), "", ("day", 0), False, 40),
]

ROLES = [
    ("attendee", "Attendee", True, 10),
    ("speaker", "Speaker", True, 20),
    ("volunteer", "Volunteer", False, 30),
    ("host", "Host", False, 40),
]

FINANCIAL_TYPES = [
    ("donation", "Donation", True),
    ("member-dues", "Member dues", True),
    ("event-fee", "Event fee", False),
]


def create(apps, schema_editor):
    rule = apps.get_model("crm_core", "MembershipStatusRule")
    for status, start, (su, sn), end, (eu, en), member, weight in STATUS_RULES:
        rule.objects.get_or_create(
            status=status,
            defaults={
                "start_event": start,
                "start_offset_unit": su,
                "start_offset_interval": sn,
                "end_event": end,
                "end_offset_unit": eu,
                "end_offset_interval": en,
                "is_current_member": member,
                "weight": weight,
            },
        )
    role = apps.get_model("crm_core", "ParticipantRole")
    for slug, name, seat, weight in ROLES:
        role.objects.get_or_create(
            slug=slug, defaults={"name": name, "counts_towards_capacity": seat, "weight": weight}
        )
    fund = apps.get_model("crm_core", "FinancialType")
    for slug, name, deductible in FINANCIAL_TYPES:
        fund.objects.get_or_create(slug=slug, defaults={"name": name, "is_deductible": deductible})


class Migration(migrations.Migration):
    dependencies = [("crm_core", "0003_memberships_events_contributions")]

    operations = [  # Unapplying leaves the rows: unapplying 0003 drops their tables anyway.
        migrations.RunPython(create, migrations.RunPython.noop)
    ]
