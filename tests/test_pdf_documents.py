"""PDF receipts and annual giving statements: their content, and their download in the admin.

The PDFs are read back with pypdf, so each test checks the text a donor
would read, not how it was drawn.
"""

import datetime
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from crm_core.models import Contact, FinancialType, LineItem
from crm_core.pdf import ReceiptNotAvailable, annual_statement_pdf, receipt_pdf
from crm_core.selectors.statements import giving_statement
from crm_core.services import contributions as svc
from tests.conftest import grant
from tests.factories import ContactFactory, FinancialTypeFactory, UserFactory

pytestmark = pytest.mark.django_db

CONTRIBUTION_NS = "wagtailsnippets_crm_core_contribution"
CONTACT_INSPECT = "wagtailsnippets_crm_core_contact:inspect"
ISSUER = ["12 River Walk, Kingston KT1 1AA", "Registered charity 1234567"]


def text_of(data):
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def flat(text):
    # Table cells may wrap; compare with white space folded.
    return " ".join(text.split())


def on(year, month=6, day=15):
    return timezone.make_aware(datetime.datetime(year, month, day, 12, 0))


def paid(contact, *amounts, currency="GBP", received_at=None, **extra):
    contribution = svc.create_pending(
        contact,
        currency=currency,
        lines=[{"amount": amount, "label": f"Gift of {amount}"} for amount in amounts],
        **extra,
    )
    return svc.complete(contribution, received_at=received_at or on(2025))


@pytest.fixture(autouse=True)
def _issuer(settings):
    settings.WAGTAIL_SITE_NAME = "Riverside Community Trust"
    settings.CRM = {**getattr(settings, "CRM", {}), "RECEIPT_ISSUER_LINES": ISSUER}


@pytest.fixture
def donor(db):
    return ContactFactory(
        first_name="Ada",
        last_name="Lovelace",
        addresses=[
            {
                "street_address": "3 Mill Lane",
                "city": "Oxford",
                "postal_code": "OX1 2AB",
                "country": "GB",
            }
        ],
    )


# -- receipts -------------------------------------------------------------------------------


def test_a_receipt_shows_issuer_donor_number_date_items_and_total(donor):
    contribution = svc.create_pending(
        donor,
        currency="GBP",
        lines=[
            {"amount": "12.50", "label": "Spring appeal"},
            {"amount": "5", "label": "Newsletter print run"},
        ],
        payment_method="cheque",
    )
    contribution = svc.complete(
        contribution, received_at=on(2025, 3, 7), transaction_id="CHQ-000123"
    )

    text = flat(text_of(receipt_pdf(contribution)))

    assert f"Riverside Community Trust {ISSUER[0]} {ISSUER[1]}" in text
    assert f"Receipt number {contribution.pk}" in text
    assert "Date received 7 March 2025" in text
    assert "Received from Ada Lovelace" in text
    assert "3 Mill Lane OX1 2AB Oxford United Kingdom" in text
    assert "Payment method Cheque" in text
    assert "CHQ-000123" in text
    assert "Spring appeal" in text and "12.50 GBP" in text
    assert "Newsletter print run" in text and "5.00 GBP" in text
    assert "Total 17.50 GBP" in text


def test_receipt_amounts_have_the_currency_s_own_decimal_places(donor):
    contribution = paid(donor, "1500", currency="JPY")
    text = flat(text_of(receipt_pdf(contribution)))
    assert "Total 1500 JPY" in text
    assert "1500.00" not in text and "1500.000" not in text


def test_a_partly_refunded_contribution_s_receipt_shows_the_refund_and_what_was_kept(donor):
    contribution = svc.refund(paid(donor, "40.00"), amount="15.00")
    text = flat(text_of(receipt_pdf(contribution)))
    assert "Total 40.00 GBP" in text
    assert "Refunded 15.00 GBP" in text
    assert "Kept 25.00 GBP" in text


