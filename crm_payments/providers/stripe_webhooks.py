"""Stripe webhooks: verify, store each event once, re-fetch, sync.

The endpoint (``/crm/payments/stripe/webhook/``) trusts nothing in the body
but the event's id, type and object id, and only once stripe's own code
(``stripe.WebhookSignature.verify_header``, what ``construct_event`` calls)
has checked the signature and the timestamp. Then:

1. the event id is stored once (``WebhookEvent``, unique per provider) by
   one autocommitted statement that also counts repeated deliveries: a
   second delivery of the same event, even one arriving at the same moment
   on another server, finds the row and is answered 200 without being
   processed again, unless the first attempt failed (or died part way,
   ``STALE_AFTER`` ago);
2. a first delivery is handed to ``process_stripe_event_task`` (the task
   worker) and the request is answered at once: Stripe asks for a quick 2xx,
   and the work needs a round trip to Stripe and a transaction. If queueing
   fails, the stored event is marked failed, so the next delivery (or the
   reconcile command) takes it again;
3. the task runs the handler for the event's type (``HANDLERS``, a dict in
   the manner of Saleor's Stripe plugin), which re-fetches the object from
   Stripe and passes it to ``stripe_sync``, whose functions apply Stripe's
   current state through the idempotent payment services. Events may come
   in any order: each one applies the state of the object as it is now.

Answers: 400 for anything that is not a well-signed, recent, well-formed
event (nothing stored, one log line); 200 for events accepted, ignored
(unknown types) or already seen. Never a 500 for bad input. An event whose
processing fails (Stripe unreachable, our books refuse it) is stored as
failed with the error; the next delivery of it, or ``crm_stripe_reconcile``
(which retries unfinished events before comparing objects), processes it
again.
"""

import datetime
import json
import logging

import stripe
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.http import JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from crm_core.exceptions import CRMError

from ..conf import payments_setting
from ..models import WebhookEvent, WebhookStatus
from . import stripe_sync
from .stripe import value

logger = logging.getLogger("crm_payments.webhooks")

PROVIDER = "stripe"
# Stripe's events are a few kilobytes; anything near this is not one of them.
MAX_BODY_BYTES = 1024 * 1024
# A delivery still marked "received" this long after the first one died part
# way (a killed worker): a later delivery processes it again.
STALE_AFTER = datetime.timedelta(minutes=10)
IGNORED_NOTE = "Not an event type we handle."


# -- handlers: re-fetch the object, then sync it -------------------------------------------


def handle_checkout_session(object_id):
    return stripe_sync.sync_checkout_session(stripe_sync.fetch_checkout_session(object_id))


def handle_payment_intent(object_id):
    return stripe_sync.sync_payment_intent(stripe_sync.fetch_payment_intent(object_id))


def handle_charge(object_id):
    return stripe_sync.sync_charge(stripe_sync.fetch_charge(object_id))


def handle_refund(object_id):
    return stripe_sync.sync_refund(stripe_sync.fetch_refund(object_id))


def handle_dispute(object_id):
    return stripe_sync.sync_dispute(stripe_sync.fetch_dispute(object_id))


def handle_invoice(object_id):
    return stripe_sync.sync_invoice(stripe_sync.fetch_invoice(object_id))


def handle_subscription(object_id):
    return stripe_sync.sync_subscription(stripe_sync.fetch_subscription(object_id))


#: Event type -> handler(object id) -> list of changes. Enable these in Stripe.
HANDLERS = {
    "checkout.session.completed": handle_checkout_session,
    "checkout.session.async_payment_succeeded": handle_checkout_session,
    "checkout.session.async_payment_failed": handle_checkout_session,
    "checkout.session.expired": handle_checkout_session,
    "payment_intent.succeeded": handle_payment_intent,
    "payment_intent.payment_failed": handle_payment_intent,
    "charge.refunded": handle_charge,
    "charge.refund.updated": handle_refund,
    "charge.dispute.created": handle_dispute,
    "charge.dispute.updated": handle_dispute,
    "charge.dispute.closed": handle_dispute,
    "invoice.paid": handle_invoice,
    "invoice.payment_failed": handle_invoice,
    "customer.subscription.updated": handle_subscription,
    "customer.subscription.deleted": handle_subscription,
}

# Stripe could not answer, or answered "try later": the next delivery retries.
RETRYABLE = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    stripe.AuthenticationError,
    stripe.PermissionError,
)


# -- the view -------------------------------------------------------------------------------


class BadEvent(Exception):
    """The request is not a well-signed, recent, well-formed Stripe event."""


