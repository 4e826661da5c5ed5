"""Catch the demo's mail: an SMTP server on 127.0.0.1 keeping every message as a .eml file.

    DEBUG=1 python manage.py demo_mail_catcher            # 127.0.0.1:1025, var/demo-mail/

Run the site with ``EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend
EMAIL_HOST=127.0.0.1 EMAIL_PORT=1025`` (``make demo`` does) and staff read
what arrived at /demo-mail/. It never relays anything anywhere.
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from example_site.home.demo_mail import mail_dir, start_catcher


class Command(BaseCommand):
    help = "Run an SMTP server on 127.0.0.1 that keeps the demo's mail for /demo-mail/."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=1025)
        parser.add_argument(
            "--dir",
            dest="directory",
            default="",
            help="Where to keep them (default: DEMO_MAIL_DIR, or var/demo-mail under DEBUG).",
        )

    def handle(self, *args, port, directory, **options):
        directory = directory or mail_dir()
        if not directory:
            raise CommandError("Set DEBUG=1 or DEMO_MAIL_DIR, or pass --dir.")
        try:
            controller = start_catcher(directory, port=port)
        except OSError as exc:
            raise CommandError(f"Cannot listen on 127.0.0.1:{port}: {exc}") from exc
        self.stdout.write(f"Catching mail on 127.0.0.1:{port}, kept in {directory}")
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_args: stopped.set())
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