def test_a_receipt_without_refunds_has_no_refund_lines(donor):
    text = flat(text_of(receipt_pdf(paid(donor, "40.00"))))
    assert "Refunded" not in text and "Kept" not in text


@pytest.mark.parametrize("outcome", ["pending", "failed", "cancelled"])
def test_a_contribution_never_paid_has_no_receipt(donor, outcome):
    contribution = svc.create_pending(donor, currency="GBP", lines=[{"amount": "10"}])
    if outcome == "failed":
        contribution = svc.fail(contribution, reason="Card declined")
    elif outcome == "cancelled":
        contribution = svc.cancel(contribution)
    with pytest.raises(ReceiptNotAvailable):
        receipt_pdf(contribution)


def test_the_tax_note_appears_only_for_a_deductible_fund(donor):
    deductible = FinancialTypeFactory(slug="building-fund", name="Building fund")
    FinancialType.objects.filter(pk=deductible.pk).update(is_deductible=True)
    plain = FinancialTypeFactory(slug="raffle", name="Raffle")
    FinancialType.objects.filter(pk=plain.pk).update(is_deductible=False)

    with_note = flat(text_of(receipt_pdf(paid(donor, "20", financial_type=deductible))))
    without = flat(text_of(receipt_pdf(paid(donor, "20", financial_type=plain))))

    assert "Building fund (tax deductible)" in with_note
    assert "may be claimed" in with_note
    assert "Raffle" in without
    assert "tax deductible" not in without and "may be claimed" not in without


def test_markup_in_names_and_labels_is_printed_literally(donor):
    contribution = paid(donor, "10")
    # The services strip tags on the way in; an import or an older release
    # may still have stored them, and the PDF must not read them as markup.
    Contact.objects.filter(pk=donor.pk).update(display_name="<b>Evil</b> & Co")
    LineItem.objects.filter(contribution=contribution).update(label="Tea & <i>cakes</i>")
    contribution.refresh_from_db()

    receipt = text_of(receipt_pdf(contribution))
    statement = text_of(annual_statement_pdf(Contact.objects.get(pk=donor.pk), 2025))

    for text in (receipt, statement):
        assert "<b>Evil</b> & Co" in text
    assert "Tea & <i>cakes</i>" in statement


def test_names_beyond_ascii_are_printed(db):
    contact = ContactFactory(first_name="Zoë Łukasz", last_name="Ñúñez")
    text = text_of(receipt_pdf(paid(contact, "10")))
    assert "Zoë Łukasz Ñúñez" in text


def test_the_same_receipt_downloaded_twice_is_byte_for_byte_the_same(donor):
    contribution = paid(donor, "10")
    assert receipt_pdf(contribution) == receipt_pdf(contribution)


# -- giving statements ----------------------------------------------------------------------


def test_the_statement_lists_the_year_s_kept_gifts_with_a_total_per_currency(donor):
    first = paid(donor, "10.00", received_at=on(2025, 2, 1))
    refunded_in_part = svc.refund(paid(donor, "40.00", received_at=on(2025, 5, 1)), amount="15")
    euros = paid(donor, "7.50", currency="EUR", received_at=on(2025, 9, 1))

    statement = giving_statement(donor, 2025)

    assert [(r.contribution_id, r.amount, r.currency) for r in statement.rows] == [
        (first.pk, Decimal("10.00"), "GBP"),
        (refunded_in_part.pk, Decimal("25.00"), "GBP"),
        (euros.pk, Decimal("7.50"), "EUR"),
    ]
    assert statement.rows[0].description == "Gift of 10.00"
    assert statement.rows[0].received == datetime.date(2025, 2, 1)
    assert statement.totals == {"EUR": Decimal("7.50"), "GBP": Decimal("35.00")}


