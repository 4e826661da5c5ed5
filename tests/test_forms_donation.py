"""The donation form: placed on a Wagtail page, submitted by visitors, written into the core."""

import json
import re
from decimal import Decimal

import pytest
from django.core import signing
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.models import Page
from wagtail.rich_text import RichText
from wagtail.test.utils.form_data import rich_text

from crm_core.models import (
    ConsentRecord,
    Contact,
    Contribution,
    ContributionStatus,
    RecurringContribution,
)
from crm_forms.models import Submission
from crm_payments.models import Payment, PaymentBlock
from crm_wagtail.blocks import DonationFormBlock
from crm_wagtail.models import DonationPage
from tests.factories import CampaignFactory, FinancialTypeFactory
from tests.payments_fixtures import sign_webhook

pytestmark = pytest.mark.django_db

SUBMIT = "/crm/forms/submit/"
WORDING = "Yes, email me news of what my gift achieves."


def block_value(fund, **overrides):
    value = {
        "title": "Give today",
        "currency": "GBP",
        "amounts": [
            {"amount": "10", "label": "a week of tea"},
            {"amount": "25", "label": "a food parcel"},
        ],
        "allow_custom_amount": True,
        "min_amount": "5",
        "max_amount": "500",
        "financial_type": fund,
        "frequencies": ["one_off", "monthly"],
        "cover_fees_percent": "2.5",
        "payment_methods": ["offline", "stripe"],
        "consent": [{"purpose": "newsletter", "wording": WORDING, "required": False}],
        "thank_you": "<p>You are <b>wonderful</b>.</p>",
    }
    value.update(overrides)
    return value


@pytest.fixture
def fund(db):
    return FinancialTypeFactory(slug="appeal", name="Spring appeal")


@pytest.fixture
def donation_page(fund):
    parent = Page.objects.get(depth=2)
    page = DonationPage(title="Donate", slug="donate", body=[("donation_form", block_value(fund))])
    parent.add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def form_fields(client, page):
    """The hidden fields of the form as a visitor's browser would post them."""
    html = client.get(page.url).content.decode()
    fields = {}
    for name in ("placement", "token", "back"):
        marker = f'name="{name}" value="'
        start = html.index(marker) + len(marker)
        fields[name] = html[start : html.index('"', start)]
    return fields


def donate(client, page, **data):
    posted = {
        **form_fields(client, page),
        "frequency": "one_off",
        "amount": "1",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.org",
        "payment_method": "offline",
        **data,
    }
    return client.post(SUBMIT, posted, REMOTE_ADDR="203.0.113.5")


def nothing_saved():
    return (Contact.objects.count(), Contribution.objects.count(), Submission.objects.count()) == (
        0,
        0,
        0,
    )


# -- the page ---------------------------------------------------------------------------------


def test_the_page_shows_the_form_with_its_configured_amounts(client, donation_page):
    response = client.get(donation_page.url)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Give today" in html
    assert "25.00 GBP a food parcel" in html
    assert 'action="/crm/forms/submit/"' in html
    assert "Add 2.5% to cover the payment fees" in html


# -- pay later --------------------------------------------------------------------------------


def test_a_pay_later_gift_records_contact_consent_and_a_pending_contribution(
    client, donation_page, fund
):
    response = donate(client, donation_page, **{"consent_0": "on"})
    assert response.status_code == 302
    contribution = Contribution.objects.get()
    assert contribution.total_amount == Decimal("25.00")
    assert contribution.status == ContributionStatus.PENDING
    assert contribution.financial_type == fund
    assert contribution.contact.emails.get().email == "ada@example.org"
    assert Payment.objects.get().provider == "offline"
    consent = ConsentRecord.objects.get()
    assert (consent.purpose, consent.granted, consent.wording) == ("newsletter", True, WORDING)
    assert f"revision {donation_page.live_revision_id}" in consent.source_reference
    thanks = client.get(response["Location"])
    assert (
        "Your gift of 25.00 GBP is recorded and waiting for your payment."
        in thanks.content.decode()
    )
    assert "<b>wonderful</b>" in thanks.content.decode()


def test_an_unticked_consent_records_nothing(client, donation_page):
    donate(client, donation_page)
    assert not ConsentRecord.objects.exists()


def test_covering_the_fees_adds_a_second_line(client, donation_page):
    donate(client, donation_page, cover_fees="on")
    contribution = Contribution.objects.get()
    assert contribution.total_amount == Decimal("25.63")
    assert sorted(contribution.line_items.values_list("line_total", flat=True)) == [
        Decimal("0.63"),
        Decimal("25.00"),
    ]