def _refuse(request, reason):
    logger.warning(
        "Stripe webhook refused from %s: %s", request.META.get("REMOTE_ADDR", "?"), reason
    )
    return JsonResponse({"error": reason}, status=400)


def _read_event(request):
    """(event id, type, object id, livemode) of a verified event, or ``BadEvent``."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadEvent("bad Content-Length") from None
    if declared > MAX_BODY_BYTES:
        raise BadEvent("body too large")
    try:
        body = request.body
    except RequestDataTooBig:
        raise BadEvent("body too large") from None
    if len(body) > MAX_BODY_BYTES:
        raise BadEvent("body too large")
    header = request.META.get("HTTP_STRIPE_SIGNATURE", "")
    if not header:
        raise BadEvent("no Stripe-Signature header")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadEvent("body is not UTF-8") from None
    try:
        # stripe's own check; the event is then read as plain JSON, since only
        # four of its fields are used (construct_event would also build a
        # StripeObject of the whole payload, on the path Stripe waits on).
        stripe.WebhookSignature.verify_header(
            payload,
            header,
            payments_setting("STRIPE_WEBHOOK_SECRET"),
            payments_setting("STRIPE_WEBHOOK_TOLERANCE"),
        )
        event = json.loads(payload)
    except stripe.SignatureVerificationError as error:
        raise BadEvent(f"signature: {error.user_message or error}") from None
    except (ValueError, TypeError, AttributeError, KeyError):
        raise BadEvent("body is not a Stripe event (JSON)") from None
    if not isinstance(event, dict):
        raise BadEvent("body is not a Stripe event (JSON object)")
    event_id = value(event, "id")
    event_type = value(event, "type")
    object_id = value(event, "data", "object", "id")
    for name, text in (("id", event_id), ("type", event_type), ("object id", object_id)):
        if not isinstance(text, str) or not text or len(text) > 255:
            raise BadEvent(f"event {name} missing or not text")
    return event_id, event_type[:100], object_id, bool(value(event, "livemode"))


def _store(event_id, event_type, object_id, livemode, status):
    """Store a delivery: the event's (row id, status, received_at, deliveries).

    One autocommitted statement (INSERT ... ON CONFLICT DO UPDATE ... RETURNING,
    which PostgreSQL and SQLite both have): a first delivery inserts the row
    (deliveries 1), a repeated one counts itself on the stored row. The
    unique constraint decides between concurrent deliveries: the database
    makes the second wait for the first and then counts it, so exactly one
    of them sees deliveries == 1.
    """
    table = WebhookEvent._meta.db_table
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (provider, event_id, event_type, object_id, livemode,"  # noqa: S608 - our own table name
            " status, attempts, error, received_at, processed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, 1, %s, %s, %s)"
            f" ON CONFLICT (provider, event_id) DO UPDATE SET attempts = {table}.attempts + 1"
            " RETURNING id, status, received_at, attempts",
            [
                PROVIDER,
                event_id,
                event_type,
                object_id,
                livemode,
                status,
                "" if status == WebhookStatus.RECEIVED else IGNORED_NOTE,
                now,
                None if status == WebhookStatus.RECEIVED else now,
            ],
        )
        row_id, stored_status, received_at, deliveries = cursor.fetchone()
    if isinstance(received_at, str):  # SQLite hands a raw cursor text, in UTC
        received_at = parse_datetime(received_at)
    if timezone.is_naive(received_at):
        received_at = timezone.make_aware(received_at, datetime.UTC)
    return row_id, stored_status, received_at, deliveries


def _finish(record, status, error=""):
    WebhookEvent.objects.filter(pk=record.pk).update(
        status=status, error=str(error)[:2000], processed_at=timezone.now()
    )
    return JsonResponse({"status": str(status)})


def _needs_processing(status, received_at):
    if status == WebhookStatus.FAILED:
        return True
    return status == WebhookStatus.RECEIVED and received_at < timezone.now() - STALE_AFTER


@csrf_exempt
@transaction.non_atomic_requests
@require_POST
def webhook_view(request):
    """Receive one Stripe event (see the module's docstring for what is answered when)."""
    if not payments_setting("STRIPE_WEBHOOK_SECRET"):
        logger.error("Stripe webhook refused: STRIPE_WEBHOOK_SECRET is not configured")
        return JsonResponse({"error": "webhooks are not configured"}, status=400)
    try:
        event_id, event_type, object_id, livemode = _read_event(request)
    except BadEvent as error:
        return _refuse(request, str(error))

    # Stripe wants a quick 2xx; the work (a round trip to Stripe and a
    # transaction) runs in the task worker (the immediate backend of the
    # tests runs it here and now).
    known = event_type in HANDLERS
    status = WebhookStatus.RECEIVED if known else WebhookStatus.IGNORED
    row_id, stored_status, received_at, deliveries = _store(
        event_id, event_type, object_id, livemode, status
    )
    if not known:
        return JsonResponse({"status": WebhookStatus.IGNORED.value})
    if deliveries > 1 and not _needs_processing(stored_status, received_at):
        return JsonResponse({"status": "duplicate"})
    _enqueue(row_id)
    return JsonResponse({"status": "accepted"})


def _enqueue(row_id):
    """Hand a stored event to the task worker.

    The event row is already committed: if queueing fails, the event is
    marked failed (the next delivery, which the error answer makes Stripe
    send, or ``crm_stripe_reconcile`` processes it again) and the error
    goes on; if the process dies in between, the event stays "received" and
    is taken again ``STALE_AFTER`` later the same ways.
    """
    from ..tasks import process_stripe_event_task

    try:
        process_stripe_event_task.enqueue(row_id)
    except Exception as error:
        WebhookEvent.objects.filter(pk=row_id, status=WebhookStatus.RECEIVED).update(
            status=WebhookStatus.FAILED, error=f"Could not be queued: {error!r}"[:2000]
        )
        raise


def process_event(record_id):
    """Re-fetch the object of a stored event and sync it; returns the event's new status.

    Run by ``process_stripe_event_task``. An event already processed or
    ignored is left alone. Failures are recorded on the event (status
    failed, with the error) for staff to see; a later delivery of the same
    event, or ``crm_stripe_reconcile``, processes it again.
    """
    record = WebhookEvent.objects.filter(pk=record_id).first()
    if record is None or record.status in (WebhookStatus.PROCESSED, WebhookStatus.IGNORED):
        return record.status if record else None
    event_id, event_type = record.event_id, record.event_type
    handler = HANDLERS.get(event_type)
    if handler is None:
        _finish(record, WebhookStatus.IGNORED, IGNORED_NOTE)
        return WebhookStatus.IGNORED
    try:
        changes = handler(record.object_id)
    except stripe_sync.NotOurs as note:
        _finish(record, WebhookStatus.IGNORED, note)
        return WebhookStatus.IGNORED
    except stripe.InvalidRequestError as error:
        # Stripe says the object does not exist on this account (a test event
        # from elsewhere, a deleted object): there is nothing to apply.
        logger.warning("Stripe event %s: %s not found at Stripe", event_id, record.object_id)
        _finish(record, WebhookStatus.IGNORED, error.user_message or str(error))
        return WebhookStatus.IGNORED
    except RETRYABLE as error:
        logger.warning("Stripe event %s: Stripe unreachable, will retry: %s", event_id, error)
        _finish(record, WebhookStatus.FAILED, f"Stripe unreachable: {error}")
        return WebhookStatus.FAILED
    except (CRMError, ValidationError) as error:
        # Our books refuse what Stripe reports (say, a membership that can no
        # longer be renewed): staff must look; the reconcile command retries.
        message = getattr(error, "message", None) or "; ".join(getattr(error, "messages", []))
        logger.error("Stripe event %s (%s) could not be applied: %s", event_id, event_type, message)
        _finish(record, WebhookStatus.FAILED, message or str(error))
        return WebhookStatus.FAILED
    except Exception as error:  # noqa: BLE001 - recorded, then retried
        logger.exception("Stripe event %s (%s) failed", event_id, event_type)
        _finish(record, WebhookStatus.FAILED, repr(error))
        return WebhookStatus.FAILED
    _finish(record, WebhookStatus.PROCESSED)
    for change in changes:
        logger.info("Stripe event %s: %s", event_id, change)
    return WebhookStatus.PROCESSED


def retry_unfinished_events(since):
    """Process again the events received since ``since`` that failed or were left
    half done (``STALE_AFTER``); returns how many were retried."""
    stale = timezone.now() - STALE_AFTER
    pending = WebhookEvent.objects.filter(provider=PROVIDER, received_at__gte=since).filter(
        Q(status=WebhookStatus.FAILED) | Q(status=WebhookStatus.RECEIVED, received_at__lt=stale)
    )
    ids = list(pending.order_by("received_at", "id").values_list("pk", flat=True))
    for record_id in ids:
        process_event(record_id)
    return len(ids)