def test_the_statement_leaves_out_other_years_other_contacts_and_money_not_kept(donor):
    kept = paid(donor, "11.00", received_at=on(2025))
    paid(donor, "22.00", received_at=on(2024, 12, 31))
    paid(
        donor,
        "33.00",
        received_at=on(
            2026,
            1,
            1,
        ),
    )
    paid(ContactFactory(), "44.00", received_at=on(2025))
    svc.refund(paid(donor, "55.00", received_at=on(2025)))
    svc.create_pending(donor, currency="GBP", lines=[{"amount": "66.00"}])
    svc.fail(svc.create_pending(donor, currency="GBP", lines=[{"amount": "77.00"}]), reason="x")
    svc.cancel(svc.create_pending(donor, currency="GBP", lines=[{"amount": "88.00"}]))

    statement = giving_statement(donor, 2025)
    text = flat(text_of(annual_statement_pdf(donor, 2025)))

    assert [row.contribution_id for row in statement.rows] == [kept.pk]
    assert statement.totals == {"GBP": Decimal("11.00")}
    assert "Total GBP 11.00 GBP" in text
    for amount in ("22.00", "33.00", "44.00", "55.00", "66.00", "77.00", "88.00"):
        assert amount not in text


def test_the_statement_pdf_shows_issuer_donor_rows_and_totals(donor):
    gift = paid(donor, "10.00", received_at=on(2025, 2, 1))
    paid(donor, "2.50", received_at=on(2025, 4, 1))
    paid(donor, "9", currency="EUR", received_at=on(2025, 8, 1))

    text = flat(text_of(annual_statement_pdf(donor, 2025)))

    assert f"Riverside Community Trust {ISSUER[0]} {ISSUER[1]}" in text
    assert "Giving statement 2025" in text
    assert "Donor Ada Lovelace" in text
    assert "3 Mill Lane OX1 2AB Oxford United Kingdom" in text
    assert f"1 Feb 2025 {gift.pk} Gift of 10.00" in text
    assert "Total EUR 9.00 EUR" in text
    assert "Total GBP 12.50 GBP" in text


def test_a_statement_for_a_year_without_gifts_says_so(donor):
    paid(donor, "10.00", received_at=on(2025))
    text = flat(text_of(annual_statement_pdf(donor, 2023)))
    assert "No gifts were received in 2023." in text
    assert "10.00" not in text


@pytest.mark.parametrize("year", [0, 10000, 99999, -1])
def test_a_statement_for_a_year_no_date_can_hold_is_refused(donor, year):
    with pytest.raises(ValueError):
        giving_statement(donor, year)


def test_the_statement_runs_the_same_number_of_queries_for_1_and_20_gifts(
    donor, django_assert_num_queries
):
    paid(donor, "1.00")
    with django_assert_num_queries(2):
        assert len(giving_statement(donor, 2025).rows) == 1
    donor = Contact.objects.prefetch_related("addresses").get(pk=donor.pk)
    with django_assert_num_queries(2):
        annual_statement_pdf(donor, 2025)
    for n in range(19):
        paid(donor, f"{n + 2}.00", received_at=on(2025, 1 + n % 12, 1 + n))
    with django_assert_num_queries(2):
        assert len(giving_statement(donor, 2025).rows) == 20
    with django_assert_num_queries(2):
        text = text_of(annual_statement_pdf(donor, 2025))
    assert "Total GBP 210.00 GBP" in flat(text)


# -- downloads in the admin -----------------------------------------------------------------


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def log_in_as_role(client, role):
    call_command("crm_setup_roles", stdout=io.StringIO())
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def receipt_url(pk):
    return reverse("crm_contribution_receipt_pdf", args=[pk])


def statement_url(contact_pk, year):
    return reverse("crm_giving_statement_pdf", args=[contact_pk, year])


def test_staff_who_see_contributions_download_the_receipt(client, donor):
    staff(client, "crm_core.view_contribution")
    contribution = paid(donor, "12.50")

    response = client.get(receipt_url(contribution.pk))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        f'attachment; filename="receipt-{contribution.pk}.pdf"'
    )
    assert "private" in response["Cache-Control"]
    text = flat(text_of(response.content))
    assert f"Receipt number {contribution.pk}" in text and "12.50 GBP" in text


