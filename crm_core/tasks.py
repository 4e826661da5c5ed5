"""Background tasks of crm_core (django-tasks; Wagtail 8's task API).

django-tasks has no scheduler: run the matching management commands from
cron (``crm_update_membership_statuses`` then ``crm_send_reminders`` daily,
``crm_expire_waitlist_offers`` every few minutes), or enqueue these tasks
from whatever schedules work on the site (see docs/memberships.md,
docs/events.md and docs/communications.md).
"""

import datetime

from django_tasks import task

from .conf import crm_setting
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
def send_reminders_task(day=None):
    """Send the membership renewal reminders due on ``day`` (ISO date; default today), once each.

    Run it daily (``manage.py crm_send_reminders`` from cron does the same).
    Returns the counts as a dict.
    """
    from .services.reminders import send_renewal_reminders

    today = datetime.date.fromisoformat(day) if day else None
    return send_renewal_reminders(today=today)


@task()
def send_statements_task(year):
    """Email every donor their giving statement for ``year``, once each; returns counts."""
    from .services.messages import send_annual_statements

    return send_annual_statements(int(year))


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
def send_waitlist_offer_task(registration):
    """Email a waiting registration its seat offer with the link to take it, once per offer."""
    from .services.messages import send_waitlist_offer

    return send_waitlist_offer(registration)


@task()
def send_membership_confirmation_task(membership_id, renewal=False):
    """Welcome a member or confirm a renewal, once per term."""
    return send_membership_confirmation(membership_id, renewal=renewal)


@task()
def send_mailing_task(mailing_id):
    """Send a mailing's pending recipients in batches (``services.mailings.send_pending``).

    Sends for at most ``MAILING_TASK_TIME_BUDGET`` seconds, then enqueues
    itself again, so one long mailing does not hold a worker for hours and a
    deploy in between loses nothing. Several of these may run at once for one
    mailing: each claims its own recipients. Returns the progress as a dict.
    """
    from .models import Mailing
    from .services.mailings import MailingDeliveryInterrupted, send_pending

    mailing = Mailing.objects.filter(pk=mailing_id).first()
    if mailing is None:
        return {"handled": 0, "finished": False, "more": False}
    try:
        # Told to stop (SIGTERM, Ctrl-C), it stops after the message in hand
        # and enqueues itself again before the signal goes on to the worker.
        progress = send_pending(mailing, on_stop=lambda _progress: _enqueue_after_stop(mailing_id))
    except MailingDeliveryInterrupted:
        # The mail server is away: try again in a minute where the backend can wait.
        _enqueue_mailing_again(mailing_id, delay=60)
        raise
    if progress.stopped_by_signal:
        pass  # enqueued again already
    elif progress.out_of_time:
        _enqueue_mailing_again(mailing_id)
    elif not progress.finished:
        mailing.refresh_from_db(fields=["status"])
        if mailing.status == "sending":
            # Only rows claimed by another worker are left. If that worker
            # died, its claim goes stale after MAILING_CLAIM_TIMEOUT: look again
            # then, so the mailing finishes without anyone re-sending it.
            _enqueue_mailing_again(mailing_id, delay=crm_setting("MAILING_CLAIM_TIMEOUT") + 1)
    return progress.as_dict()


def _enqueue_after_stop(mailing_id):
    """Queue the rest of a mailing whose worker was told to stop.

    Not where tasks run inline (the immediate backend): enqueueing would
    send the rest right there, in the process being stopped. The mailing
    then waits, "sending", for its task to be enqueued again.
    """
    from django_tasks.backends.immediate import ImmediateBackend

    if not isinstance(send_mailing_task.get_backend(), ImmediateBackend):
        _enqueue_mailing_again(mailing_id)


def _enqueue_mailing_again(mailing_id, delay=0):
    from django.utils import timezone

    if delay and send_mailing_task.get_backend().supports_defer:
        run_after = timezone.now() + datetime.timedelta(seconds=delay)
        send_mailing_task.using(run_after=run_after).enqueue(mailing_id)
    elif not delay:
        send_mailing_task.enqueue(mailing_id)
