"""Visitor-facing payment pages (being built: the return and cancel pages)."""

from django.http import Http404


def payment_return(request, reference):
    raise Http404


def payment_cancelled(request, reference):
    raise Http404
