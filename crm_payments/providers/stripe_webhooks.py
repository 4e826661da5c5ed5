"""Stripe webhooks (being built)."""

from django.http import HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def webhook_view(request):
    return HttpResponseBadRequest()
