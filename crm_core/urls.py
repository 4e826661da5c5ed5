"""Public pages of crm_core; a site includes them, e.g. at ``crm/``."""

from django.urls import path

from . import views

app_name = "crm_core"

urlpatterns = [
    path(
        "mailings/<int:mailing_id>/unsubscribe/<str:token>/",
        views.mailing_unsubscribe,
        name="mailing_unsubscribe",
    ),
    path("waitlist/offer/<str:token>/", views.waitlist_offer, name="waitlist_offer"),
]
