"""Background tasks of crm_core (django-tasks; Wagtail 8's task API).

django-tasks has no scheduler: run ``manage.py crm_update_membership_statuses``
from cron, or enqueue ``update_membership_statuses_task`` from whatever
schedules work on the site (see docs/memberships.md).
"""

import datetime

from django_tasks import task

from .services.memberships import update_membership_statuses


@task()
def update_membership_statuses_task(day=None):
    """Recompute membership statuses as of ``day`` (ISO date text; default today).

    Arguments and result are JSON: the date as text, the counts as a dict.
    """
    today = datetime.date.fromisoformat(day) if day else None
    return update_membership_statuses(today=today)
