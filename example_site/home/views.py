"""Staff pages of the demo's mail catcher (``example_site.home.demo_mail``)."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render

from .demo_mail import list_messages, mail_dir, message_parts, read_message


def _staff_only(view):
    """Anonymous visitors log in first; a logged-in user who is not staff gets 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _directory():
    directory = mail_dir()
    if directory is None:  # neither DEBUG nor DEMO_MAIL_DIR: the pages do not exist
        raise Http404
    return directory


@_staff_only
def demo_mail_list(request):
    directory = _directory()
    return render(
        request,
        "home/demo_mail_list.html",
        {"messages_caught": list_messages(directory), "directory": directory},
    )


@_staff_only
def demo_mail_detail(request, name):
    message = read_message(_directory(), name)
    if message is None:
        raise Http404
    headers, text, html = message_parts(message)
    return render(
        request,
        "home/demo_mail_detail.html",
        {
            "name": name,
            "subject": str(message.get("Subject") or ""),
            "headers": headers,
            "text": text,
            "html": html,
        },
    )
