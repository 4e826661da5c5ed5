"""The demo's mail catcher: an SMTP server keeping .eml files, and the staff pages showing them."""

import socket

import pytest
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.management import CommandError, call_command

from example_site.home.demo_mail import FILENAME, MailCatcher, start_catcher
from tests.factories import UserFactory

LIST = "/demo-mail/"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _message(subject="Autumn news", to="ann@example.org", html="<p>Hello Ann</p>", headers=None):
    message = EmailMultiAlternatives(
        subject, "Hello Ann <b>plain</b>", "news@example.org", [to], headers=headers
    )
    message.attach_alternative(html, "text/html")
    return message


def _catch(directory, message):
    """Store ``message`` as the catcher would have received it; returns the file name."""
    return MailCatcher(directory).store(
        message.from_email, message.recipients(), message.message().as_bytes(linesep="\r\n")
    )


@pytest.fixture
def mail_dir(settings, tmp_path):
    settings.DEMO_MAIL_DIR = str(tmp_path)
    return tmp_path


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True))
    return client


def test_a_message_sent_over_smtp_is_kept_as_an_eml_file(tmp_path):
    port = _free_port()
    controller = start_catcher(tmp_path / "demo-mail", port=port)
    try:
        connection = SMTPBackend(host="127.0.0.1", port=port, use_tls=False, use_ssl=False)
        message = _message(to="ann@example.org", headers={"List-Unsubscribe": "<http://x.test/u>"})
        message.connection = connection
        assert message.send() == 1
    finally:
        controller.stop()

    (path,) = (tmp_path / "demo-mail").iterdir()
    assert FILENAME.match(path.name)
    content = path.read_bytes()
    assert b"X-RcptTo: ann@example.org" in content
    assert b"Subject: Autumn news" in content
    assert b"multipart/alternative" in content
    assert b"<p>Hello Ann</p>" in content


def test_the_command_refuses_to_start_without_debug_or_a_directory(settings):
    settings.DEBUG = False
    settings.DEMO_MAIL_DIR = ""
    with pytest.raises(CommandError):
        call_command("demo_mail_catcher", port=_free_port())


def test_staff_see_the_caught_mail_newest_first(staff_client, mail_dir):
    _catch(mail_dir, _message(subject="First news", to="ann@example.org"))
    _catch(mail_dir, _message(subject="Second news", to="bob@example.org"))

    html = staff_client.get(LIST).content.decode()

    assert "ann@example.org" in html and "bob@example.org" in html
    assert html.index("Second news") < html.index("First news")


def test_the_detail_shows_headers_and_plain_text_escaped(staff_client, mail_dir):
    name = _catch(
        mail_dir, _message(headers={"List-Unsubscribe": "<http://x.test/unsubscribe/1/>"})
    )

    response = staff_client.get(f"{LIST}{name}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "List-Unsubscribe" in html
    assert "&lt;http://x.test/unsubscribe/1/&gt;" in html
    assert "<pre>Hello Ann &lt;b&gt;plain&lt;/b&gt;" in html


def test_mail_html_is_only_shown_escaped_in_a_sandboxed_frame(staff_client, mail_dir):
    name = _catch(mail_dir, _message(html='<p>Hi</p><script>alert("x")</script>'))

    html = staff_client.get(f"{LIST}{name}/").content.decode()

    assert "<script>" not in html
    assert (
        'sandbox srcdoc="&lt;p&gt;Hi&lt;/p&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
        in html
    )


def test_anonymous_visitors_are_sent_to_log_in(client, mail_dir, db):
    name = _catch(mail_dir, _message())

    for url in (LIST, f"{LIST}{name}/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_users_who_are_not_staff_are_refused(client, mail_dir, db):
    name = _catch(mail_dir, _message())
    client.force_login(UserFactory(is_staff=False))

    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}{name}/").status_code == 403


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fexample_site%2Fsettings.py",
        "..",
        "notes.txt",
        "20260101T000000-000000-000000000000.eml.partial",
        "20260101T000000-000000-000000000000.eml",  # well formed, no such message
    ],
)
def test_names_that_are_not_caught_messages_are_not_found(staff_client, mail_dir, name):
    (mail_dir / "notes.txt").write_text("not a message")
    (mail_dir / "20260101T000000-000000-000000000000.eml.partial").write_text("Subject: x\n\n")

    assert staff_client.get(f"{LIST}{name}/").status_code == 404


def test_the_pages_do_not_exist_without_debug_or_a_directory(staff_client, settings):
    settings.DEBUG = False
    settings.DEMO_MAIL_DIR = ""

    assert staff_client.get(LIST).status_code == 404


def test_a_mailing_sent_by_the_worker_arrives_in_the_catcher_and_reads_back(
    staff_client, mail_dir, settings
):
    """The demo's path: send_pending (the SMTP fast path) to the catcher, then the page."""
    from crm_core.models import Mailing
    from crm_core.services import mailings as service
    from crm_core.services.groups import add_to_group
    from tests.factories import ContactFactory, GroupFactory

    port = _free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    group = GroupFactory()
    add_to_group(ContactFactory(first_name="Zoë", emails=["zoe@example.org"]), group)
    mailing = Mailing.objects.create(
        name="Autumn",
        subject="Autumn news for {{ first_name }}",
        body_html="<p>Grüße, {{ first_name }} <b>&amp;</b> co</p>",
        from_email="news@example.org",
    )
    mailing.include_groups.set([group])
    service.send_mailing(mailing)
    controller = start_catcher(mail_dir, port=port)
    try:
        progress = service.send_pending(mailing)
    finally:
        controller.stop()

    assert progress.finished
    (path,) = mail_dir.iterdir()
    html = staff_client.get(f"{LIST}{path.name}/").content.decode()
    assert "Autumn news for Zoë" in html
    # The text part, made from the HTML (spaces around inline tags kept), escaped.
    assert "<pre>Grüße, Zoë &amp; co" in html
    assert "List-Unsubscribe-Post" in html
