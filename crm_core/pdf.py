"""PDF receipts and annual giving statements, drawn with reportlab's platypus.

``receipt_pdf(contribution)`` and ``annual_statement_pdf(contact, year)``
return the bytes of a PDF; they write nothing and send nothing, so the
admin download, an email attachment and a command can share them.

Everything a visitor or a staff member typed (names, addresses, line
labels, funds) is escaped before it reaches a ``Paragraph``, whose
mini-markup would otherwise read ``<b>`` or ``&`` in a name as formatting.

Text is set in Bitstream Vera, the TrueType font that ships inside
reportlab (``reportlab/fonts``), embedded as a subset. The PDF base-14
Helvetica only covers Latin-1; Vera also has the Latin Extended-A letters
most often met in European names (Łukasz, Œ, Ž, the euro sign), needs no
font installed on the server and renders the same on every machine. Letters
it lacks (some Polish and Romanian accents, non-Latin scripts) show as
blank boxes rather than failing; a site that needs them can swap ``FONT_FILES``
for a wider TrueType font such as DejaVu Sans or Noto Sans.
"""

import functools
import io
from pathlib import Path
from xml.sax.saxutils import escape

import reportlab
from django.conf import settings
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .conf import crm_setting
from .exceptions import CRMError
from .money import format_money
from .selectors.statements import giving_statement
from .services.contributions import PAID_STATUSES

FONT = "CRMVera"
FONT_FILES = {
    FONT: "Vera.ttf",
    f"{FONT}-Bold": "VeraBd.ttf",
    f"{FONT}-Italic": "VeraIt.ttf",
    f"{FONT}-BoldItalic": "VeraBI.ttf",
}


class ReceiptNotAvailable(CRMError):
    """Only a paid contribution (completed, or refunded after payment) has a receipt."""

    status_code = 409


@functools.cache
def _register_fonts():
    folder = Path(reportlab.__file__).parent / "fonts"
    for name, filename in FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(name, str(folder / filename)))
    pdfmetrics.registerFontFamily(
        FONT,
        normal=FONT,
        bold=f"{FONT}-Bold",
        italic=f"{FONT}-Italic",
        boldItalic=f"{FONT}-BoldItalic",
    )


def _styles():
    sample = getSampleStyleSheet()
    body = ParagraphStyle("CRMBody", parent=sample["Normal"], fontName=FONT, fontSize=10)
    return {
        "body": body,
        "small": ParagraphStyle("CRMSmall", parent=body, fontSize=8.5, leading=11),
        "right": ParagraphStyle("CRMRight", parent=body, alignment=TA_RIGHT),
        "bold": ParagraphStyle("CRMBold", parent=body, fontName=f"{FONT}-Bold"),
        "bold_right": ParagraphStyle(
            "CRMBoldRight", parent=body, fontName=f"{FONT}-Bold", alignment=TA_RIGHT
        ),
        "title": ParagraphStyle(
            "CRMTitle", parent=sample["Title"], fontName=f"{FONT}-Bold", alignment=0
        ),
        "heading": ParagraphStyle("CRMHeading", parent=sample["Heading2"], fontName=f"{FONT}-Bold"),
    }


def _text(value, style):
    """A paragraph showing ``value`` literally: markup characters are escaped."""
    return Paragraph(escape(str(value)), style)


def _lines(values, style):
    """Several lines of literal text in one paragraph."""
    return Paragraph("<br/>".join(escape(str(v)) for v in values if v), style)


def _site_name():
    return getattr(settings, "WAGTAIL_SITE_NAME", "") or "CRM"


def _issuer(styles):
    return [
        _text(_site_name(), styles["title"]),
        *[_text(line, styles["small"]) for line in crm_setting("RECEIPT_ISSUER_LINES")],
        Spacer(1, 8 * mm),
    ]


def _address_lines(contact):
    address = contact.primary_address
    if address is None:
        return []
    town = " ".join(p for p in (address.postal_code, address.city) if p)
    return [
        address.street_address,
        address.supplemental_address,
        ", ".join(p for p in (town, address.region) if p),
        str(address.country.name or "") if address.country else "",
    ]


def _details_table(pairs, styles):
    table = Table(
        [[_text(label, styles["bold"]), value] for label, value in pairs],
        colWidths=[45 * mm, None],
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    return table


def _amounts_table(rows, col_widths, total_rows):
    """A listing with a header row and ``total_rows`` summary rows at the bottom."""
    table = Table(rows, colWidths=col_widths, repeatRows=1, hAlign="LEFT")
    style = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.75, colors.black),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]
    if total_rows:
        style.append(("LINEABOVE", (0, -total_rows), (-1, -total_rows), 0.75, colors.black))
        # A total's label spans every column but the amount's.
        style += [("SPAN", (0, -row), (-2, -row)) for row in range(1, total_rows + 1)]
    table.setStyle(TableStyle(style))
    return table


def _footer(text):
    def draw(canvas, doc):
        canvas.saveState()
        canvas.setFont(FONT, 8)
        # drawString shows text as it is: no markup to escape here.
        canvas.drawString(doc.leftMargin, 10 * mm, text)
        canvas.drawRightString(
            doc.pagesize[0] - doc.rightMargin,
            10 * mm,
            _("Page %(number)d") % {"number": doc.page},
        )
        canvas.restoreState()

    return draw


def _build(story, *, title, footer):
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=title,
        author=_site_name(),
        creator=_site_name(),
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        # Same input, same bytes: no creation date or random document id.
        invariant=1,
    )
    draw = _footer(footer)
    document.build(story, onFirstPage=draw, onLaterPages=draw)
    return buffer.getvalue()


def _language(contact):
    return contact.preferred_language or translation.get_language()


