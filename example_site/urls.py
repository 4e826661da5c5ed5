from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.documents import urls as wagtaildocs_urls

from crm_payments import api_urls as payments_api_urls
from example_site.home import views as home_views

urlpatterns = [
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    # crm_payments serves the core's contributions endpoints first, so that a
    # refund through the API returns the money through the payment provider.
    path("api/crm/v1/", include(payments_api_urls.contribution_urlpatterns)),
    path("api/crm/", include("crm_core.api.urls")),
    path("api/crm/payments/", include("crm_payments.api_urls")),
    path("crm/payments/", include("crm_payments.urls")),
    path("crm/forms/", include("crm_forms.urls")),
    path("crm/", include("crm_core.urls")),
    # django-anymail's ESP webhooks (/anymail/<esp>/tracking/), refused until
    # ANYMAIL_WEBHOOK_SECRET is set; bounces and complaints put addresses on hold.
    path("anymail/", include("crm_core.anymail_urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    # The demo's mail catcher (docs/communications.md): staff only, and a 404
    # unless DEBUG is on or DEMO_MAIL_DIR is set.
    path("demo-mail/", home_views.demo_mail_list, name="demo_mail_list"),
    path("demo-mail/<str:name>/", home_views.demo_mail_detail, name="demo_mail_detail"),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

urlpatterns += [path("", include(wagtail_urls))]
