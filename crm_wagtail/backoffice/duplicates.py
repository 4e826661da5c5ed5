"""Data quality in the back office: the duplicates queue, side-by-side review and merge.

Staff who may merge (``crm_core.merge_contacts``, or both change and delete
on contacts) see the queue, open a pair, choose field by field which
contact's value to keep, and merge, or mark the pair "not a duplicate".
Both actions are POSTs through the services; their errors land in the form.
"""

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView
from wagtail import hooks
from wagtail.admin import messages
from wagtail.admin.ui.tables import Column, DateColumn, TitleColumn
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.permissions import register_permission_policy
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import SnippetViewSetGroup

from crm_core.exceptions import CRMError
from crm_core.models import (
    Contact,
    DuplicateRule,
    DuplicateRuleKind,
    DuplicateStatus,
    MergeRecord,
    PossibleDuplicate,
)
from crm_core.selectors.contacts import search_filter
from crm_core.services.duplicates import mark_not_duplicate
from crm_core.services.merge import KEEP, MERGE_FIELDS, REMOVE, default_side, merge_contacts

from .choosers import CRMSnippetViewSet
from .permissions import ReadOnlyPermissionPolicy
from .service_views import MAX_ID_DIGITS, NoBulkActionsIndexView, add_service_errors

SOURCE = "admin"
MERGE_PERMISSION = "crm_core.merge_contacts"
CONTACT_INSPECT = "wagtailsnippets_crm_core_contact:inspect"
# How many contacts the "merge with another contact" search lists.
MERGE_SEARCH_LIMIT = 20


def can_merge(user):
    """Merging changes one contact and trashes the other."""
    return user.has_perm(MERGE_PERMISSION) or user.has_perms(
        ["crm_core.change_contact", "crm_core.delete_contact"]
    )


class DuplicateQueuePermissionPolicy(ModelPermissionPolicy):
    """The queue is seen by those who may merge (or view it), and changed only
    through the review page: no add, edit or delete views."""

    def user_has_permission(self, user, action):
        if action != "view" or not user.is_active:
            return False
        return can_merge(user) or super().user_has_permission(user, "view")

    def user_has_any_permission(self, user, actions):
        return any(self.user_has_permission(user, action) for action in actions)

    def users_with_any_permission(self, actions):
        if "view" not in actions:
            return get_user_model().objects.none()
        return super().users_with_any_permission(["view", "change"])


def _reason_labels(pair):
    labels = dict(DuplicateRuleKind.choices)
    labels["birth_dates_differ"] = _("birth dates differ")
    return ", ".join(str(labels.get(reason, reason)) for reason in pair.reasons)


class ReviewColumn(TitleColumn):
    def get_link_url(self, instance, parent_context):
        return reverse("crm_duplicates_review", args=[instance.pk])


class PossibleDuplicateViewSet(CRMSnippetViewSet):
    model = PossibleDuplicate
    icon = "resubmit"
    menu_label = _("Possible duplicates")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = False
    index_view_class = NoBulkActionsIndexView
    list_filter = ["status"]
    list_per_page = 50
    ordering = ["-score", "-id"]
    list_display = [
        ReviewColumn(
            "pair",
            label=_("Contacts"),
            accessor=lambda pair: f"{pair.contact_a} ~ {pair.contact_b}",
        ),
        Column("score", label=_("Score")),
        Column("reasons", label=_("Why"), accessor=_reason_labels),
        Column("status", label=_("Status"), accessor="get_status_display"),
        DateColumn("created_at", label=_("Found")),
    ]

    def get_queryset(self, request):
        return PossibleDuplicate.objects.select_related("contact_a", "contact_b")


class MergeRecordViewSet(CRMSnippetViewSet):
    model = MergeRecord
    icon = "history"
    menu_label = _("Merges")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    list_display = [
        "__str__",
        Column("kept_contact", label=_("Kept contact")),
        Column("merged_by", label=_("Merged by")),
        DateColumn("merged_at", label=_("Merged")),
    ]
    inspect_view_fields = [
        "kept_contact",
        "removed_contact",
        "merged_by",
        "merged_at",
        "field_choices",
        "moved",
        "notes",
        "removed_snapshot",
    ]

    def get_queryset(self, request):
        return MergeRecord.objects.select_related("kept_contact", "merged_by")


