"""Bulk actions on the contact, participant and contribution listings.

Each action is a Wagtail snippet bulk action (the listing's checkboxes and
action bar) that calls one ``crm_core`` service per selected row, so every
change is recorded on the contact's timeline exactly as a change made one
at a time. Each action names the permission it needs: without it the
action is not offered and its address answers 403.

Wagtail's own snippet bulk actions (its bulk delete) write around the
services; ``register()`` replaces them on the models given with a refusal.

Rows are chosen by id on the listing page. An id that is malformed, out of
range, unknown or (for contacts) in the trash is left out and counted in
the message; "select all in listing" is not offered, because Wagtail's
"all" ignores the listing's filters.
"""

import datetime

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import Prefetch, Q
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import cached_property, classproperty
from django.utils.text import slugify
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin import messages
from wagtail.admin.ui.tables import BulkActionsCheckboxColumn
from wagtail.admin.utils import get_valid_next_url_from_request
from wagtail.admin.views.bulk_action.registry import bulk_action_registry
from wagtail.admin.views.mixins import SpreadsheetExportMixin
from wagtail.admin.widgets import ListingButton
from wagtail.log_actions import log
from wagtail.snippets.bulk_actions.delete import DeleteBulkAction
from wagtail.snippets.bulk_actions.snippet_bulk_action import SnippetBulkAction
from wagtail.snippets.views import snippets

from crm_core.exceptions import CRMError
from crm_core.models import (
    Contact,
    Contribution,
    Group,
    GroupMembership,
    Participant,
    ParticipantStatus,
    Tag,
)
from crm_core.services.contacts import trash_contact, update_contact
from crm_core.services.contributions import PAID_STATUSES
from crm_core.services.events import check_in
from crm_core.services.groups import add_to_group
from crm_core.services.imports import neutralise_formula
from crm_core.services.messages import resend_receipt

SOURCE = "admin"
# Rows named one by one in a message; the rest are counted.
MAX_ROWS_NAMED = 10
# A listing page holds 50 rows; a longer (forged) selection is cut here, the
# rest counted as left out, so one request never builds an unbounded query.
MAX_SELECTED = 500


def _error_text(error):
    if isinstance(error, CRMError):
        return error.message
    return " ".join(error.messages)


def _names(rows):
    named = "; ".join(
        f"{row}: {reason}" if reason else str(row) for row, reason in rows[:MAX_ROWS_NAMED]
    )
    if len(rows) > MAX_ROWS_NAMED:
        more = len(rows) - MAX_ROWS_NAMED
        named += " " + ngettext("and %(count)d more.", "and %(count)d more.", more) % {
            "count": more
        }
    return named


