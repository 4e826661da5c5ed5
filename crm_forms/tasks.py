"""Emails sent by crm_forms, as tasks (django-tasks) so a slow mail server
never holds up the visitor."""

from django.core.mail import send_mail
from django_tasks import task


@task()
def send_form_email_task(subject, body, recipients):
    send_mail(subject, body, None, recipients)
