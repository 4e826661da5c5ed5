"""Load believable demo data through the services: ``manage.py crm_demo_data``.

The data is planned from a fixed seed (Faker, en_GB), so every run plans the
same contacts with the same ``external_id`` ("demo-1", "demo-2", ...). A
contact that already exists (in the trash or not) is skipped together with
everything attached to it, so a second run writes nothing and is quick.

Email addresses use example.* domains and phone numbers Ofcom's drama
ranges: nothing here can reach a real person.
"""

import random
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from io import StringIO

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from faker import Faker

from crm_core.management.demo_giving import DemoGiving
from crm_core.models import (
    ActivityStatus,
    ActivityType,
    Contact,
    CustomField,
    FieldType,
    Group,
    RelationshipType,
    Tag,
)
from crm_core.names import name_key
from crm_core.roles import EVENT_MANAGER, FUNDRAISER, MEMBERSHIP_OFFICER, READ_ONLY, ROLES
from crm_core.services.activities import log_activity
from crm_core.services.consent import record_consent
from crm_core.services.contacts import create_contact
from crm_core.services.groups import add_to_group
from crm_core.services.relationships import create_relationship

SEED = 20240617
SOURCE = "demo data"
PREFIX = "demo-"

ORGANISATIONS = 40
HOUSEHOLDS = 70
SINGLE_PEOPLE = 250

# Ofcom's ranges for drama: valid numbers that are never assigned.
DRAMA_RANGES = ["20 7946 0", "113 496 0", "117 496 0", "121 496 0", "131 496 0", "161 496 0"]
EMAIL_DOMAINS = ["example.org", "example.com", "example.net"]

GROUPS = [
    ("newsletter", "Newsletter", "Receives the monthly email newsletter."),
    ("volunteers", "Volunteers", "Active volunteers."),
    ("trustees", "Trustees", "Members of the board of trustees."),
    ("major-donors", "Major donors", "Gave £1,000 or more in a year."),
    ("members", "Members", "Paying members of the trust."),
]
TAGS = [
    ("gardening", "Gardening"),
    ("youth-club", "Youth club"),
    ("food-bank", "Food bank"),
    ("press", "Press"),
    ("legacy-prospect", "Legacy prospect"),
    ("corporate-partner", "Corporate partner"),
]
RELATIONSHIP_TYPES = [
    ("employee-of", "Employee of", "Employer of", "individual", "organization"),
    ("household-member-of", "Household member of", "Household of", "individual", "household"),
    ("head-of-household", "Head of household for", "Headed by", "individual", "household"),
]
CUSTOM_FIELDS = [
    {"name": "t_shirt_size", "label": "T-shirt size", "field_type": FieldType.CHOICE,
     "choices": ["S", "M", "L", "XL"], "applies_to": "individual", "weight": 10},
    {"name": "volunteer_skills", "label": "Volunteer skills",
     "field_type": FieldType.MULTI_CHOICE,
     "choices": ["Driving", "First aid", "Gardening", "Cooking", "IT support"],
     "applies_to": "individual", "weight": 20},
    {"name": "dietary_requirements", "label": "Dietary requirements",
     "field_type": FieldType.TEXT, "applies_to": "individual", "weight": 30},
    {"name": "gift_aid", "label": "Gift Aid declaration", "field_type": FieldType.BOOLEAN,
     "weight": 40},
    {"name": "first_gift_date", "label": "First gift", "field_type": FieldType.DATE,
     "weight": 50},
    {"name": "lifetime_giving", "label": "Lifetime giving", "field_type": FieldType.MONEY,
     "currency": "GBP", "weight": 60},
    {"name": "employee_count", "label": "Employees", "field_type": FieldType.NUMBER,
     "applies_to": "organization", "weight": 70},
]  # fmt: skip
# One login per staff role (crm_core.roles), to try the back office as each.
ROLE_USERS = [("fundraiser", FUNDRAISER), ("membership", MEMBERSHIP_OFFICER),
              ("events", EVENT_MANAGER), ("readonly", READ_ONLY)]  # fmt: skip
STAFF = [("alex.morgan", "Alex", "Morgan"), ("priya.shah", "Priya", "Shah"),
         ("sam.okafor", "Sam", "Okafor")]  # fmt: skip
