"""Demo memberships, events and two years of contributions, through the services.

Part of ``manage.py crm_demo_data``: it runs after the demo contacts exist
and picks people from them with a fixed seed. Each part (memberships,
events, giving) is written once: a part whose records already exist (by
their ``source``) is skipped, so a second run writes nothing.
"""

import random
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from crm_core.models import (
    Campaign,
    Contact,
    Contribution,
    Event,
    EventFeeLevel,
    FinancialType,
    Membership,
    MembershipType,
    Participant,
    ParticipantRole,
    RelationshipType,
)
from crm_core.services import contributions, events, memberships
from crm_core.services.contacts import update_contact

SOURCE = "demo data"
SEED = 20241105

MEMBERSHIP_TYPES = [
    # slug, name, fee, unit, interval, period, fixed (start, rollover), auto-renew
    ("individual", "Individual", "30.00", "year", 1, "rolling", None, "optional"),
    ("concession", "Concession", "15.00", "year", 1, "rolling", None, "optional"),
    ("corporate", "Corporate partner", "250.00", "year", 1, "fixed", ((1, 1), (10, 1)), "no"),
    ("life", "Life member", "500.00", "lifetime", 1, "rolling", None, "no"),
]
CAMPAIGNS = [
    ("winter-appeal", "Winter appeal", "5000.00", -400, -300),
    ("garden-appeal", "Community garden appeal", "12000.00", -250, -60),
    ("roof-repair", "Roof repair fund", "30000.00", -40, 120),
]
GIFT_AMOUNTS = ["5.00", "10.00", "10.00", "20.00", "25.00", "25.00", "50.00", "100.00"]
MAJOR_GIFTS = ["250.00", "500.00", "1000.00", "2500.00"]


def _aware(day, hour=10):
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


