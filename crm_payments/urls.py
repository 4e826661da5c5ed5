"""Public URLs of crm_payments, mounted by a site at /crm/payments/ (namespace "crm_payments")."""

from django.urls import path

from . import views
from .providers import stripe_webhooks

app_name = "crm_payments"

urlpatterns = [
    path("stripe/webhook/", stripe_webhooks.webhook_view, name="stripe-webhook"),
    path("return/<uuid:reference>/", views.payment_return, name="return"),
    path("cancel/<uuid:reference>/", views.payment_cancelled, name="cancel"),
]
