"""Imports in the back office: a wizard under Data quality.

Upload a CSV or XLSX file -> map its columns (saved as a reusable mapping,
custom fields included) and choose what a match does -> dry run, which lists
each row's errors and saves nothing -> the import itself, in the background,
on a page that refreshes itself (a meta refresh, no script) -> the summary and
the rows that were not imported as a CSV file.

Every step checks permissions: starting imports needs ``crm_core.add_importjob``
plus the right to add what the file holds (contacts, contributions or
memberships; contacts also need change, as matches are updated).
"""

import io

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView
from wagtail import hooks
from wagtail.admin import messages
from wagtail.admin.ui.tables import Column, DateColumn, TitleColumn
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.widgets.button import HeaderButton
from wagtail.permissions import register_permission_policy

from crm_core.exceptions import CRMError
from crm_core.models import ImportJob, ImportKind, ImportMapping, ImportStatus, MatchAction
from crm_core.services.imports import (
    MAX_FILE_BYTES,
    create_job,
    guess_columns,
    import_targets,
    validate_columns,
    write_error_file,
)
from crm_core.tasks import run_import_task

from .choosers import CRMSnippetViewSet
from .permissions import ReadOnlyPermissionPolicy
from .service_views import NoBulkActionsIndexView

KIND_PERMISSIONS = {
    ImportKind.CONTACTS: ["crm_core.add_contact", "crm_core.change_contact"],
    ImportKind.CONTRIBUTIONS: ["crm_core.add_contribution"],
    ImportKind.MEMBERSHIPS: ["crm_core.add_membership"],
}
ERRORS_SHOWN = 200


def can_import(user, kind=None):
    if not user.is_active or not user.has_perm("crm_core.add_importjob"):
        return False
    if kind is None:
        return any(user.has_perms(perms) for perms in KIND_PERMISSIONS.values())
    return user.has_perms(KIND_PERMISSIONS[kind])


def can_view_imports(user):
    return can_import(user) or (user.is_active and user.has_perm("crm_core.view_importjob"))


class ImportJobIndexView(NoBulkActionsIndexView):
    @property
    def header_buttons(self):
        if not can_import(self.request.user):
            return []
        return [
            HeaderButton(_("Import a file"), url=reverse("crm_imports_upload"), icon_name="upload")
        ]


class JobColumn(TitleColumn):
    def get_link_url(self, instance, parent_context):
        return reverse("crm_imports_job", args=[instance.pk])


class ImportJobViewSet(CRMSnippetViewSet):
    model = ImportJob
    icon = "upload"
    menu_label = _("Imports")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = False
    index_view_class = ImportJobIndexView
    list_filter = ["status", "kind"]
    list_per_page = 50
    list_display = [
        JobColumn("original_name", label=_("File")),
        Column("kind", label=_("Kind"), accessor="get_kind_display"),
        Column("mapping", label=_("Mapping")),
        Column("status", label=_("Status"), accessor="get_status_display"),
        Column("rows_total", label=_("Rows")),
        Column("created_count", label=_("Created")),
        Column("error_count", label=_("Errors")),
        Column("created_by", label=_("By")),
        DateColumn("created_at", label=_("Uploaded")),
    ]

    def get_queryset(self, request):
        return ImportJob.objects.select_related("mapping", "created_by")


class ImportMappingViewSet(CRMSnippetViewSet):
    model = ImportMapping
    icon = "table"
    menu_label = _("Import mappings")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    list_display = ["name", Column("kind", accessor="get_kind_display"), "match_action"]
    form_fields = ["name", "match_action"]
    inspect_view_fields = ["name", "kind", "match_action", "columns", "created_at"]


class ImportPermissionPolicy(ReadOnlyPermissionPolicy):
    """The listing is for those who import or may view imports; jobs change
    only through the wizard."""

    def user_has_permission(self, user, action):
        return action == "view" and can_view_imports(user)