NOTES = [
    "Met at the summer fair; keen to help with the community garden.",
    "Asked for information about leaving a gift in their will.",
    "Prefers to be contacted in the evenings.",
    "Moved house recently; address updated.",
    "Interested in the youth club mentoring scheme.",
]
CALLS = ["Thank-you call for donation", "Volunteer induction call", "Follow-up on event"]
TASKS = ["Send welcome pack", "Arrange site visit", "Renew Gift Aid declaration",
         "Invite to annual supporters' evening"]  # fmt: skip
VOLUNTEERING = ["Food bank shift", "Community garden", "Youth club session", "Charity shop"]
CONSENT_WORDING = {
    "newsletter": "Yes, send me the Riverside newsletter by email. I can unsubscribe at any time.",
    "fundraising": "Yes, you may contact me about supporting the trust.",
    "events": "Yes, tell me about upcoming events.",
}


@dataclass
class PlannedContact:
    """One contact to create, and what to attach to it when it is created."""

    external_id: str
    data: dict
    employer_ref: str | None = None
    employed_since: object = None
    household_ref: str | None = None
    head_of_household: bool = False
    groups: list = field(default_factory=list)
    consent: list = field(default_factory=list)
    activities: list = field(default_factory=list)


class DemoPlanner:
    """Plans the demo contacts from a fixed seed, without touching the database."""

    def __init__(self, seed=SEED):
        self.fake = Faker("en_GB")
        self.fake.seed_instance(seed)
        self.random = random.Random(seed)
        self.now = timezone.now()
        self.counter = 0
        self.plan = []

    def next_id(self):
        self.counter += 1
        return f"{PREFIX}{self.counter}"

    def days_ago(self, low, high):
        return self.now - timedelta(
            days=self.random.randint(low, high), minutes=self.random.randint(0, 1440)
        )

    def phone(self):
        return f"0{self.random.choice(DRAMA_RANGES)}{self.random.randint(0, 999):03d}"

    def address(self):
        return {
            "street_address": self.fake.street_address().replace("\n", ", "),
            "city": self.fake.city(),
            "postal_code": self.fake.postcode(),
            "country": "GB",
        }

    def email(self, *parts):
        # name_key folds accents and punctuation: "Zoë O'Brien" -> "zoe o brien".
        cleaned = (name_key(part).replace(" ", "") for part in parts)
        local = ".".join(part for part in cleaned if part)
        return f"{local}{self.random.randint(1, 99)}@{self.random.choice(EMAIL_DOMAINS)}"

    def build(self):
        organisations = [self.organisation() for _ in range(ORGANISATIONS)]
        for _ in range(HOUSEHOLDS):
            self.household(organisations)
        for _ in range(SINGLE_PEOPLE):
            self.person(organisations=organisations)
        return self.plan

    def organisation(self):
        name = self.fake.unique.company()
        planned = PlannedContact(
            self.next_id(),
            {
                "kind": "organization",
                "organization_name": name,
                "emails": [{"email": self.email("info", name.split()[0]), "location": "work"}],
                "phones": [{"number": self.phone(), "phone_type": "landline", "location": "work"}],
                "addresses": [{**self.address(), "location": "work"}],
                "tags": ["corporate-partner"] if self.random.random() < 0.3 else [],
                "custom_fields": {"employee_count": self.random.choice([4, 12, 35, 120, 800])},
            },
        )
        self.plan.append(planned)
        return planned

    def household(self, organisations):
        last_name = self.fake.last_name()
        address = self.address()
        household = PlannedContact(
            self.next_id(),
            {
                "kind": "household",
                "household_name": f"{last_name} household",
                "addresses": [address],
            },
        )
        self.plan.append(household)
        for index in range(self.random.randint(2, 4)):
            self.person(
                organisations=organisations,
                last_name=last_name,
                address=address,
                household_ref=household.external_id,
                head_of_household=index == 0,
                adult=index < 2,
            )

    def person(self, *, organisations, last_name=None, address=None, household_ref=None,
               head_of_household=False, adult=True):  # fmt: skip
        rnd = self.random
        first_name = self.fake.first_name()
        last_name = last_name or self.fake.last_name()
        age = rnd.randint(25, 85) if adult else rnd.randint(5, 17)
        birth = self.now.date() - timedelta(days=age * 365 + rnd.randint(0, 364))
        data = {
            "kind": "individual",
            "prefix": rnd.choice(["", "", "Mr", "Ms", "Mrs", "Dr"]) if adult else "",
            "first_name": first_name,
            "last_name": last_name,
            "birth_date": birth,
            "preferred_channel": rnd.choice(["", "email", "email", "post", "phone"]),
            "do_not_phone": rnd.random() < 0.1,
            "do_not_mail": rnd.random() < 0.05,
            "emails": [self.email(first_name, last_name)] if adult or rnd.random() < 0.3 else [],
            "phones": [{"number": self.phone(), "phone_type": "landline"}]
            if rnd.random() < 0.7
            else [],
            "addresses": [address or self.address()],
            "tags": rnd.sample([slug for slug, _ in TAGS[:5]], rnd.randint(0, 2)),
            "custom_fields": self.person_custom_values(adult),
        }
        planned = PlannedContact(
            self.next_id(),
            data,
            household_ref=household_ref,
            head_of_household=head_of_household,
        )
        if adult and rnd.random() < 0.35:
            employer = rnd.choice(organisations)
            planned.employer_ref = employer.external_id
            planned.employed_since = self.days_ago(200, 5000).date()
            data["job_title"] = self.fake.job()[:100]
        if adult:
            planned.groups = [slug for slug, _, _ in GROUPS if rnd.random() < self.group_odds(slug)]
            planned.consent = self.consent_history()
            planned.activities = self.activities("volunteers" in planned.groups)
        self.plan.append(planned)

    @staticmethod
    def group_odds(slug):
        return {"newsletter": 0.5, "volunteers": 0.2, "trustees": 0.03, "major-donors": 0.06,
                "members": 0.3}[slug]  # fmt: skip

    def person_custom_values(self, adult):
        rnd = self.random
        values = {}
        if rnd.random() < 0.4:
            values["t_shirt_size"] = rnd.choice(["S", "M", "L", "XL"])
        if adult and rnd.random() < 0.25:
            values["volunteer_skills"] = rnd.sample(
                ["Driving", "First aid", "Gardening", "Cooking", "IT support"], rnd.randint(1, 3)
            )
        if rnd.random() < 0.1:
            values["dietary_requirements"] = rnd.choice(["Vegetarian", "Vegan", "No nuts"])
        if adult and rnd.random() < 0.4:
            values["gift_aid"] = rnd.random() < 0.8
            values["first_gift_date"] = self.days_ago(60, 3000).date().isoformat()
            values["lifetime_giving"] = str(Decimal(rnd.randint(500, 250000)) / 100)
        return values

    def consent_history(self):
        rnd = self.random
        records = []
        for purpose, wording in CONSENT_WORDING.items():
            if rnd.random() < 0.5:
                continue
            given = self.days_ago(200, 900)
            records.append((purpose, True, wording, given))
            if rnd.random() < 0.15:  # some later change their mind
                records.append((purpose, False, "", given + timedelta(days=rnd.randint(10, 150))))
        return records

    def activities(self, volunteer):
        rnd = self.random
        planned = []
        if rnd.random() < 0.5:
            planned.append(
                {
                    "activity_type": ActivityType.NOTE,
                    "subject": "Note",
                    "details": rnd.choice(NOTES),
                    "occurred_at": self.days_ago(1, 600),
                }
            )
        if rnd.random() < 0.3:
            planned.append(
                {
                    "activity_type": ActivityType.CALL,
                    "subject": rnd.choice(CALLS),
                    "occurred_at": self.days_ago(1, 400),
                }
            )
        if rnd.random() < 0.2:
            open_task = rnd.random() < 0.5
            planned.append(
                {
                    "activity_type": ActivityType.TASK,
                    "subject": rnd.choice(TASKS),
                    "occurred_at": self.days_ago(1, 60),
                    "status": ActivityStatus.SCHEDULED if open_task else ActivityStatus.COMPLETED,
                    "due_date": (self.now + timedelta(days=rnd.randint(-10, 30))).date(),
                    "assignee": rnd.randrange(len(STAFF)),
                }
            )
        if volunteer:
            for _ in range(rnd.randint(1, 4)):
                planned.append(
                    {
                        "activity_type": ActivityType.VOLUNTEER,
                        "subject": rnd.choice(VOLUNTEERING),
                        "occurred_at": self.days_ago(1, 365),
                        "duration": timedelta(minutes=30 * rnd.randint(2, 8)),
                    }
                )
        return planned