class DuplicateRuleViewSet(CRMSnippetViewSet):
    model = DuplicateRule
    icon = "cogs"
    menu_label = _("Duplicate rules")
    add_to_reference_index = False
    copy_view_enabled = False
    list_display = ["__str__", "is_active", "score", "name_similarity", "address_similarity"]
    form_fields = ["kind", "is_active", "score", "name_similarity", "address_similarity"]


class DataQualityViewSetGroup(SnippetViewSetGroup):
    menu_label = _("Data quality")
    menu_icon = "resubmit"
    menu_order = 170
    items = (PossibleDuplicateViewSet, MergeRecordViewSet, DuplicateRuleViewSet)


# -- review and merge ------------------------------------------------------------------------


def _display(value):
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    return str(value)


class MergeForm(forms.Form):
    """Which contact stays, and for each field that differs whose value it gets."""

    keep = forms.ChoiceField(
        label=_("Keep"), choices=[("a", "a"), ("b", "b")], widget=forms.RadioSelect
    )

    def __init__(self, *args, rows, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = rows
        for row in rows:
            if row["differs"]:
                self.fields[row["name"]] = forms.ChoiceField(
                    label=row["label"],
                    choices=[("a", row["a"] or "-"), ("b", row["b"] or "-")],
                    widget=forms.RadioSelect,
                    initial=row["initial"],
                )

    def field_choices(self):
        keep = self.cleaned_data["keep"]
        return {
            row["name"]: KEEP if self.cleaned_data[row["name"]] == keep else REMOVE
            for row in self.rows
            if row["differs"]
        }


class MergeReviewBase(WagtailAdminTemplateMixin, TemplateView):
    """Two contacts side by side, and the merge form (POST merges).

    Subclasses set ``contact_a_id`` and ``contact_b_id`` in ``dispatch``
    (after checking ``can_merge``) and say where to go afterwards.
    """

    template_name = "crm_wagtail/duplicates/review.html"
    header_icon = "resubmit"
    pair = None
    back_label = _("Back to the queue")

    @property
    def index_url(self):
        return reverse(PossibleDuplicateViewSet().get_url_name("list"))

    @property
    def back_url(self):
        return self.index_url

    def get_page_subtitle(self):
        a, b = self.contacts
        return f"{a} ~ {b}"

    def get_breadcrumbs_items(self):
        # Without these the admin header shows "Home" instead of the page.
        return [
            *self.breadcrumbs_items,
            {
                "url": self.index_url,
                "label": PossibleDuplicate._meta.verbose_name_plural.capitalize(),
            },
            {"url": "", "label": self.get_page_title()},
        ]

    @property
    def is_open(self):
        return True

    @cached_property
    def contacts(self):
        found = Contact.all_objects.with_details().in_bulk([self.contact_a_id, self.contact_b_id])
        return found[self.contact_a_id], found[self.contact_b_id]

    @cached_property
    def rows(self):
        a, b = self.contacts
        rows = []
        for name in MERGE_FIELDS:
            model_field = Contact._meta.get_field(name)
            value_a, value_b = getattr(a, name), getattr(b, name)
            if model_field.choices:
                value_a = getattr(a, f"get_{name}_display")() if value_a else value_a
                value_b = getattr(b, f"get_{name}_display")() if value_b else value_b
            rows.append(
                {
                    "name": name,
                    "label": model_field.verbose_name,
                    "a": _display(value_a),
                    "b": _display(value_b),
                    "differs": getattr(a, name) != getattr(b, name),
                    # The form keeps contact a unless staff choose b.
                    "initial": "a" if default_side(a, b, name) == KEEP else "b",
                }
            )
        custom_a = {v.field.name: v for v in a.custom_values.all()}
        custom_b = {v.field.name: v for v in b.custom_values.all()}
        for name in sorted(set(custom_a) | set(custom_b)):
            one, other = custom_a.get(name), custom_b.get(name)
            field = (one or other).field
            rows.append(
                {
                    "name": f"custom:{name}",
                    "label": field.label,
                    "a": _display(one.value if one else None),
                    "b": _display(other.value if other else None),
                    "differs": bool(one and other and one.value != other.value),
                    "initial": "a",
                }
            )
        return rows

    def lists(self):
        a, b = self.contacts
        return [
            (
                gettext("Email addresses"),
                [str(e) for e in a.emails.all()],
                [str(e) for e in b.emails.all()],
            ),
            (
                gettext("Phone numbers"),
                [str(p) for p in a.phones.all()],
                [str(p) for p in b.phones.all()],
            ),
            (
                gettext("Addresses"),
                [str(x) for x in a.addresses.all()],
                [str(x) for x in b.addresses.all()],
            ),
            (gettext("Tags"), [str(t) for t in a.tags.all()], [str(t) for t in b.tags.all()]),
        ]

    def get_form(self):
        data = self.request.POST if self.request.method == "POST" else None
        return MergeForm(data, rows=self.rows, initial={"keep": "a"})

    def get_context_data(self, form=None, **kwargs):
        context = super().get_context_data(**kwargs)
        a, b = self.contacts
        form = form or self.get_form()
        context.update(
            pair=self.pair,
            contact_a=a,
            contact_b=b,
            form=form,
            field_rows=[(row, form[row["name"]] if row["differs"] else None) for row in self.rows],
            list_rows=self.lists(),
            is_open=self.is_open,
            back_url=self.back_url,
            back_label=self.back_label,
        )
        return context

    def get_success_url(self, kept):
        return self.index_url

    def merge(self, request):
        form = self.get_form()
        if not self.is_open:
            form.is_valid()
            form.add_error(None, gettext("This pair has been decided already."))
        elif form.is_valid():
            a, b = self.contacts
            keep, remove = (a, b) if form.cleaned_data["keep"] == "a" else (b, a)
            try:
                merge_contacts(
                    keep,
                    remove,
                    field_choices=form.field_choices(),
                    actor=request.user,
                    source=SOURCE,
                )
            except ValidationError as error:
                add_service_errors(form, error)
            except CRMError as error:
                form.add_error(None, error.message)
            else:
                messages.success(
                    request,
                    gettext("%(removed)s was merged into %(kept)s.")
                    % {"removed": remove, "kept": keep},
                )
                return redirect(self.get_success_url(keep))
        return self.render_to_response(self.get_context_data(form=form), status=200)


class ReviewView(MergeReviewBase):
    """A pair from the queue: GET shows it; POST merges or marks "not a duplicate"."""

    page_title = _("Review possible duplicate")

    def dispatch(self, request, pk):
        if not can_merge(request.user):
            raise PermissionDenied
        self.pair = get_object_or_404(
            PossibleDuplicate.objects.select_related("contact_a", "contact_b"), pk=pk
        )
        self.contact_a_id, self.contact_b_id = self.pair.contact_a_id, self.pair.contact_b_id
        return super().dispatch(request, pk=pk)

    @property
    def is_open(self):
        return self.pair.status == DuplicateStatus.OPEN

    def post(self, request, pk):
        if request.POST.get("action") == "not_duplicate":
            try:
                mark_not_duplicate(self.pair, actor=request.user)
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
            else:
                messages.success(request, gettext("Marked as not a duplicate."))
            return redirect(self.index_url)
        return self.merge(request)


def _contact_or_none(pk):
    """The contact with id ``pk``, trashed ones included; None for an unknown id."""
    if len(str(pk)) > MAX_ID_DIGITS:
        return None
    return Contact.all_objects.filter(pk=pk).first()


class MergeContactsView(MergeReviewBase):
    """Any two contacts side by side, chosen by staff from a contact's summary.

    No ``PossibleDuplicate`` row is needed; the merge closes one if there is.
    The contact staff started from is on the left and kept unless they choose
    otherwise. Merging the same contact twice, a trashed or an unknown
    contact sends staff back with a message saying so.
    """

    page_title = _("Merge contacts")
    back_label = _("Back to the contact")

    def dispatch(self, request, pk, other_pk):
        if not can_merge(request.user):
            raise PermissionDenied
        contact = _contact_or_none(pk)
        if contact is None or contact.is_deleted:
            raise Http404
        choose_url = reverse("crm_contact_merge", args=[pk])
        other = _contact_or_none(other_pk)
        problem = None
        if other_pk == pk:
            problem = gettext("A contact cannot be merged with itself; choose another contact.")
        elif other is None:
            problem = gettext("There is no contact with id %(id)s.") % {"id": other_pk}
        elif other.is_deleted:
            problem = gettext("%(name)s is in the trash; restore it before merging.") % {
                "name": other
            }
        if problem:
            messages.error(request, problem)
            return redirect(choose_url)
        self.contact_a_id, self.contact_b_id = pk, other_pk
        return super().dispatch(request, pk=pk, other_pk=other_pk)

    @property
    def back_url(self):
        return reverse(CONTACT_INSPECT, args=[self.contact_a_id])

    def get_success_url(self, kept):
        return reverse(CONTACT_INSPECT, args=[kept.pk])

    def post(self, request, pk, other_pk):
        return self.merge(request)


class ChooseContactToMergeView(WagtailAdminTemplateMixin, TemplateView):
    """Search for the contact to merge with this one; each match links to the
    side-by-side merge screen (``MergeContactsView``). Works without script."""

    template_name = "crm_wagtail/duplicates/choose.html"
    page_title = _("Merge with another contact")
    header_icon = "resubmit"

    def dispatch(self, request, pk):
        if not can_merge(request.user):
            raise PermissionDenied
        self.contact = _contact_or_none(pk)
        if self.contact is None or self.contact.is_deleted:
            raise Http404
        return super().dispatch(request, pk=pk)

    def get_page_subtitle(self):
        return str(self.contact)

    def matches(self, query):
        # Live contacts of the same kind: the merge refuses any other.
        candidates = (
            Contact.objects.filter(kind=self.contact.kind)
            .exclude(pk=self.contact.pk)
            .prefetch_related("emails")
        )
        found = []
        if query.isascii() and query.isdigit() and len(query) <= MAX_ID_DIGITS:
            found = list(candidates.filter(pk=int(query)))
        named = search_filter(candidates, query).order_by("sort_name", "pk")
        found += [c for c in named[:MERGE_SEARCH_LIMIT] if c not in found]
        return [
            (c, reverse("crm_contact_merge_review", args=[self.contact.pk, c.pk]))
            for c in found[:MERGE_SEARCH_LIMIT]
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.get("q", "").strip()[:200]
        context.update(
            contact=self.contact,
            query=query,
            matches=self.matches(query) if query else None,
            back_url=reverse(CONTACT_INSPECT, args=[self.contact.pk]),
        )
        return context


def review_urls():
    return [
        path("crm/duplicates/<int:pk>/", ReviewView.as_view(), name="crm_duplicates_review"),
        path(
            "crm/contacts/<int:pk>/merge/",
            ChooseContactToMergeView.as_view(),
            name="crm_contact_merge",
        ),
        path(
            "crm/contacts/<int:pk>/merge/<int:other_pk>/",
            MergeContactsView.as_view(),
            name="crm_contact_merge_review",
        ),
    ]


def refuse_bulk_actions(request, action_type, objects, action):
    if getattr(action, "model", None) in (PossibleDuplicate, MergeRecord):
        return HttpResponseForbidden(_("Review duplicates one pair at a time."))
    return None


def register():
    """Register the data quality menu and the review page with the Wagtail admin."""
    register_permission_policy(PossibleDuplicate, DuplicateQueuePermissionPolicy(PossibleDuplicate))
    register_permission_policy(MergeRecord, ReadOnlyPermissionPolicy(MergeRecord))
    register_snippet(DataQualityViewSetGroup)
    hooks.register("register_admin_urls", review_urls)
    hooks.register("before_bulk_action", refuse_bulk_actions)