def test_a_donor_chosen_amount_within_the_limits_is_taken(client, donation_page):
    donate(client, donation_page, amount="other", other_amount="£42.50")
    assert Contribution.objects.get().total_amount == Decimal("42.50")


def test_a_returning_donor_is_matched_by_email_and_never_renamed(client, donation_page):
    donate(client, donation_page)
    donate(client, donation_page, last_name="Byron", email="ADA@example.org")
    assert Contact.objects.count() == 1
    assert Contact.objects.get().last_name == "Lovelace"
    assert Contribution.objects.count() == 2


# -- what the server decides ------------------------------------------------------------------


def test_a_posted_price_is_ignored(client, donation_page):
    donate(client, donation_page, amount="0", price="1.00", total_amount="1.00", currency="USD")
    contribution = Contribution.objects.get()
    assert (contribution.total_amount, contribution.currency) == (Decimal("10.00"), "GBP")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"amount": "other", "other_amount": "4.99"},
            "Give an amount from 5.00 GBP to 500.00 GBP.",
        ),
        ({"amount": "other", "other_amount": "501"}, "Give an amount from 5.00 GBP to 500.00 GBP."),
        ({"amount": "other", "other_amount": "-10"}, "The amount must be more than zero."),
        ({"amount": "other", "other_amount": "12.345"}, "at most 2 decimal places"),
        ({"amount": "other", "other_amount": "ten"}, "Expected an amount such as 12.50."),
        ({"amount": "other", "other_amount": ""}, "Give the amount you would like to give."),
        ({"amount": "7"}, "Select a valid choice."),
        ({"amount": ["0", "1"], "frequency": "weekly"}, "Select a valid choice."),
        ({"email": "not-an-email"}, "Enter a valid email address."),
        ({"first_name": ""}, "This field is required."),
        ({"payment_method": "bitcoin"}, "Select a valid choice."),
        ({"frequency": "monthly"}, "Monthly and annual gifts can only be paid by card."),
    ],
)
def test_bad_input_gets_a_clear_message_and_saves_nothing(client, donation_page, data, message):
    response = donate(client, donation_page, **data)
    html = response.content.decode()
    assert response.status_code == 400
    assert "There is a problem" in html
    assert message in html
    assert 'value="Lovelace"' in html, "what the visitor typed is kept"
    assert nothing_saved()


def test_huge_unicode_and_html_values_are_refused_or_made_plain(client, donation_page):
    response = donate(client, donation_page, last_name="x" * 10_001)
    assert response.status_code == 400
    assert nothing_saved()
    response = donate(
        client, donation_page, first_name="<script>alert(1)</script>Zoë", last_name="王"
    )
    assert response.status_code == 302
    contact = Contact.objects.get()
    assert "<" not in contact.first_name and "Zoë" in contact.first_name
    assert contact.last_name == "王"


def test_a_far_too_long_value_is_refused_and_the_rest_of_what_was_typed_is_kept(
    client, donation_page
):
    response = donate(client, donation_page, first_name="x" * 10_001)
    html = response.content.decode()
    assert response.status_code == 400
    assert "First name: This is far too long." in html
    assert 'value="Lovelace"' in html and 'value="ada@example.org"' in html
    assert "x" * 101 not in html
    assert nothing_saved()


def test_a_tampered_placement_is_refused(client, donation_page):
    fields = form_fields(client, donation_page)
    page_id, revision_id, block_id = signing.loads(fields["placement"], salt="crm_forms.placement")
    forged = signing.dumps([page_id, revision_id, "another-block"], salt="not-the-salt")
    response = donate(client, donation_page, placement=forged)
    assert response.status_code == 400
    assert "out of date or was altered" in response.content.decode()
    response = donate(client, donation_page, placement="")
    assert response.status_code == 400
    assert nothing_saved()


def test_a_form_removed_from_the_page_takes_no_more_gifts(client, donation_page):
    fields = form_fields(client, donation_page)
    donation_page.body = []
    donation_page.save_revision().publish()
    response = client.post(
        SUBMIT,
        {
            **fields,
            "frequency": "one_off",
            "amount": "0",
            "first_name": "A",
            "last_name": "B",
            "email": "a@example.org",
            "payment_method": "offline",
        },
    )
    assert response.status_code == 400
    assert "no longer on the site" in response.content.decode()
    assert nothing_saved()