class Command(BaseCommand):
    help = (
        "Load seeded demo contacts, households and organisations with their history, "
        "memberships, events and giving."
    )

    def handle(self, *args, **options):
        plan = DemoPlanner().build()
        definitions = self.ensure_definitions()
        # external_id -> pk of the demo contacts already in the database.
        contacts = dict(
            Contact.all_objects.filter(external_id__startswith=PREFIX).values_list(
                "external_id", "pk"
            )
        )
        created = relationships = 0
        for planned in plan:
            if planned.external_id in contacts:
                continue
            with transaction.atomic():
                contact, related = self.create(planned, contacts, definitions)
            contacts[planned.external_id] = contact.pk
            created += 1
            relationships += related
        demo_total = Contact.all_objects.filter(external_id__startswith=PREFIX).count()
        self.stdout.write(
            f"Demo data: {created} contacts created, {len(plan) - created} already there "
            f"({demo_total} demo contacts), {relationships} relationships added."
        )
        DemoGiving(self.stdout).load()
        # The per-role lines of crm_setup_roles would drown the summary: one line here.
        call_command("crm_setup_roles", stdout=StringIO())
        self.stdout.write(f"Staff roles: {len(ROLES)} groups set up (crm_setup_roles).")
        self.ensure_role_users()

    def ensure_role_users(self):
        """A user per role; the password is printed when the user is created
        (like ``demo_site``'s admin) and left alone afterwards."""
        User = get_user_model()  # noqa: N806 - a class
        for username, role in ROLE_USERS:
            user = User.objects.filter(username=username).first()
            line = f"Role login ({role}): user: {username}"
            if user is None:
                password = secrets.token_urlsafe(12)
                user = User.objects.create_user(username, password=password)
                line += f"  password: {password}"
            else:
                line += "  password: unchanged (the user already exists)"
            user.groups.add(AuthGroup.objects.get(name=role))
            self.stdout.write(line)

    def ensure_definitions(self):
        # Groups, tags, field and relationship definitions have no services:
        # they are configuration, created once by slug or name.
        groups = {}
        for slug, name, description in GROUPS:
            groups[slug], _ = Group.objects.get_or_create(
                slug=slug, defaults={"name": name, "description": description}
            )
        for slug, name in TAGS:
            Tag.objects.get_or_create(slug=slug, defaults={"name": name})
        types = {}
        for slug, a_to_b, b_to_a, kind_a, kind_b in RELATIONSHIP_TYPES:
            types[slug], _ = RelationshipType.objects.get_or_create(
                slug=slug,
                defaults={
                    "label_a_to_b": a_to_b,
                    "label_b_to_a": b_to_a,
                    "contact_kind_a": kind_a,
                    "contact_kind_b": kind_b,
                },
            )
        for definition in CUSTOM_FIELDS:
            definition = dict(definition)
            CustomField.objects.get_or_create(name=definition.pop("name"), defaults=definition)
        User = get_user_model()  # noqa: N806 - a class
        staff = []
        for username, first_name, last_name in STAFF:
            user, made = User.objects.get_or_create(
                username=username,
                defaults={"first_name": first_name, "last_name": last_name, "is_staff": True},
            )
            if made:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            staff.append(user)
        return {"groups": groups, "types": types, "staff": staff}

    def create(self, planned, contacts, definitions):
        """Create one planned contact and what hangs off it; returns (contact, relationships)."""
        data = dict(planned.data)
        employer = None
        if planned.employer_ref:
            employer = Contact.all_objects.get(pk=contacts[planned.employer_ref])
            data["employer"] = employer
        contact = create_contact(external_id=planned.external_id, source=SOURCE, actor=None, **data)
        related = 0
        if employer is not None:
            create_relationship(
                relationship_type=definitions["types"]["employee-of"],
                contact_a=contact,
                contact_b=employer,
                start_date=planned.employed_since,
                source=SOURCE,
            )
            related += 1
        if planned.household_ref:
            household = Contact.all_objects.get(pk=contacts[planned.household_ref])
            slugs = ["household-member-of"]
            if planned.head_of_household:
                slugs.append("head-of-household")
            for slug in slugs:
                create_relationship(
                    relationship_type=definitions["types"][slug],
                    contact_a=contact,
                    contact_b=household,
                    source=SOURCE,
                )
                related += 1
        for slug in planned.groups:
            add_to_group(contact, definitions["groups"][slug], source=SOURCE)
        for purpose, granted, wording, when in planned.consent:
            record_consent(
                contact,
                purpose=purpose,
                channel="email",
                granted=granted,
                wording=wording,
                source=SOURCE,
                source_reference="Paper form at the summer fair" if granted else "Phone call",
                recorded_at=when,
            )
        for activity in planned.activities:
            activity = dict(activity)
            if "assignee" in activity:
                activity["assignee"] = definitions["staff"][activity["assignee"]]
            log_activity(contact, source=SOURCE, **activity)
        return contact, related
