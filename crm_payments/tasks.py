"""Background tasks of crm_payments (django-tasks; Wagtail 8's task API).

django-tasks has no scheduler: run ``manage.py crm_stripe_reconcile --since
3d`` from cron a few times a day (or enqueue ``reconcile_stripe_task``), and
``purge_velocity_events_task`` daily (see docs/payments.md).
"""

from django_tasks import task

from .providers.stripe_reconcile import parse_since, reconcile
from .services.velocity import purge_old_events


@task()
def reconcile_stripe_task(since="3d", dry_run=False):
    """Repair what missed Stripe webhooks left, for objects created within ``since``.

    ``since`` is text as the command takes it (3d, 12h, 90m, an ISO date).
    Returns the changes as a list of lines (JSON).
    """
    return reconcile(parse_since(since), dry_run=dry_run)


@task()
def process_stripe_event_task(webhook_event_id):
    """Process a stored Stripe webhook event (enqueued by the webhook endpoint).

    Returns the event's new status. Safe to run twice: the event's status
    and the idempotent payment services make a second run change nothing.
    """
    from .providers.stripe_webhooks import process_event

    return process_event(webhook_event_id)


@task()
def purge_velocity_events_task():
    """Delete card-testing counts older than the window; returns how many went."""
    return purge_old_events()