def test_the_amounts_of_the_revision_the_visitor_saw_are_charged(client, donation_page, fund):
    fields = form_fields(client, donation_page)
    donation_page.body[0].value["amounts"][1]["amount"] = Decimal("30")
    donation_page.save_revision().publish()
    client.post(
        SUBMIT,
        {
            **fields,
            "frequency": "one_off",
            "amount": "1",
            "first_name": "A",
            "last_name": "B",
            "email": "a@example.org",
            "payment_method": "offline",
        },
    )
    assert Contribution.objects.get().total_amount == Decimal("25.00")


def test_a_replayed_submission_lands_on_the_first_ones_thank_you_page(client, donation_page):
    fields = form_fields(client, donation_page)
    first = donate(client, donation_page, **fields)
    second = donate(client, donation_page, **fields)
    assert first["Location"] == second["Location"]
    assert Contribution.objects.count() == 1


def test_a_filled_honeypot_pretends_to_succeed_and_saves_nothing(client, donation_page):
    response = donate(client, donation_page, website="http://spam.example")
    assert response.status_code == 200
    assert "Thank you" in response.content.decode()
    assert nothing_saved()


def test_a_forged_thank_you_address_is_not_found(client, donation_page):
    donate(client, donation_page)
    response = client.get("/crm/forms/thanks/bm90LWEtcmVhbC10b2tlbg:1abc:def/")
    assert response.status_code == 404


def test_too_many_payment_starts_from_one_address_are_refused_and_blocked(
    client,
    donation_page,
    fake_stripe,
    settings,
):
    settings.CRM = {**settings.CRM, "MAX_STARTS_PER_IP": 2}
    for n in range(2):
        assert (
            donate(
                client, donation_page, payment_method="stripe", email=f"c{n}@example.org"
            ).status_code
            == 302
        )
    response = donate(client, donation_page, payment_method="stripe", email="c9@example.org")
    assert response.status_code == 429
    assert "too many payment attempts" in response.content.decode()
    assert Contribution.objects.count() == 2
    assert PaymentBlock.objects.filter(kind="ip").exists()


# -- Stripe -------------------------------------------------------------------------------------


def test_a_card_gift_goes_to_stripe_checkout_for_the_configured_amount(
    client,
    donation_page,
    fake_stripe,
):
    response = donate(client, donation_page, payment_method="stripe")
    payment = Payment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == payment.redirect_url
    assert response["Location"].startswith(fake_stripe.url)
    assert payment.amount == Decimal("25.00")
    session = fake_stripe.objects_of("checkout.session")[0]
    assert session["amount_total"] == 2500


def test_a_monthly_card_gift_sets_up_a_standing_order(client, donation_page, fake_stripe):
    donate(client, donation_page, payment_method="stripe", frequency="monthly")
    recurring = RecurringContribution.objects.get()
    assert (recurring.amount, recurring.frequency_unit) == (Decimal("25.00"), "month")
    assert Contribution.objects.get().recurring == recurring
    assert fake_stripe.objects_of("checkout.session")[0]["mode"] == "subscription"


def test_stripe_unreachable_saves_nothing_and_says_so(
    client, donation_page, stripe_settings, settings
):
    settings.CRM = {**settings.CRM, "STRIPE_API_BASE": "http://127.0.0.1:9"}
    response = donate(client, donation_page, payment_method="stripe")
    assert response.status_code == 502
    assert "There is a problem" in response.content.decode()
    assert nothing_saved()


# -- editors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"min_amount": "50", "max_amount": "10"}, "max_amount"),
        ({"amounts": [{"amount": "1000", "label": ""}]}, "amounts"),
        ({"currency": "XXY"}, "currency"),
        ({"currency": "JPY", "min_amount": "1.5"}, "min_amount"),
        ({"payment_methods": ["offline"], "frequencies": ["monthly"]}, "frequencies"),
        ({"payment_methods": []}, "payment_methods"),
        ({"frequencies": []}, "frequencies"),
        ({"amounts": [], "allow_custom_amount": False}, "amounts"),
        ({"cover_fees_percent": "50"}, "cover_fees_percent"),
        ({"title": "Give <b>today</b>"}, "title"),
        ({"amounts": [{"amount": "10", "label": "<i>a week of tea</i>"}]}, "amounts"),
        ({"consent": [{"purpose": "events", "wording": "I, <your name>, agree."}]}, "consent"),
    ],
)
def test_editors_cannot_save_settings_the_core_would_refuse(fund, overrides, field):
    block = DonationFormBlock()
    value = block.to_python(
        {**block_value(fund, **overrides), "financial_type": fund.pk, "campaign": None}
    )
    with pytest.raises(StructBlockValidationError) as info:
        block.clean(value)
    assert field in info.value.block_errors