# -- the wizard -------------------------------------------------------------------------------


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("A CSV file or an Excel .xlsx workbook; the first row names the columns."),
    )
    kind = forms.ChoiceField(label=_("The rows are"), choices=ImportKind.choices)
    mapping = forms.ModelChoiceField(
        label=_("Saved mapping"),
        queryset=ImportMapping.objects.all(),
        required=False,
        help_text=_("Optional: start from the columns of an earlier import."),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_FILE_BYTES:
            raise ValidationError(
                gettext("The file is larger than %(mb)d MB: split it into smaller files.")
                % {"mb": MAX_FILE_BYTES // (1024 * 1024)}
            )
        return upload

    def clean(self):
        cleaned = super().clean()
        kind, mapping = cleaned.get("kind"), cleaned.get("mapping")
        if kind and not can_import(self.user, kind):
            self.add_error("kind", gettext("You may not import this kind of record."))
        if kind and mapping and mapping.kind != kind:
            self.add_error("mapping", gettext("This mapping is for another kind of file."))
        return cleaned


class WizardView(WagtailAdminTemplateMixin, TemplateView):
    header_icon = "upload"

    def index_url(self):
        return reverse(ImportJobViewSet().get_url_name("list"))

    def get_breadcrumbs_items(self):
        # Without these the admin header shows "Home" instead of the step.
        return [
            *self.breadcrumbs_items,
            {"url": self.index_url(), "label": ImportJob._meta.verbose_name_plural.capitalize()},
            {"url": "", "label": self.get_page_title()},
        ]


class UploadView(WizardView):
    template_name = "crm_wagtail/imports/upload.html"
    page_title = _("Import a file")

    def dispatch(self, request, *args, **kwargs):
        if not can_import(request.user):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, form=None, **kwargs):
        context = super().get_context_data(**kwargs)
        context["form"] = form or UploadForm(user=self.request.user)
        context["back_url"] = self.index_url()
        return context

    def post(self, request):
        form = UploadForm(request.POST, request.FILES, user=request.user)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = create_job(
                    upload.read(),
                    name=upload.name,
                    kind=form.cleaned_data["kind"],
                    actor=request.user,
                    mapping=form.cleaned_data["mapping"],
                )
            except CRMError as error:
                form.add_error("file", error.message)
            else:
                return redirect("crm_imports_map", job.pk)
        return self.render_to_response(self.get_context_data(form=form), status=200)


class MappingForm(forms.Form):
    mapping_name = forms.CharField(
        label=_("Save this mapping as"),
        max_length=100,
        help_text=_(
            "Reuse it for the next file from the same system (also with manage.py crm_import)."
        ),
    )
    match_action = forms.ChoiceField(
        label=_("When a row matches an existing contact"),
        choices=MatchAction.choices,
        widget=forms.RadioSelect,
        initial=MatchAction.UPDATE_BLANKS,
    )

    def __init__(self, *args, job, **kwargs):
        super().__init__(*args, **kwargs)
        self.job = job
        choices = [("", _("(do not import)")), *import_targets(job.kind)]
        self.column_fields = []
        for index, header in enumerate(job.headers):
            name = f"column_{index}"
            self.fields[name] = forms.ChoiceField(label=header, choices=choices, required=False)
            self.column_fields.append(name)
        if job.kind != ImportKind.CONTACTS:
            del self.fields["match_action"]

    def columns(self):
        return {
            header: self.cleaned_data[name]
            for header, name in zip(self.job.headers, self.column_fields, strict=True)
            if self.cleaned_data.get(name)
        }

    def clean(self):
        cleaned = super().clean()
        try:
            validate_columns(self.columns(), self.job.kind)
        except ValidationError as error:
            for message in error.messages:
                self.add_error(None, message)
        name = cleaned.get("mapping_name")
        if name:
            existing = ImportMapping.objects.filter(name=name).first()
            if existing and existing.kind != self.job.kind:
                self.add_error(
                    "mapping_name", gettext("A mapping for another kind of file has this name.")
                )
        return cleaned


class JobStepView(WizardView):
    """A step on one job: the job must exist and the user may import its kind."""

    def dispatch(self, request, pk, *args, **kwargs):
        self.job = get_object_or_404(ImportJob.objects.select_related("mapping"), pk=pk)
        if not self.allowed(request.user):
            raise PermissionDenied
        return super().dispatch(request, pk, *args, **kwargs)

    def allowed(self, user):
        return can_import(user, self.job.kind)

    def get_page_subtitle(self):
        return str(self.job)


class MapView(JobStepView):
    template_name = "crm_wagtail/imports/map.html"
    page_title = _("Map the columns")

    def get_form(self):
        if self.request.method == "POST":
            return MappingForm(self.request.POST, job=self.job)
        mapping = self.job.mapping
        if mapping is not None:
            columns, action, name = mapping.columns, mapping.match_action, mapping.name
        else:
            columns = guess_columns(self.job.headers, self.job.kind)
            action, name = MatchAction.UPDATE_BLANKS, self.job.original_name[:100]
        initial = {"mapping_name": name, "match_action": action}
        for index, header in enumerate(self.job.headers):
            initial[f"column_{index}"] = columns.get(header, "")
        return MappingForm(initial=initial, job=self.job)

    def get_context_data(self, form=None, **kwargs):
        context = super().get_context_data(**kwargs)
        form = form or self.get_form()
        context.update(
            job=self.job,
            form=form,
            column_fields=[form[name] for name in form.column_fields],
            back_url=self.index_url(),
        )
        return context

    def post(self, request, pk):
        if self.job.status not in (ImportStatus.UPLOADED, ImportStatus.DRY_RUN):
            messages.error(request, gettext("This import has started; its mapping is fixed."))
            return redirect("crm_imports_job", self.job.pk)
        form = self.get_form()
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        with transaction.atomic():
            mapping, _created = ImportMapping.objects.update_or_create(
                name=form.cleaned_data["mapping_name"],
                defaults={
                    "kind": self.job.kind,
                    "columns": form.columns(),
                    "match_action": form.cleaned_data.get("match_action")
                    or MatchAction.UPDATE_BLANKS,
                },
                create_defaults={
                    "kind": self.job.kind,
                    "columns": form.columns(),
                    "match_action": form.cleaned_data.get("match_action")
                    or MatchAction.UPDATE_BLANKS,
                    "created_by": request.user,
                },
            )
            self.job.mapping = mapping
            self.job.save(update_fields=["mapping"])
        try:
            run_import_task.enqueue(self.job.pk, dry_run=True, user_id=request.user.pk)
        except CRMError as error:
            messages.error(request, error.message)
        return redirect("crm_imports_job", self.job.pk)


class JobView(JobStepView):
    """The job's page: dry run results, progress while it runs, then the summary."""

    template_name = "crm_wagtail/imports/job.html"
    page_title = _("Import")

    def allowed(self, user):
        return can_view_imports(user)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        job = self.job
        real_run = job.started_at is not None
        errors = job.row_errors.filter(dry_run=not real_run)
        context.update(
            job=job,
            real_run=real_run,
            can_run=can_import(self.request.user, job.kind) and job.status == ImportStatus.DRY_RUN,
            can_remap=can_import(self.request.user, job.kind)
            and job.status in (ImportStatus.UPLOADED, ImportStatus.DRY_RUN),
            can_resume=can_import(self.request.user, job.kind)
            and job.status == ImportStatus.FAILED,
            refresh=job.is_running,
            errors=errors[:ERRORS_SHOWN],
            error_total=errors.count(),
            headers=job.headers,
            back_url=self.index_url(),
            duplicates_url=reverse("wagtailsnippets_crm_core_possibleduplicate:list"),
        )
        return context


class RunView(JobStepView):
    """POST: queue the real import (or resume one that stopped)."""

    http_method_names = ["post"]

    def post(self, request, pk):
        if self.job.status not in (ImportStatus.DRY_RUN, ImportStatus.FAILED):
            messages.error(request, gettext("Run the dry run first."))
            return redirect("crm_imports_job", self.job.pk)
        ImportJob.objects.filter(pk=self.job.pk).update(status=ImportStatus.QUEUED)
        try:
            run_import_task.enqueue(self.job.pk, user_id=request.user.pk)
        except CRMError as error:
            messages.error(request, error.message)
        return redirect("crm_imports_job", self.job.pk)


class ErrorFileView(JobStepView):
    def allowed(self, user):
        return can_view_imports(user)

    def get(self, request, pk):
        dry_run = request.GET.get("dry_run") == "1"
        out = io.StringIO()
        write_error_file(self.job, out, dry_run=dry_run)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        suffix = "dry-run-errors" if dry_run else "errors"
        response["Content-Disposition"] = (
            f'attachment; filename="import-{self.job.pk}-{suffix}.csv"'
        )
        return response


def import_urls():
    return [
        path("crm/imports/new/", UploadView.as_view(), name="crm_imports_upload"),
        path("crm/imports/<int:pk>/map/", MapView.as_view(), name="crm_imports_map"),
        path("crm/imports/<int:pk>/", JobView.as_view(), name="crm_imports_job"),
        path("crm/imports/<int:pk>/run/", RunView.as_view(), name="crm_imports_run"),
        path("crm/imports/<int:pk>/errors.csv", ErrorFileView.as_view(), name="crm_imports_errors"),
    ]


def register(group):
    """Add imports and mappings to the Data quality menu ``group`` (call before
    that group is registered) and the wizard's pages to the admin."""
    group.items = (*group.items, ImportJobViewSet, ImportMappingViewSet)
    register_permission_policy(ImportJob, ImportPermissionPolicy(ImportJob))
    hooks.register("register_admin_urls", import_urls)