@pytest.mark.parametrize("role", ["CRM administrator", "Fundraiser", "Read-only"])
def test_roles_that_see_contributions_download_receipts(client, donor, role):
    log_in_as_role(client, role)
    response = client.get(receipt_url(paid(donor, "10").pk))
    assert (response.status_code, response["Content-Type"]) == (200, "application/pdf")


def test_a_role_without_contributions_is_refused_receipts_and_statements(client, donor):
    log_in_as_role(client, "Event manager")
    contribution = paid(donor, "10")
    assert client.get(receipt_url(contribution.pk)).status_code == 403
    assert client.get(statement_url(donor.pk, 2025)).status_code == 403


def test_staff_without_the_view_permission_are_refused(client, donor):
    staff(client, "crm_core.view_contact")
    assert client.get(receipt_url(paid(donor, "10").pk)).status_code == 403
    assert client.get(statement_url(donor.pk, 2025)).status_code == 403


def test_an_unknown_contribution_or_contact_is_a_404(client):
    staff(client, "crm_core.view_contribution")
    assert client.get(receipt_url(999999)).status_code == 404
    assert client.get(statement_url(999999, 2025)).status_code == 404
    # Beyond what an integer column holds: still "not found", not a crash.
    assert client.get(receipt_url(2**70)).status_code == 404
    assert client.get(statement_url(2**70, 2025)).status_code == 404


def test_an_unpaid_contribution_s_receipt_sends_staff_back_with_a_message(client, donor):
    staff(client, "crm_core.view_contribution")
    contribution = svc.create_pending(donor, currency="GBP", lines=[{"amount": "10"}])

    response = client.get(receipt_url(contribution.pk))

    assert response.status_code == 302
    assert response.url == reverse(f"{CONTRIBUTION_NS}:inspect", args=[contribution.pk])
    assert [str(m).strip() for m in get_messages(response.wsgi_request)] == [
        "Only paid contributions have a receipt; this one is pending."
    ]


def test_staff_download_a_giving_statement(client, donor):
    staff(client, "crm_core.view_contribution")
    paid(donor, "12.50", received_at=on(2025))

    response = client.get(statement_url(donor.pk, 2025))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        f'attachment; filename="giving-statement-{donor.pk}-2025.pdf"'
    )
    assert "Total GBP 12.50 GBP" in flat(text_of(response.content))


@pytest.mark.parametrize("year", [0, 99999, 10000])
def test_a_statement_for_an_impossible_year_is_a_404(client, donor, year):
    staff(client, "crm_core.view_contribution")
    assert client.get(statement_url(donor.pk, year)).status_code == 404


def test_the_contribution_page_offers_the_receipt_only_once_paid(client, donor):
    staff(client, "crm_core.view_contribution")
    contribution = svc.create_pending(donor, currency="GBP", lines=[{"amount": "10"}])
    inspect = reverse(f"{CONTRIBUTION_NS}:inspect", args=[contribution.pk])

    before = client.get(inspect).content.decode()
    svc.complete(contribution)
    after = client.get(inspect).content.decode()

    assert "Download receipt (PDF)" not in before
    assert "Download receipt (PDF)" in after
    assert receipt_url(contribution.pk) in after


def test_the_contact_summary_links_this_and_last_year_s_statements(client, donor):
    staff(client, "crm_core.view_contact", "crm_core.view_contribution")
    year = timezone.localdate().year

    body = client.get(reverse(CONTACT_INSPECT, args=[donor.pk])).content.decode()

    assert f"Giving statement {year} (PDF)" in body
    assert f"Giving statement {year - 1} (PDF)" in body
    assert statement_url(donor.pk, year) in body
    assert statement_url(donor.pk, year - 1) in body


def test_the_contact_summary_hides_statements_from_staff_who_cannot_see_contributions(
    client, donor
):
    staff(client, "crm_core.view_contact")
    body = client.get(reverse(CONTACT_INSPECT, args=[donor.pk])).content.decode()
    assert "Giving statement" not in body