def test_a_valid_block_saves_with_a_campaign(fund):
    block = DonationFormBlock()
    campaign = CampaignFactory()
    value = block.to_python(
        {**block_value(fund), "financial_type": fund.pk, "campaign": campaign.pk}
    )
    assert block.clean(value)["campaign"] == campaign


def test_text_that_only_looks_a_little_like_markup_is_allowed(fund):
    block = DonationFormBlock()
    value = block.to_python(
        {
            **block_value(fund, title="Give <3", amounts=[{"amount": "10", "label": "a < b"}]),
            "financial_type": fund.pk,
            "campaign": None,
        }
    )
    assert block.clean(value)["title"] == "Give <3"


def editor_post(fund, **changes):
    """The page editor's post of a donation page holding one donation form."""
    form = "body-0-value"
    data = {
        "title": "Donate",
        "slug": "donate",
        "intro": rich_text(""),
        "body-count": "1",
        "body-0-type": "donation_form",
        "body-0-deleted": "",
        "body-0-order": "0",
        "body-0-id": "7f1c5a1e-2b6c-4c1e-9a55-0d1d6c3f7a10",
        f"{form}-title": "Give today",
        f"{form}-intro": rich_text(""),
        f"{form}-currency": "GBP",
        f"{form}-amounts-count": "1",
        f"{form}-amounts-0-deleted": "",
        f"{form}-amounts-0-order": "0",
        f"{form}-amounts-0-value-amount": "10",
        f"{form}-amounts-0-value-label": "a week of tea",
        f"{form}-allow_custom_amount": "on",
        f"{form}-min_amount": "5",
        f"{form}-max_amount": "500",
        f"{form}-financial_type": str(fund.pk),
        f"{form}-frequencies": ["one_off"],
        f"{form}-payment_methods": ["offline"],
        f"{form}-consent-count": "1",
        f"{form}-consent-0-deleted": "",
        f"{form}-consent-0-order": "0",
        f"{form}-consent-0-value-purpose": "newsletter",
        f"{form}-consent-0-value-wording": WORDING,
        f"{form}-thank_you": rich_text(""),
        "action-publish": "action-publish",
    }
    data.update({f"{form}-{name}": value for name, value in changes.items()})
    return data


def test_the_page_editor_refuses_to_publish_markup_in_a_consent_and_says_why(admin_client, fund):
    url = f"/admin/pages/add/crm_wagtail/donationpage/{Page.objects.get(depth=2).pk}/"
    assert admin_client.post(url, editor_post(fund)).status_code == 302  # published as it is
    refused = editor_post(fund, **{"consent-0-value-wording": "I, <your name>, agree."})

    response = admin_client.post(url, {**refused, "slug": "donate-again"})

    assert response.status_code == 200
    assert "what looks like HTML" in response.content.decode()
    assert DonationPage.objects.count() == 1


def test_the_block_config_is_plain_json(fund):
    block = DonationFormBlock()
    value = block.to_python({**block_value(fund), "financial_type": fund.pk, "campaign": None})
    config = block.crm_config(value)
    assert json.loads(json.dumps(config)) == config


def test_a_card_gift_paid_at_checkout_is_completed_by_the_signed_webhook(
    client, donation_page, fake_stripe
):
    response = donate(client, donation_page, payment_method="stripe")
    payment = Payment.objects.get()
    fake_stripe.pay(payment.provider_id)
    for event in fake_stripe.events:
        body, header = sign_webhook(json.dumps(event))
        answer = client.post(
            "/crm/payments/stripe/webhook/",
            body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=header,
        )
        assert answer.status_code == 200
    contribution = Contribution.objects.get()
    assert contribution.status == ContributionStatus.COMPLETED
    assert response["Location"] == payment.redirect_url
    success_url = fake_stripe.objects_of("checkout.session")[0]["success_url"]
    page = client.get(success_url.replace("http://testserver", ""))
    assert "Thank you: your payment was received" in page.content.decode()


def test_only_payment_methods_the_site_has_set_up_are_offered(client, donation_page, settings):
    assert "Card (Stripe)" not in client.get(donation_page.url).content.decode()
    settings.CRM = {
        **getattr(settings, "CRM", {}),
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
    }
    assert "Card (Stripe)" in client.get(donation_page.url).content.decode()