class ServiceBulkAction(SnippetBulkAction):
    """A bulk action on one model that changes rows through a service.

    Subclasses give ``action_model``, ``permission`` ("app_label.codename"),
    ``question`` (shown on the confirmation page) and ``run(objects)``,
    which calls the service for each row, counts what happened in
    ``self.counts`` and collects the refused rows in ``self.problems`` as
    ``(row, reason)``; ``summary()`` turns that into the message.
    """

    action_model = None
    permission = ""
    question = ""
    submit_label = _("Continue")
    template_name = "crm_wagtail/bulk_actions/confirm.html"

    @classproperty
    def models(cls):
        return [cls.action_model] if cls.action_model else []

    @classmethod
    def allowed(cls, user):
        return bool(cls.permission) and user.has_perm(cls.permission)

    def __init__(self, request, model):
        super().__init__(request, model)
        if not get_valid_next_url_from_request(request):
            # Back to the listing, not to this action's own address.
            self.next_url = reverse(model.snippet_viewset.get_url_name("list"))
        self.counts = {}
        self.problems = []

    def get_base_queryset(self):
        return self.action_model._default_manager.all()

    @cached_property
    def selection(self):
        """``(rows found, number of selected ids left out)``."""
        low, high = (
            1,
            connection.ops.integer_field_range(self.action_model._meta.pk.get_internal_type())[1],
        )
        ids, left_out = set(), 0
        for raw in self.request.GET.getlist("id"):
            try:
                value = int(raw)
            except (TypeError, ValueError):
                left_out += 1
                continue
            if low <= value <= (high or value):
                ids.add(value)
            else:
                left_out += 1
        if len(ids) > MAX_SELECTED:
            left_out += len(ids) - MAX_SELECTED
            ids = set(sorted(ids)[:MAX_SELECTED])
        rows = list(self.get_base_queryset().filter(pk__in=ids)) if ids else []
        return rows, left_out + len(ids) - len(rows)

    def get_actionable_objects(self):
        return self.selection[0], {"items_with_no_access": []}

    def dispatch(self, request, *args, **kwargs):
        if not self.allowed(request.user):
            raise PermissionDenied
        rows, left_out = self.selection
        if not rows:
            messages.error(request, self.nothing_selected_message(left_out))
            return redirect(self.next_url)
        return super().dispatch(request, *args, **kwargs)

    def nothing_selected_message(self, left_out):
        if left_out:
            return gettext(
                "None of the selected %(things)s could be found: they may have been "
                "deleted, moved to the trash or changed meanwhile. Nothing was changed."
            ) % {"things": self.action_model._meta.verbose_name_plural}
        return gettext("Select at least one row first. Nothing was changed.")

    def left_out_message(self):
        left_out = self.selection[1]
        if not left_out:
            return ""
        return ngettext(
            "%(count)d selected row could not be found (deleted, in the trash or "
            "never there) and is left out.",
            "%(count)d selected rows could not be found (deleted, in the trash or "
            "never there) and are left out.",
            left_out,
        ) % {"count": left_out}

    def object_context(self, obj):
        # No per-row URL lookups: the page costs the same for 2 rows or 50.
        return {"item": obj, "note": self.row_note(obj)}

    def row_note(self, obj):
        return ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            action_title=self.display_name,
            question=self.question,
            left_out=self.left_out_message(),
            submit_label=self.submit_label,
            action_button_class=" ".join(sorted(self.classes)),
        )
        return context

    @classmethod
    def execute_action(cls, objects, self=None, **kwargs):
        self.run(objects)
        return len(objects), 0

    def run(self, objects):
        raise NotImplementedError

    def summary(self):
        raise NotImplementedError

    def count(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1

    def get_success_message(self, num_parent_objects, num_child_objects):
        if self.problems:
            messages.warning(
                self.request,
                ngettext(
                    "%(count)d row was not changed: %(rows)s",
                    "%(count)d rows were not changed: %(rows)s",
                    len(self.problems),
                )
                % {"count": len(self.problems), "rows": _names(self.problems)},
            )
        text = self.summary()
        if left_out := self.left_out_message():
            text = f"{text} {left_out}"
        return text


def _plural(singular, plural, count, **values):
    return ngettext(singular, plural, count) % {"count": count, **values}


# -- contacts ----------------------------------------------------------------------------


class ContactBulkAction(ServiceBulkAction):
    action_model = Contact

    def get_base_queryset(self):
        # The default manager leaves trashed contacts out.
        return Contact.objects.all()


class AddToGroupForm(forms.Form):
    group = forms.ModelChoiceField(
        label=_("Group"),
        queryset=Group.objects.filter(is_active=True).order_by("name"),
        error_messages={
            "invalid_choice": _("That group does not exist or is not active; choose another."),
            "required": _("Choose a group."),
        },
    )


class AddToGroupBulkAction(ContactBulkAction):
    """Permission ``crm_core.add_groupmembership``: the same as adding a contact
    to a group through the API (Fundraiser, Membership officer, administrator)."""

    display_name = _("Add to group")
    action_type = "crm_add_to_group"
    aria_label = _("Add the selected contacts to a group")
    action_priority = 10
    permission = "crm_core.add_groupmembership"
    form_class = AddToGroupForm
    question = _("Add these contacts to the group you choose:")
    submit_label = _("Add to group")

    def run(self, contacts):
        self.group = self.cleaned_form.cleaned_data["group"]
        for contact in contacts:
            try:
                _membership, added = add_to_group(
                    contact, self.group, actor=self.request.user, source=SOURCE
                )
            except ValidationError as error:
                self.problems.append((contact, _error_text(error)))
                continue
            self.count("added" if added else "already")

    def summary(self):
        added, already = self.counts.get("added", 0), self.counts.get("already", 0)
        text = _plural(
            "%(count)d contact added to %(group)s",
            "%(count)d contacts added to %(group)s",
            added,
            group=self.group.name,
        )
        if already:
            text += "; " + _plural(
                "%(count)d was already in it", "%(count)d were already in it", already
            )
        return text + "."


class AddTagForm(forms.Form):
    tag = forms.ModelChoiceField(
        label=_("Tag"),
        queryset=Tag.objects.order_by("name"),
        required=False,
        error_messages={"invalid_choice": _("That tag does not exist; choose another.")},
    )
    new_tag = forms.CharField(
        label=_("Or type a tag"),
        required=False,
        max_length=100,
        help_text=_("An existing tag's name, or a new tag's name."),
    )

    def __init__(self, *args, may_create=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.may_create = may_create
        if not may_create:
            self.fields["new_tag"].help_text = _("The name of an existing tag.")

    def clean(self):
        data = super().clean()
        chosen, typed = data.get("tag"), (data.get("new_tag") or "").strip()
        if self.errors:
            return data
        if chosen and typed:
            raise ValidationError(_("Choose a tag or type one, not both."))
        if not chosen and not typed:
            raise ValidationError(_("Choose a tag or type its name."))
        if typed:
            slug = slugify(typed)
            data["tag"] = Tag.objects.filter(Q(name__iexact=typed) | Q(slug=slug)).first()
            if data["tag"] is None:
                if not self.may_create:
                    self.add_error(
                        "new_tag",
                        _("There is no tag called “%(name)s”; choose one from the list.")
                        % {"name": typed},
                    )
                elif not slug:
                    self.add_error("new_tag", _("Use at least one letter or digit."))
            data["new_tag"] = typed
        return data


class AddTagBulkAction(ContactBulkAction):
    """Permission ``crm_core.change_contact`` (tags are edited with the contact);
    typing a tag that does not exist yet also needs ``crm_core.add_tag``."""

    display_name = _("Add tag")
    action_type = "crm_add_tag"
    aria_label = _("Add a tag to the selected contacts")
    action_priority = 20
    permission = "crm_core.change_contact"
    form_class = AddTagForm
    question = _("Add a tag to these contacts:")
    submit_label = _("Add tag")

    def get_base_queryset(self):
        return super().get_base_queryset().prefetch_related("tags")

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["may_create"] = self.request.user.has_perm("crm_core.add_tag")
        return kwargs

    def _tag(self):
        data = self.cleaned_form.cleaned_data
        if data["tag"] is not None:
            return data["tag"]
        tag = Tag.objects.create(name=data["new_tag"], slug=slugify(data["new_tag"]))
        # As the tag listing's "Add" would: Wagtail's history shows who made it.
        log(instance=tag, action="wagtail.create", user=self.request.user)
        return tag

    def run(self, contacts):
        self.tag = self._tag()
        for contact in contacts:
            current = list(contact.tags.all())
            if any(tag.pk == self.tag.pk for tag in current):
                self.count("already")
                continue
            try:
                update_contact(
                    contact, tags=[*current, self.tag], actor=self.request.user, source=SOURCE
                )
            except ValidationError as error:
                self.problems.append((contact, _error_text(error)))
                continue
            self.count("tagged")

    def summary(self):
        tagged, already = self.counts.get("tagged", 0), self.counts.get("already", 0)
        text = _plural(
            "%(count)d contact tagged %(tag)s",
            "%(count)d contacts tagged %(tag)s",
            tagged,
            tag=self.tag.name,
        )
        if already:
            text += "; " + _plural("%(count)d already had it", "%(count)d already had it", already)
        return text + "."


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        label=_("Format"),
        choices=[("csv", _("CSV")), ("xlsx", _("Excel (XLSX)"))],
        initial="csv",
        widget=forms.RadioSelect,
    )


def _address_text(address):
    if address is None:
        return ""
    parts = [
        address.street_address,
        address.supplemental_address,
        address.city,
        address.region,
        address.postal_code,
        str(address.country.name or ""),
    ]
    return ", ".join(part for part in parts if part)


class ExportContactsBulkAction(SpreadsheetExportMixin, ContactBulkAction):
    """Permission ``crm_core.view_contact``. Text is neutralised as the
    reports' exports do it, so a name like "=cmd|..." is never run as a
    spreadsheet formula. A fixed number of queries, whatever the selection."""

    display_name = _("Export")
    action_type = "crm_export"
    aria_label = _("Download the selected contacts as CSV or XLSX")
    action_priority = 30
    permission = "crm_core.view_contact"
    form_class = ExportForm
    question = _("Download these contacts with their emails, phones, address, tags and groups:")
    submit_label = _("Download")
    list_export = ["name", "emails", "phones", "address", "tags", "groups"]
    export_headings = {
        "name": _("Name"),
        "emails": _("Emails"),
        "phones": _("Phones"),
        "address": _("Address"),
        "tags": _("Tags"),
        "groups": _("Groups"),
    }
    response = None

    def get_base_queryset(self):
        current = GroupMembership.objects.current().select_related("group").order_by("group__name")
        return (
            super()
            .get_base_queryset()
            .prefetch_related(
                "emails",
                "phones",
                "addresses",
                "tags",
                Prefetch("group_memberships", queryset=current, to_attr="current_memberships"),
            )
        )

    def to_row_dict(self, contact):
        return {
            "name": contact.display_name,
            "emails": "; ".join(row.email for row in contact.emails.all()),
            "phones": "; ".join(str(row) for row in contact.phones.all()),
            "address": _address_text(contact.primary_address),
            "tags": "; ".join(tag.name for tag in contact.tags.all()),
            "groups": "; ".join(m.group.name for m in contact.current_memberships),
        }

    def preprocess_field_value(self, field, value, export_format):
        value = super().preprocess_field_value(field, value, export_format)
        if isinstance(value, str):
            value = neutralise_formula(value)
        return value

    def get_filename(self):
        return f"contacts-{datetime.date.today().isoformat()}"

    def run(self, contacts):
        self.response = self.as_spreadsheet(contacts, self.cleaned_form.cleaned_data["format"])

    def get_success_message(self, num_parent_objects, num_child_objects):
        return None  # the answer is the file

    def form_valid(self, form):
        response = super().form_valid(form)
        # A before_bulk_action hook may have refused: then its answer stands.
        return self.response if self.response is not None else response


class TrashContactsBulkAction(ContactBulkAction):
    """Permission ``crm_core.delete_contact`` (administrators)."""

    display_name = _("Move to trash")
    action_type = "crm_trash"
    aria_label = _("Move the selected contacts to the trash")
    action_priority = 40
    classes = {"serious"}
    permission = "crm_core.delete_contact"
    question = _(
        "Move these contacts to the trash? They disappear from lists and search, "
        "keep all their records and can be restored."
    )
    submit_label = _("Move to trash")

    def run(self, contacts):
        for contact in contacts:
            try:
                trash_contact(contact, actor=self.request.user, source=SOURCE)
            except (ValidationError, CRMError) as error:
                self.problems.append((contact, _error_text(error)))
                continue
            self.count("trashed")

    def summary(self):
        return _plural(
            "%(count)d contact moved to the trash.",
            "%(count)d contacts moved to the trash.",
            self.counts.get("trashed", 0),
        )


# -- participants ------------------------------------------------------------------------


class MarkAttendedBulkAction(ServiceBulkAction):
    """Permission ``crm_core.check_in_participant``, as the check-in page."""

    action_model = Participant
    display_name = _("Mark attended")
    action_type = "crm_mark_attended"
    aria_label = _("Mark the selected participants as attended")
    action_priority = 10
    permission = "crm_core.check_in_participant"
    question = _(
        "Mark these participants as attended? Only registered participants (and "
        "no-shows who turned up late) can be; the others are reported and left as they are."
    )
    submit_label = _("Mark attended")

    def get_base_queryset(self):
        return Participant.objects.select_related("contact", "event").order_by("pk")

    def row_note(self, participant):
        return participant.get_status_display()

    def run(self, participants):
        for participant in participants:
            if participant.status == ParticipantStatus.ATTENDED:
                self.count("already")
                continue
            try:
                check_in(participant, actor=self.request.user, source=SOURCE)
            except (CRMError, ValidationError) as error:
                self.problems.append((participant, _error_text(error)))
                continue
            self.count("attended")

    def summary(self):
        text = _plural(
            "%(count)d participant marked attended",
            "%(count)d participants marked attended",
            self.counts.get("attended", 0),
        )
        if already := self.counts.get("already", 0):
            text += "; " + _plural(
                "%(count)d had already attended", "%(count)d had already attended", already
            )
        return text + "."


# -- contributions -----------------------------------------------------------------------


class ResendReceiptBulkAction(ServiceBulkAction):
    """Permission ``crm_core.change_contribution``, as "Mark receipt sent"."""

    action_model = Contribution
    display_name = _("Resend receipt")
    action_type = "crm_resend_receipt"
    aria_label = _("Email the receipts of the selected contributions again")
    action_priority = 10
    permission = "crm_core.change_contribution"
    question = _(
        "Email the receipt of each paid contribution again? Contributions that "
        "are not paid are skipped."
    )
    submit_label = _("Resend receipts")

    def get_base_queryset(self):
        return (
            Contribution.objects.filter(contact__is_deleted=False)
            .select_related("contact")
            .order_by("pk")
        )

    def row_note(self, contribution):
        return contribution.contact.display_name

    def run(self, contributions):
        for contribution in contributions:
            label = f"{contribution.contact.display_name}, {contribution}"
            if contribution.status not in PAID_STATUSES:
                self.problems.append((label, gettext("not paid, skipped")))
            elif resend_receipt(contribution.pk, actor=self.request.user):
                self.count("sent")
            else:
                self.problems.append((label, gettext("no email address we may use, skipped")))

    def summary(self):
        return _plural(
            "%(count)d receipt sent again.",
            "%(count)d receipts sent again.",
            self.counts.get("sent", 0),
        )


SERVICE_BULK_ACTIONS = (
    AddToGroupBulkAction,
    AddTagBulkAction,
    ExportContactsBulkAction,
    TrashContactsBulkAction,
    MarkAttendedBulkAction,
    ResendReceiptBulkAction,
)


# -- the listings ------------------------------------------------------------------------


class ServiceBulkActionsIndexView(snippets.IndexView):
    """A listing whose checkboxes and action bar offer only the
    ``ServiceBulkAction``s the user may run (none: no checkboxes)."""

    @cached_property
    def service_bulk_actions(self):
        opts = self.model._meta
        actions = bulk_action_registry.get_bulk_actions_for_model(opts.app_label, opts.model_name)
        return sorted(
            (
                action
                for action in actions
                if issubclass(action, ServiceBulkAction) and action.allowed(self.request.user)
            ),
            key=lambda action: action.action_priority,
        )

    @cached_property
    def columns(self):
        columns = super().columns
        if self.service_bulk_actions:
            return columns
        return [c for c in columns if not isinstance(c, BulkActionsCheckboxColumn)]

    def get_template_names(self):
        if self.results_only:
            return super().get_template_names()
        return ["crm_wagtail/bulk_actions/index.html"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        opts = self.model._meta
        context["service_bulk_action_buttons"] = [
            ListingButton(
                action.display_name,
                reverse(
                    "wagtail_bulk_action",
                    args=[opts.app_label, opts.model_name, action.action_type],
                ),
                attrs={"aria-label": action.aria_label, "data-bulk-action-button": ""},
                priority=action.action_priority,
                classname=" ".join(action.classes | {"bulk-action-btn"}),
            )
            for action in self.service_bulk_actions
        ]
        return context


# -- Wagtail's generic bulk actions, refused ---------------------------------------------


class RefusedGenericBulkDelete(DeleteBulkAction):
    """Takes the place of Wagtail's snippet bulk delete on the models given to
    ``register()``: it would hard-delete rows around the services."""

    refused_models = ()

    @classproperty
    def models(cls):
        return list(cls.refused_models)

    def dispatch(self, request, *args, **kwargs):
        raise PermissionDenied


def is_service_bulk_action(action):
    return isinstance(action, ServiceBulkAction)


def register(service_written_models):
    """Register the actions above, and refuse Wagtail's generic bulk delete on
    ``service_written_models`` and on every model that has one of our actions."""
    refused = {*service_written_models, *(action.action_model for action in SERVICE_BULK_ACTIONS)}
    RefusedGenericBulkDelete.refused_models = tuple(
        sorted(refused, key=lambda model: model._meta.label)
    )
    for action in SERVICE_BULK_ACTIONS:
        hooks.register("register_bulk_action", action)
    # After Wagtail's own registration: the registry keeps the last class per action type.
    hooks.register("register_bulk_action", RefusedGenericBulkDelete, order=100)
