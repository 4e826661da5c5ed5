from django.urls import path

from . import views

app_name = "crm_forms"

urlpatterns = [
    path("submit/", views.submit, name="submit"),
    path("thanks/<str:token>/", views.thanks, name="thanks"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
]