def test_an_unpublished_page_takes_no_more_gifts(client, donation_page):
    fields = form_fields(client, donation_page)
    donation_page.unpublish()
    response = client.post(
        SUBMIT,
        {
            **fields,
            "frequency": "one_off",
            "amount": "0",
            "first_name": "A",
            "last_name": "B",
            "email": "a@example.org",
            "payment_method": "offline",
        },
    )
    assert response.status_code == 400
    assert nothing_saved()


def test_links_to_pages_in_the_thank_you_text_reach_visitors_as_addresses(
    client, donation_page, fund
):
    donation_page.body[0].value["thank_you"] = RichText(
        f'<p>Read <a linktype="page" id="{donation_page.pk}">our news</a>.</p>'
    )
    donation_page.save_revision().publish()
    response = donate(client, donation_page)
    thanks = client.get(response["Location"]).content.decode()
    assert f'<a href="{donation_page.url}">our news</a>' in thanks


# -- in honour / in memory --------------------------------------------------------------------


@pytest.fixture
def tribute_page(fund):
    parent = Page.objects.get(depth=2)
    page = DonationPage(
        title="Remember",
        slug="remember",
        body=[("donation_form", block_value(fund, allow_tribute=True, cover_fees_percent=None))],
    )
    parent.add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def test_a_gift_in_memory_soft_credits_a_new_contact_for_the_person_remembered(
    client, tribute_page
):
    assert "In memory of someone" in client.get(tribute_page.url).content.decode()
    response = donate(
        client,
        tribute_page,
        cover_fees="on",
        tribute="in_memory",
        tribute_first_name="Grace",
        tribute_last_name="Hopper",
    )
    assert response.status_code == 302
    contribution = Contribution.objects.get()
    credit = contribution.soft_credits.get()
    assert (credit.kind, credit.amount) == ("in_memory", Decimal("25.00"))
    assert (credit.contact.first_name, credit.contact.last_name) == ("Grace", "Hopper")
    assert credit.contact != contribution.contact
    assert Contact.objects.count() == 2


def test_a_dedication_without_a_name_is_refused_and_saves_nothing(client, tribute_page):
    response = donate(client, tribute_page, tribute="in_honour")
    assert response.status_code == 400
    assert "Give the name of the person." in response.content.decode()
    assert nothing_saved()


def test_no_dedication_is_offered_unless_the_editor_allows_it(client, donation_page):
    html = client.get(donation_page.url).content.decode()
    assert "In memory of someone" not in html
    donate(client, donation_page, tribute="in_memory", tribute_first_name="Posted")
    assert not Contribution.objects.get().soft_credits.exists()
    assert Contact.objects.count() == 1


# -- previews ---------------------------------------------------------------------------------


def test_a_draft_preview_shows_the_real_form_with_a_note(fund):
    draft = DonationPage(
        title="Draft appeal", slug="draft", live=False, body=[("donation_form", block_value(fund))]
    )
    Page.objects.get(depth=2).add_child(instance=draft)
    draft.save_revision()  # a draft: never published

    html = draft.make_preview_request().content.decode()

    assert "Preview: this form works once the page is published." in html
    assert "10.00 GBP a week of tea" in html
    assert 'name="email"' in html and 'name="placement"' in html


def test_a_preview_of_settings_the_block_refuses_says_they_are_incomplete(fund):
    draft = DonationPage(
        title="Draft appeal",
        slug="draft",
        live=False,
        body=[("donation_form", block_value(fund, min_amount="50", max_amount="20"))],
    )
    Page.objects.get(depth=2).add_child(instance=draft)

    html = draft.make_preview_request().content.decode()

    assert "This form&#x27;s settings are not complete yet." in html
    assert 'name="placement"' not in html


def test_each_field_error_is_the_element_its_field_is_described_by(client, donation_page):
    # Screen readers read a field's errors through aria-describedby: every id
    # it names must be on the page, and the error text inside that element.
    response = donate(
        client, donation_page, amount="other", other_amount="1e3", email="", payment_method=""
    )
    html = response.content.decode()
    assert response.status_code == 400
    described = {
        name: ids.split()
        for name, ids in re.findall(
            r'<(?:input|select|textarea)[^>]*?name="([^"]+)"[^>]*?'
            r'aria-describedby="([^"]+)"',
            html,
        )
    }
    assert {"other_amount", "email"} <= set(described)
    for ids in described.values():
        for element_id in ids:
            assert f'id="{element_id}"' in html
    assert re.search(
        r'<div id="[^"]+-other_amount_error"><p class="crm-form__error">[^<]+</p></div>', html
    )