class DemoGiving:
    def __init__(self, stdout, seed=SEED):
        self.stdout = stdout
        self.random = random.Random(seed)
        self.today = timezone.localdate()
        self.now = timezone.now()

    def load(self):
        people = list(
            Contact.objects.filter(external_id__startswith="demo-", kind="individual")
            .exclude(emails__isnull=True)
            .order_by("pk")
            .distinct()
        )
        organisations = list(
            Contact.objects.filter(external_id__startswith="demo-", kind="organization").order_by(
                "pk"
            )
        )
        if not people:
            return
        self.random.shuffle(people)
        members, attendees, donors = people[:160], people[60:260], people[120:]
        funds = {fund.slug: fund for fund in FinancialType.objects.all()}
        if not Membership.objects.filter(source=SOURCE).exists():
            with transaction.atomic():
                count = self.memberships(members, organisations, funds)
            self.stdout.write(f"Demo data: {count} memberships.")
        if not Participant.objects.filter(source=SOURCE).exists():
            with transaction.atomic():
                count = self.events(attendees, funds)
            self.stdout.write(f"Demo data: {count} event participants.")
        if not Contribution.objects.filter(source=SOURCE, line_items__kind="donation").exists():
            with transaction.atomic():
                count = self.giving(donors, funds)
            self.stdout.write(f"Demo data: {count} donations.")

    # -- memberships -----------------------------------------------------------------------

    def membership_types(self, funds):
        types = {}
        employee_of = RelationshipType.objects.filter(slug="employee-of").first()
        for slug, name, fee, unit, interval, period, fixed, auto_renew in MEMBERSHIP_TYPES:
            fields = {
                "name": name,
                "fee": Decimal(fee),
                "currency": "GBP",
                "financial_type": funds["member-dues"],
                "duration_unit": unit,
                "duration_interval": interval,
                "period_type": period,
                "auto_renew": auto_renew,
            }
            if fixed:
                (sm, sd), (rm, rd) = fixed
                fields.update(
                    fixed_period_start_month=sm,
                    fixed_period_start_day=sd,
                    fixed_period_rollover_month=rm,
                    fixed_period_rollover_day=rd,
                )
            membership_type, created = MembershipType.objects.get_or_create(
                slug=slug, defaults=fields
            )
            if created and slug == "corporate" and employee_of:
                membership_type.inherit_relationship_types.add(employee_of)
            types[slug] = membership_type
        return types

    def pay_for(self, membership, received_on, method="card"):
        """A completed contribution paying for the membership's pending first term."""
        contribution = contributions.create_pending(
            membership.contact,
            currency=membership.membership_type.currency,
            lines=[
                {
                    "kind": "membership",
                    "amount": membership.membership_type.fee,
                    "membership": membership,
                }
            ],
            payment_method=method,
            source=SOURCE,
        )
        contributions.complete(contribution, received_at=_aware(received_on), source=SOURCE)
        return contribution

    def memberships(self, members, organisations, funds):
        rnd = self.random
        types = self.membership_types(funds)
        count = 0
        for index, contact in enumerate(members):
            kind = "concession" if index % 5 == 0 else "individual"
            if index % 40 == 7:
                kind = "life"
            member_since = self.today - timedelta(days=rnd.randint(20, 2500))
            if index % 10 == 3:
                # Pay later: a bank transfer that has not arrived yet.
                membership = memberships.join(
                    contact, types[kind], pending=True, source=SOURCE, join_date=self.today
                )
                contributions.create_pending(
                    contact,
                    currency="GBP",
                    lines=[
                        {"kind": "membership", "amount": types[kind].fee, "membership": membership}
                    ],
                    payment_method="bank_transfer",
                    source=SOURCE,
                )
                count += 1
                continue
            # The current term started on an anniversary of joining, up to
            # 20 months ago: recent ones are new or current, older ones in
            # grace or expired.
            term_start = self.today - timedelta(days=rnd.choice([10, 60, 120, 200, 300, 350,
                                                                  380, 420, 600]))  # fmt: skip
            term_start = max(term_start, member_since)
            membership = memberships.join(
                contact,
                types[kind],
                join_date=min(member_since, term_start),
                start_date=term_start,
                pending=True,
                auto_renew=kind != "life" and rnd.random() < 0.2,
                source=SOURCE,
            )
            self.pay_for(membership, term_start)
            count += 1
            if index % 25 == 11:
                memberships.cancel(membership, reason="Moved away", source=SOURCE)
        # Deceased: the date rules give way to the contact's record.
        for contact in members[5:8]:
            update_contact(contact, is_deceased=True, source=SOURCE)
        for organisation in organisations[:6]:
            term_start = self.today.replace(month=1, day=1)
            membership = memberships.join(
                organisation,
                types["corporate"],
                join_date=term_start - timedelta(days=rnd.randint(0, 1500)),
                start_date=term_start,
                pending=True,
                source=SOURCE,
            )
            self.pay_for(membership, term_start, method="bank_transfer")
            count += 1
        memberships.update_membership_statuses()
        return count

    # -- events ----------------------------------------------------------------------------

    def event(self, slug, title, days, *, capacity, fees, waitlist=True, hours=2, **extra):
        starts_at = _aware(self.today + timedelta(days=days), hour=18)
        event, _ = Event.objects.get_or_create(
            slug=slug,
            defaults={
                "title": title,
                "starts_at": starts_at,
                "ends_at": starts_at + timedelta(hours=hours),
                "time_zone": "Europe/London",
                "capacity": capacity,
                "waitlist_enabled": waitlist,
                "currency": "GBP",
                "financial_type": FinancialType.objects.get(slug="event-fee"),
                **extra,
            },
        )
        levels = []
        for weight, (label, amount) in enumerate(fees):
            level, _ = EventFeeLevel.objects.get_or_create(
                event=event,
                label=label,
                defaults={"amount": Decimal(amount), "weight": weight, "is_default": weight == 0},
            )
            levels.append(level)
        return event, levels

    def register(self, event, people, level, *, when, paid=True):
        """Register each person; pay for the seats that cost money."""
        placed = []
        for person in people:
            participants = events.register(
                event,
                registered_by=person,
                attendees=[{"contact": person, "fee_level": level}],
                now=when,
                source=SOURCE,
            )
            placed.extend(participants)
            for participant in participants:
                if participant.status != "pending_payment" or not paid:
                    continue
                contribution = contributions.create_pending(
                    person,
                    currency=event.currency,
                    lines=[
                        {
                            "kind": "event_fee",
                            "amount": participant.fee_amount,
                            "participant": participant,
                        }
                    ],
                    payment_method="card",
                    source=SOURCE,
                )
                contributions.complete(contribution, received_at=when, source=SOURCE)
        return placed

    def events(self, people, funds):
        rnd = self.random
        count = 0
        speaker = ParticipantRole.objects.get(slug="speaker")
        past = [
            ("spring-plant-sale", "Spring plant sale", -220, 80, [("Free entry", "0")]),
            ("agm", "Annual general meeting", -95, 60, [("Members", "0")]),
            ("summer-fair-supper", "Summer fair supper", -130, 40,
             [("Standard", "18.00"), ("Concession", "9.00")]),
        ]  # fmt: skip
        cursor = 0
        for slug, title, days, capacity, fees in past:
            event, levels = self.event(slug, title, days, capacity=capacity, fees=fees)
            group = people[cursor : cursor + rnd.randint(20, 35)]
            cursor += len(group)
            when = event.starts_at - timedelta(days=rnd.randint(3, 20))
            placed = self.register(event, group, rnd.choice(levels), when=when)
            for participant in placed:
                participant.refresh_from_db()
                if participant.status != "registered":
                    continue
                if rnd.random() < 0.85:
                    events.check_in(participant, source=SOURCE)
                else:
                    events.mark_no_show(participant, source=SOURCE)
            count += len(placed)
        # Upcoming: a free evening that is full with a waitlist, a paid
        # dinner with some seats still unpaid, and an open workday.
        induction, levels = self.event(
            "volunteer-induction", "Volunteer induction evening", 10, capacity=12,
            fees=[("Free", "0")],
            description="Meet the team and find out how you can help.",
        )  # fmt: skip
        when = self.now - timedelta(days=5)
        count += len(self.register(induction, people[cursor : cursor + 16], levels[0], when=when))
        cursor += 16
        gala, levels = self.event(
            "autumn-gala", "Autumn gala dinner", 40, capacity=120, hours=4,
            fees=[("Standard", "45.00"), ("Concession", "25.00")],
            location="Riverside Hall",
        )  # fmt: skip
        group = people[cursor : cursor + 30]
        cursor += 30
        count += len(self.register(gala, group[:24], levels[0], when=when))
        count += len(self.register(gala, group[24:], levels[1], when=when, paid=False))
        workday, levels = self.event(
            "garden-workday", "Community garden workday", 20, capacity=None,
            fees=[("Free", "0")], waitlist=False,
        )  # fmt: skip
        placed = self.register(workday, people[cursor : cursor + 15], levels[0], when=when)
        count += len(placed)
        if people[cursor + 15 : cursor + 16]:
            count += len(
                events.register(
                    workday,
                    registered_by=people[cursor + 15],
                    attendees=[{"contact": people[cursor + 15], "role": speaker}],
                    now=when,
                    source=SOURCE,
                )
            )
        return count

    # -- giving ----------------------------------------------------------------------------

    def campaigns(self):
        found = []
        for slug, name, goal, start, end in CAMPAIGNS:
            campaign, _ = Campaign.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "goal_amount": Decimal(goal),
                    "currency": "GBP",
                    "starts_on": self.today + timedelta(days=start),
                    "ends_on": self.today + timedelta(days=end),
                },
            )
            found.append(campaign)
        return found

    def campaign_on(self, campaigns, day):
        for campaign in campaigns:
            if campaign.starts_on <= day <= campaign.ends_on and self.random.random() < 0.6:
                return campaign
        return None

    def donate(self, contact, amount, day, *, campaign=None, method="card", **extra):
        return contributions.create_pending(
            contact,
            currency="GBP",
            lines=[{"kind": "donation", "amount": Decimal(amount)}],
            campaign=campaign,
            payment_method=method,
            source=SOURCE,
            **extra,
        ), _aware(day, hour=self.random.randint(8, 21))

    def giving(self, donors, funds):
        rnd = self.random
        campaigns = self.campaigns()
        count = 0
        gifts = []
        for index, donor in enumerate(donors):
            major = index % 17 == 0
            for _ in range(rnd.randint(1, 5)):
                day = self.today - timedelta(days=rnd.randint(0, 730))
                amount = rnd.choice(MAJOR_GIFTS if major else GIFT_AMOUNTS)
                method = rnd.choice(["card", "card", "card", "cheque", "bank_transfer"])
                gifts.append((day, donor, amount, method))
        gifts.sort(key=lambda gift: gift[0])
        for number, (day, donor, amount, method) in enumerate(gifts):
            contribution, when = self.donate(
                donor, amount, day, campaign=self.campaign_on(campaigns, day), method=method
            )
            count += 1
            if number % 53 == 0 and day > self.today - timedelta(days=20):
                continue  # a recent bank transfer not yet matched: still pending
            if number % 41 == 0:
                contributions.fail(contribution, reason="Card declined", source=SOURCE)
                continue
            if method == "card":
                contributions.complete(contribution, received_at=when, source=SOURCE)
            else:
                contributions.record_offline_payment(
                    contribution, payment_method=method, received_at=when, source=SOURCE
                )
            if number % 67 == 0:
                contributions.refund(contribution, reason="Donor gave twice by mistake",
                                     source=SOURCE)  # fmt: skip
            elif number % 71 == 0 and contribution.total_amount > 5:
                contributions.refund(
                    contribution, amount=Decimal("5.00"), reason="Overpaid", source=SOURCE
                )
        # In memory of someone: soft credits to a deceased contact.
        remembered = Contact.objects.filter(is_deceased=True, external_id__startswith="demo-")
        if remembered.exists():
            honoured = remembered.first()
            for donor in donors[:8]:
                if donor.pk == honoured.pk:
                    continue
                contribution, when = self.donate(
                    donor,
                    "20.00",
                    self.today - timedelta(days=rnd.randint(5, 60)),
                    soft_credits=[{"contact": honoured, "kind": "in_memory"}],
                )
                contributions.complete(contribution, received_at=when, source=SOURCE)
                count += 1
        # Monthly donors: a standing order with one instalment per month so far.
        for donor in donors[-25:]:
            start = self.today - timedelta(days=rnd.randint(40, 600))
            recurring = contributions.create_recurring(
                donor,
                amount=Decimal(rnd.choice(["5.00", "10.00", "15.00", "25.00"])),
                currency="GBP",
                frequency_unit="month",
                financial_type=funds["donation"],
                start_date=start,
                payment_method="direct_debit",
                source=SOURCE,
            )
            day = start
            while day <= self.today:
                contribution, when = self.donate(
                    donor, recurring.amount, day, method="direct_debit", recurring=recurring
                )
                contributions.complete(contribution, received_at=when, source=SOURCE)
                count += 1
                recurring.refresh_from_db()
                if recurring.next_date is None or recurring.next_date <= day:
                    break
                day = recurring.next_date
            if rnd.random() < 0.15:
                contributions.cancel_recurring(recurring, reason="Donor asked to stop",
                                               source=SOURCE)  # fmt: skip
        return count