def _date(moment):
    return date_format(timezone.localdate(moment), "j F Y") if moment else "—"


def receipt_pdf(contribution):
    """The receipt of a paid contribution, as PDF bytes; nothing is saved or sent.

    Raises ``ReceiptNotAvailable`` for a contribution that was never paid
    (pending, failed, cancelled). Written in the contact's preferred language.
    """
    if contribution.status not in PAID_STATUSES:
        raise ReceiptNotAvailable(
            _("Only paid contributions have a receipt; this one is %(status)s.")
            % {"status": contribution.get_status_display().lower()},
            code="not_paid",
        )
    _register_fonts()
    contact = contribution.contact
    currency = contribution.currency
    with translation.override(_language(contact)):
        styles = _styles()
        details = [
            (_("Receipt number"), _text(contribution.pk, styles["body"])),
            (_("Date received"), _text(_date(contribution.received_at), styles["body"])),
            (_("Received from"), _text(contact, styles["body"])),
        ]
        address = _address_lines(contact)
        if any(address):
            details.append((_("Address"), _lines(address, styles["body"])))
        if contribution.payment_method:
            details.append(
                (
                    _("Payment method"),
                    _text(contribution.get_payment_method_display(), styles["body"]),
                )
            )
        if contribution.transaction_id:
            details.append(
                (_("Payment reference"), _text(contribution.transaction_id, styles["body"]))
            )

        rows = [
            [
                _text(_("Item"), styles["bold"]),
                _text(_("Fund"), styles["bold"]),
                _text(_("Amount"), styles["bold_right"]),
            ]
        ]
        deductible = False
        for line in contribution.line_items.select_related("financial_type").order_by("id"):
            label = line.label if line.quantity == 1 else f"{line.label} × {line.quantity}"
            fund = str(line.financial_type)
            if line.financial_type.is_deductible:
                deductible = True
                fund = _("%(fund)s (tax deductible)") % {"fund": fund}
            rows.append(
                [
                    _text(label, styles["body"]),
                    _text(fund, styles["body"]),
                    _text(format_money(line.line_total, currency), styles["right"]),
                ]
            )
        totals = [(_("Total"), contribution.total_amount)]
        if contribution.refunded_amount:
            totals += [
                (_("Refunded"), contribution.refunded_amount),
                (_("Kept"), contribution.total_amount - contribution.refunded_amount),
            ]
        for label, amount in totals:
            rows.append(
                [
                    _text(label, styles["bold"]),
                    "",
                    _text(format_money(amount, currency), styles["bold_right"]),
                ]
            )

        story = [
            *_issuer(styles),
            _text(_("Receipt"), styles["heading"]),
            _details_table(details, styles),
            Spacer(1, 6 * mm),
            _amounts_table(rows, [80 * mm, 55 * mm, 30 * mm], len(totals)),
        ]
        if deductible:
            story += [
                Spacer(1, 6 * mm),
                _text(
                    _(
                        "Gifts to funds marked tax deductible may be claimed as such; "
                        "please keep this receipt for your records."
                    ),
                    styles["small"],
                ),
            ]
        story += [Spacer(1, 6 * mm), _text(_("Thank you for your support."), styles["body"])]
        title = _("Receipt %(number)s") % {"number": contribution.pk}
        return _build(story, title=title, footer=f"{_site_name()} · {title}")


def annual_statement_pdf(contact, year):
    """The contact's giving statement for a calendar year, as PDF bytes.

    Lists every gift kept in ``year`` (see ``crm_core.selectors.statements``)
    and the total per currency. Raises ``ValueError`` for a year a date
    cannot hold.
    """
    statement = giving_statement(contact, year)
    _register_fonts()
    with translation.override(_language(contact)):
        styles = _styles()
        details = [(_("Donor"), _text(contact, styles["body"]))]
        address = _address_lines(contact)
        if any(address):
            details.append((_("Address"), _lines(address, styles["body"])))
        title = _("Giving statement %(year)s") % {"year": year}
        story = [
            *_issuer(styles),
            _text(title, styles["heading"]),
            _details_table(details, styles),
            Spacer(1, 6 * mm),
        ]
        if statement.rows:
            rows = [
                [
                    _text(_("Date"), styles["bold"]),
                    _text(_("Receipt"), styles["bold"]),
                    _text(_("What for"), styles["bold"]),
                    _text(_("Fund"), styles["bold"]),
                    _text(_("Amount"), styles["bold_right"]),
                ]
            ]
            for row in statement.rows:
                fund = row.fund
                if row.is_deductible:
                    fund = _("%(fund)s (tax deductible)") % {"fund": fund}
                rows.append(
                    [
                        _text(date_format(row.received, "j M Y"), styles["body"]),
                        _text(row.contribution_id, styles["body"]),
                        _text(row.description, styles["body"]),
                        _text(fund, styles["body"]),
                        _text(format_money(row.amount, row.currency), styles["right"]),
                    ]
                )
            for currency, total in statement.totals.items():
                rows.append(
                    [
                        _text(_("Total %(currency)s") % {"currency": currency}, styles["bold"]),
                        "",
                        "",
                        "",
                        _text(format_money(total, currency), styles["bold_right"]),
                    ]
                )
            story += [
                _amounts_table(
                    rows,
                    [25 * mm, 18 * mm, 57 * mm, 35 * mm, 30 * mm],
                    len(statement.totals),
                ),
                Spacer(1, 6 * mm),
                _text(
                    _("Amounts are what was received and kept, after any refunds."),
                    styles["small"],
                ),
            ]
        else:
            story.append(
                _text(_("No gifts were received in %(year)s.") % {"year": year}, styles["body"])
            )
        return _build(story, title=title, footer=f"{_site_name()} · {contact} · {title}")
