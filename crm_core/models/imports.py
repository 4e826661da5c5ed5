"""Imports of contacts, contributions and memberships from CSV or XLSX files.

An ``ImportMapping`` is a reusable answer to "which column is which field and
what does a match do". An ``ImportJob`` is one file going through the import:
its dry run, then its real run in batches. Each batch commits together with
the job's checkpoint (``rows_done``), so a crashed run resumes after the last
committed batch and imports each row once.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ImportKind(models.TextChoices):
    CONTACTS = "contacts", _("Contacts")
    CONTRIBUTIONS = "contributions", _("Contributions")
    MEMBERSHIPS = "memberships", _("Memberships")


class MatchAction(models.TextChoices):
    SKIP = "skip", _("Skip the row: keep the contact as it is")
    UPDATE_BLANKS = "update_blanks", _("Fill in only the contact's blank fields")
    UPDATE = "update", _("Update the contact with the row's non-blank values")
    CREATE = "create", _("Always create a new contact and queue it as a possible duplicate")


class ImportMapping(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=ImportKind.choices)
    # {column header: target field}; targets are listed by
    # crm_core.services.imports.import_targets ("email", "custom:<name>", ...).
    columns = models.JSONField(_("columns"), default=dict, blank=True)
    match_action = models.CharField(
        _("when a contact matches"),
        max_length=20,
        choices=MatchAction.choices,
        default=MatchAction.UPDATE_BLANKS,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("import mapping")
        verbose_name_plural = _("import mappings")
        ordering = ["name"]

    def __str__(self):
        return self.name


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Uploaded")
    DRY_RUN = "dry_run", _("Dry run done")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Stopped by an error")


class ImportJob(models.Model):
    file = models.FileField(_("file"), upload_to="crm_imports/%Y/%m/")
    original_name = models.CharField(_("file name"), max_length=255, blank=True)
    # SHA-256 of the file: a rerun of the same file and mapping resumes this job.
    sha256 = models.CharField(max_length=64, db_index=True, editable=False)
    kind = models.CharField(_("kind"), max_length=20, choices=ImportKind.choices)
    mapping = models.ForeignKey(
        ImportMapping,
        verbose_name=_("mapping"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    headers = models.JSONField(default=list, blank=True, editable=False)
    # How a CSV file was decoded ("utf-8", "cp1252", ...); empty for XLSX.
    encoding = models.CharField(_("encoding"), max_length=20, blank=True, editable=False)
    status = models.CharField(
        _("status"), max_length=20, choices=ImportStatus.choices, default=ImportStatus.UPLOADED
    )
    rows_total = models.PositiveIntegerField(_("rows"), default=0)
    # The checkpoint: data rows 1..rows_done are imported (committed).
    rows_done = models.PositiveIntegerField(_("rows done"), default=0)
    created_count = models.PositiveIntegerField(_("created"), default=0)
    updated_count = models.PositiveIntegerField(_("updated"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0)
    error_count = models.PositiveIntegerField(_("errors"), default=0)
    duplicate_count = models.PositiveIntegerField(_("possible duplicates queued"), default=0)
    # Counts of the last dry run: {"created": n, "updated": n, ...}.
    dry_run_counts = models.JSONField(default=dict, blank=True, editable=False)
    message = models.TextField(_("message"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("uploaded"), default=timezone.now, editable=False)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.original_name or f"Import {self.pk}"

    @property
    def percent_done(self):
        if not self.rows_total:
            return 100 if self.status == ImportStatus.DONE else 0
        return min(100, self.rows_done * 100 // self.rows_total)

    @property
    def is_running(self):
        return self.status in (ImportStatus.QUEUED, ImportStatus.RUNNING)


class ImportRowError(models.Model):
    """A row that was not imported, with its cells, for the error file."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    dry_run = models.BooleanField(default=False)
    # As a spreadsheet numbers it: 2 is the first row after the header.
    row_number = models.PositiveIntegerField()
    values = models.JSONField(default=list)
    messages = models.JSONField(default=list)

    class Meta:
        verbose_name = _("import row error")
        verbose_name_plural = _("import row errors")
        ordering = ["row_number", "id"]
        indexes = [models.Index(fields=["job", "dry_run", "row_number"], name="crm_import_err_row")]

    def __str__(self):
        return f"{self.job_id}:{self.row_number}"
