"""Import a CSV or XLSX file: ``manage.py crm_import FILE --mapping NAME [--dry-run]``.

The mapping (columns, kind, what a match does) is one saved in the admin
(Data quality > Import mappings) or by an earlier import. A progress bar is
drawn on stderr. Rerunning the same file with the same mapping after a crash
resumes the unfinished import after its last committed batch, so each row is
imported once; rerunning a finished import is refused unless ``--again``.
"""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from crm_core.exceptions import CRMError
from crm_core.models import ImportJob, ImportMapping, ImportStatus
from crm_core.services.imports import (
    create_job,
    dry_run_import,
    inspect_file,
    resumable_job,
    run_import,
    write_error_file,
)

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Import contacts, contributions or memberships from a CSV or XLSX file."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV or XLSX file to import.")
        parser.add_argument("--mapping", required=True, help="Name of a saved import mapping.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check every row and save nothing."
        )
        parser.add_argument(
            "--again", action="store_true", help="Import a file that was imported before."
        )
        parser.add_argument("--batch-size", type=int, default=500)

    def progress(self, done, total):
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        percent = 100 * done // total if total else 100
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}% {done}/{total} rows"
        )
        sys.stderr.flush()

    def handle(self, *args, file, mapping, dry_run, again, batch_size, **options):
        mapping_obj = ImportMapping.objects.filter(name=mapping).first()
        if mapping_obj is None:
            names = ", ".join(ImportMapping.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No import mapping called {mapping!r} (saved mappings: {names}).")
        path = Path(file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
        try:
            summary = inspect_file(data, path.name)
            job = None if dry_run else resumable_job(summary.sha256, mapping_obj)
            if job is not None:
                self.stdout.write(
                    f"Resuming import {job.pk} after row {job.rows_done + 1} of {job.rows_total}."
                )
            else:
                finished = ImportJob.objects.filter(
                    sha256=summary.sha256, mapping=mapping_obj, status=ImportStatus.DONE
                ).first()
                if finished and not dry_run and not again:
                    raise CommandError(
                        f"This file was imported with this mapping already (import "
                        f"{finished.pk}); pass --again to import it again."
                    )
                job = create_job(data, name=path.name, kind=mapping_obj.kind, mapping=mapping_obj)
            if dry_run:
                job = dry_run_import(job, batch_size=batch_size, progress=self.progress)
            else:
                job = run_import(job, batch_size=batch_size, progress=self.progress)
        except CRMError as exc:
            sys.stderr.write("\n")
            raise CommandError(exc.message) from None
        sys.stderr.write("\n")
        self.report(job, dry_run)

    def report(self, job, dry_run):
        if dry_run:
            counts = job.dry_run_counts
            self.stdout.write(
                "Dry run, nothing saved: {created} would be created, {updated} updated, "
                "{skipped} skipped, {errors} rows with errors.".format(**counts)
            )
        else:
            self.stdout.write(
                f"Import {job.pk}: {job.created_count} created, {job.updated_count} updated, "
                f"{job.skipped_count} skipped, {job.error_count} rows with errors, "
                f"{job.duplicate_count} possible duplicates queued."
            )
        if job.row_errors.filter(dry_run=dry_run).exists():
            self.stdout.write("Rows not imported:")
            write_error_file(job, self.stdout, dry_run=dry_run)
