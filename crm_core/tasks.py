"""Background tasks of crm_core (django-tasks; Wagtail 8's task API).

django-tasks has no scheduler: run the matching management commands from
cron (``crm_update_membership_statuses`` daily, ``crm_expire_waitlist_offers``
every few minutes), or enqueue these tasks from whatever schedules work on
the site (see docs/memberships.md and docs/events.md).
"""

import datetime

from django_tasks import task

from .services.events import expire_waitlist_offers
from .services.memberships import update_membership_statuses
from .services.messages import (
    send_membership_confirmation,
    send_receipt,
    send_registration_confirmation,
)


@task()
def update_membership_statuses_task(day=None):
    """Recompute membership statuses as of ``day`` (ISO date text; default today).

    Arguments and result are JSON: the date as text, the counts as a dict.
    """
    today = datetime.date.fromisoformat(day) if day else None
    return update_membership_statuses(today=today)


@task()
def expire_waitlist_offers_task():
    """Cancel unanswered waitlist offers and offer the seats to the next in line.

    Run it every few minutes (``manage.py crm_expire_waitlist_offers`` from
    cron does the same). Returns the ids of the participants newly offered a seat.
    """
    return [participant.pk for participant in expire_waitlist_offers()]


@task()
def find_duplicates_task(contact_ids=None):
    """Fill the duplicates review queue (``manage.py crm_find_duplicates`` does the same).

    ``contact_ids`` limits the queue to pairs involving those contacts (after
    an import, say). Returns the counts as a dict.
    """
    from .services.duplicates import find_duplicates

    return find_duplicates(contacts=contact_ids).as_dict()


@task()
def run_import_task(job_id, dry_run=False, user_id=None):
    """Run (or dry-run) an import job; a rerun of a crashed job resumes it.

    Returns the job's counts as a dict.
    """
    from django.contrib.auth import get_user_model

    from .models import ImportJob
    from .services.imports import dry_run_import, run_import

    job = ImportJob.objects.get(pk=job_id)
    actor = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    if dry_run:
        return dry_run_import(job, actor=actor).dry_run_counts
    job = run_import(job, actor=actor)
    return {
        "created": job.created_count,
        "updated": job.updated_count,
        "skipped": job.skipped_count,
        "errors": job.error_count,
        "duplicates": job.duplicate_count,
    }


@task()
def send_receipt_task(contribution_id):
    """Email a paid contribution's receipt, once (``services.messages.send_receipt``)."""
    return send_receipt(contribution_id)


@task()
def send_registration_confirmation_task(registration):
    """Email a registration's confirmation with the event's .ics file, once."""
    return send_registration_confirmation(registration)


@task()
def send_membership_confirmation_task(membership_id, renewal=False):
    """Welcome a member or confirm a renewal, once per term."""
    return send_membership_confirmation(membership_id, renewal=renewal)
