"""A small, stateful fake of Stripe's API for tests, benchmarks and staging.

Point ``STRIPE_API_BASE`` at it and stripe-python talks to it as to Stripe.
It implements only what crm_payments calls, in the shapes of the API version
we pin (``2026-10-28.endive``: an invoice's subscription is under
``parent.subscription_details``, its payments come with ``expand=["payments"]``,
a subscription's periods are on its items):

- customers (create, retrieve), checkout sessions (create, retrieve, list,
  expire), payment intents (retrieve, list), charges (retrieve), refunds
  (create, retrieve, list), subscriptions (retrieve, list, cancel), invoices
  (retrieve, list), invoice payments (list), disputes (retrieve), events
  (retrieve, list);
- ``expand`` (dotted paths, ``data.`` in lists), ``created[gte]`` style
  filters, ``limit`` and ``starting_after``;
- the ``Idempotency-Key`` header: the same key and request give the same
  stored response; the same key with other parameters is an error, as at Stripe;
- Stripe-shaped errors (``{"error": {"type", "code", "message", "param"}}``).

What a customer or a bank would do is driven through ``/_fake/`` endpoints,
or the same methods of ``FakeStripe`` in Python: pay, decline or let a
Checkout Session expire, settle a delayed (bank debit) payment, renew a
subscription or fail its invoice, open a dispute and close it as won or
lost, cancel a subscription, move a refund to succeeded or failed. Every
change records an Event (kept in order; ``GET /v1/events``,
``GET /_fake/events``) and, with a webhook URL and secret, POSTs it there
signed as Stripe signs it.

Standard library only, but for stripe's own signature code. Run it by hand::

    python -m crm_payments.providers.stripe_fake --port 12111 \\
        --webhook-url http://127.0.0.1:8000/crm/payments/stripe/webhook/ \\
        --webhook-secret whsec_...

Not a security boundary: bind it to 127.0.0.1 only.
"""

import argparse
import calendar
import contextlib
import copy
import datetime
import html
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from socketserver import ThreadingMixIn
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

API_VERSION = "2026-10-28.endive"
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())  # noqa: SIM905
DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed"})
DISPUTE_STATUSES = DISPUTE_CLOSED | {"under_review", "warning_under_review"}
# Stripe's longest billing interval: three years.
MAX_INTERVAL_COUNT = {"day": 1095, "week": 156, "month": 36, "year": 3}
HTTP_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Not Allowed",
}


class FakeStripeError(Exception):
    """Answered as Stripe answers a refused request."""

    def __init__(self, status, message, *, type="invalid_request_error", code=None, param=None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "message": message}}
        if code:
            self.body["error"]["code"] = code
        if param:
            self.body["error"]["param"] = param


def _missing(kind, object_id, param="id"):
    return FakeStripeError(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def _bad(message, param=None, code="parameter_invalid"):
    return FakeStripeError(400, message, code=code, param=param)


def decode_params(pairs):
    """Form pairs as stripe-python sends them (``a[b][0][c]=1``) -> nested dicts and lists."""
    root = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        if not match:
            raise _bad(f"Invalid parameter name: {key[:100]}", param=key[:100])
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            part = part or str(len(node))
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _bad(f"Invalid parameter: {key[:100]}", param=key[:100])
        node[parts[-1] or str(len(node))] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    node = {key: _lists(value) for key, value in node.items()}
    if node and all(key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


def _int(params, name, *, default=None, minimum=0):
    value = params.get(name, default)
    if value is None:
        raise _bad(f"Missing required param: {name}.", param=name, code="parameter_missing")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _bad(f"Invalid integer: {str(value)[:50]}", param=name) from None
    if number < minimum:
        raise _bad(f"This value must be greater than or equal to {minimum}.", param=name)
    return number


def _check_amount(amount, currency, param):
    if currency in THREE_DECIMAL and amount % 10:
        raise _bad(
            f"Amounts in {currency.upper()} must end in 0: round to the nearest ten.",
            param=param,
            code="amount_invalid",
        )


def _bool(value):
    return str(value).lower() in {"1", "true", "yes", "on"}


def _add_months(timestamp, months):
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


class FakeStripe:
    """The fake's state, its WSGI app (``self`` is callable) and its control actions.

    ``start()`` serves it on 127.0.0.1 (a free port unless ``port`` is given)
    and returns its base address (``self.url``); ``stop()`` shuts it down.
    """

    def __init__(self, *, api_key="", webhook_url="", webhook_secret="", port=0):
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.port = port
        self.url = ""
        self.time_offset = 0
        #: Status of refunds created through the API from now on (Stripe's
        #: refunds of some payment methods stay pending, or fail later).
        self.next_refund_status = "succeeded"
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self.reset()

    # -- lifecycle --------------------------------------------------------------------

    def reset(self):
        with self._lock:
            self.objects = {}
            self.events = []
            self.deliveries = []
            self.requests = []
            self._idempotent = {}
            self._order = {}
            self._line_items = {}
            self._outbox = []

    def start(self):
        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True
            allow_reuse_address = True

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        self._server = make_server(
            "127.0.0.1", self.port, self, server_class=Server, handler_class=QuietHandler
        )
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def advance(self, seconds):
        """Move the fake's clock on (``created`` stamps, periods, expiry)."""
        self.time_offset += seconds

    def now(self):
        return int(time.time()) + self.time_offset

    # -- storage ----------------------------------------------------------------------

    def _new_id(self, prefix):
        return f"{prefix}_{'test_' if prefix == 'cs' else ''}{secrets.token_hex(12)}"

    def _store(self, obj):
        self._order.setdefault(obj["id"], len(self._order))
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_id, kind=None):
        """A stored object (a copy), or ``FakeStripeError`` 404."""
        with self._lock:
            return copy.deepcopy(self._get(object_id, kind))

    def _get(self, object_id, kind=None, param="id"):
        obj = self.objects.get(object_id)
        if obj is None or (kind and obj["object"] != kind):
            raise _missing(kind or "object", object_id, param)
        return obj

    def _all(self, kind):
        return [obj for obj in self.objects.values() if obj["object"] == kind]

    def _emit(self, event_type, obj, previous_attributes=None):
        event = {
            "id": self._new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        if previous_attributes is not None:
            event["data"]["previous_attributes"] = previous_attributes
        self._store(event)
        self.events.append(event)
        self._outbox.append(event)
        return event

    def events_of_type(self, event_type):
        return [event for event in self.events if event["type"] == event_type]

    # -- webhooks ---------------------------------------------------------------------

    def signed(self, event, *, secret=None, timestamp=None):
        """(body bytes, Stripe-Signature header) as Stripe would send ``event``."""
        from stripe import WebhookSignature

        body = json.dumps(event)
        timestamp = self.now() if timestamp is None else timestamp
        signature = WebhookSignature._compute_signature(
            f"{timestamp}.{body}", secret or self.webhook_secret
        )
        return body.encode(), f"t={timestamp},v1={signature}"

    def deliver(self, event, url=None):
        """POST one event, signed, to the webhook URL; returns the HTTP status (0: unreachable)."""
        body, signature = self.signed(event)
        request = urllib.request.Request(  # noqa: S310 - the operator's own URL
            url or self.webhook_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        self.deliveries.append((event["id"], event["type"], status))
        return status

    def _flush(self):
        # Delivered after the lock is released: the webhook handler calls back
        # into the fake to re-fetch what the event is about.
        with self._lock:
            outbox, self._outbox = self._outbox, []
        if self.webhook_url and self.webhook_secret:
            for event in outbox:
                self.deliver(event)

    def _act(self, method, *args, **kwargs):
        with self._lock:
            result = method(*args, **kwargs)
            result = self._public(copy.deepcopy(result)) if isinstance(result, dict) else result
        self._flush()
        return result

    # -- rendering (expand, includable fields, lists) ---------------------------------

    def _render(self, obj, expand=()):
        obj = self._public(copy.deepcopy(obj))
        for path in expand:
            self._expand(obj, path.split("."))
        return obj

    def _expand(self, obj, parts):
        if not parts or not isinstance(obj, dict):
            return
        head, rest = parts[0], parts[1:]
        if head == "data" and obj.get("object") == "list":
            for item in obj["data"]:
                self._expand(item, rest)
            return
        includable = self._includable(obj, head)
        if includable is not None:
            obj[head] = includable
        elif isinstance(obj.get(head), str) and obj[head] in self.objects:
            obj[head] = self._public(copy.deepcopy(self.objects[obj[head]]))
        elif head not in obj:
            raise _bad(f"This property cannot be expanded ({head}).", param="expand")
        self._expand(obj[head], rest)

    def _includable(self, obj, field):
        kind = obj.get("object")
        if kind == "invoice" and field == "payments":
            rows = [p for p in self._all("invoice_payment") if p["invoice"] == obj["id"]]
        elif kind == "charge" and field == "refunds":
            rows = [r for r in self._all("refund") if r["charge"] == obj["id"]]
        elif kind == "checkout.session" and field == "line_items":
            rows = self._line_items.get(obj["id"], [])
        else:
            return None
        rows = sorted(rows, key=lambda row: self._order.get(row.get("id"), 0), reverse=True)
        return {
            "object": "list",
            "data": copy.deepcopy(rows),
            "has_more": False,
            "url": f"/v1/{field}",
        }

    def _list(self, kind, params, path, filters=()):
        rows = self._all(kind)
        created = params.get("created")
        if isinstance(created, dict):
            for operator, value in created.items():
                bound = int(value)
                test = {
                    "gt": lambda c, b=bound: c > b,
                    "gte": lambda c, b=bound: c >= b,
                    "lt": lambda c, b=bound: c < b,
                    "lte": lambda c, b=bound: c <= b,
                }.get(operator)
                if test is None:
                    raise _bad(f"Invalid created filter: {operator}", param="created")
                rows = [row for row in rows if test(row["created"])]
        elif created is not None:
            rows = [row for row in rows if row["created"] == int(created)]
        for name in filters:
            if name in params:
                rows = [row for row in rows if row.get(name) == params[name]]
        rows.sort(key=lambda row: self._order[row["id"]], reverse=True)
        if "starting_after" in params:
            ids = [row["id"] for row in rows]
            if params["starting_after"] not in ids:
                raise _missing(kind, params["starting_after"], "starting_after")
            rows = rows[ids.index(params["starting_after"]) + 1 :]
        limit = _int(params, "limit", default=10, minimum=1)
        if limit > 100:
            raise _bad("Limit must be at most 100.", param="limit")
        page = rows[:limit]
        return {
            "object": "list",
            "data": [self._render(row, self._expand_paths(params, "data.")) for row in page],
            "has_more": len(rows) > limit,
            "url": path,
        }

    def _expand_paths(self, params, prefix=""):
        paths = params.get("expand") or []
        if isinstance(paths, str):
            paths = [paths]
        if prefix:
            return [path.removeprefix(prefix) for path in paths if path.startswith(prefix)]
        return paths

    # -- API: customers ---------------------------------------------------------------

    def create_customer(self, params):
        customer = self._store(
            {
                "id": self._new_id("cus"),
                "object": "customer",
                "created": self.now(),
                "email": params.get("email") or None,
                "name": params.get("name") or None,
                "description": params.get("description") or None,
                "metadata": params.get("metadata") or {},
                "livemode": False,
            }
        )
        self._emit("customer.created", customer)
        return customer

    # -- API: checkout sessions ---------------------------------------------------------

    def create_session(self, params):
        mode = params.get("mode")
        if mode not in {"payment", "subscription"}:
            raise _bad("Invalid mode: must be one of payment or subscription.", param="mode")
        if not params.get("success_url"):
            raise _bad("Missing required param: success_url.", "success_url", "parameter_missing")
        customer = params.get("customer")
        if customer:
            self._get(customer, "customer", "customer")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise _bad("Missing required param: line_items.", "line_items", "parameter_missing")
        total, currencies, lines = 0, set(), []
        for index, item in enumerate(items):
            prefix = f"line_items[{index}]"
            price = item.get("price_data") if isinstance(item, dict) else None
            if not isinstance(price, dict):
                raise _bad("Provide price_data.", f"{prefix}[price_data]", "parameter_missing")
            currency = str(price.get("currency", "")).lower()
            if not re.fullmatch(r"[a-z]{3}", currency) or currency != price.get("currency"):
                raise _bad("Invalid currency.", f"{prefix}[price_data][currency]")
            amount = _int(price, "unit_amount")
            _check_amount(amount, currency, f"{prefix}[price_data][unit_amount]")
            quantity = _int(item, "quantity", default=1, minimum=1)
            name = (price.get("product_data") or {}).get("name")
            if not name:
                raise _bad(
                    "Missing required param: product_data[name].",
                    f"{prefix}[price_data][product_data][name]",
                    "parameter_missing",
                )
            recurring = price.get("recurring")
            if (mode == "subscription") != isinstance(recurring, dict):
                raise _bad(
                    "In subscription mode every price is recurring; in payment mode none is.",
                    f"{prefix}[price_data][recurring]",
                )
            if recurring:
                interval = recurring.get("interval")
                if interval not in MAX_INTERVAL_COUNT:
                    raise _bad("Invalid interval.", f"{prefix}[price_data][recurring][interval]")
                count = _int(recurring, "interval_count", default=1, minimum=1)
                if count > MAX_INTERVAL_COUNT[interval]:
                    raise _bad(
                        "The maximum billing interval is three years.",
                        f"{prefix}[price_data][recurring][interval_count]",
                    )
                recurring = {"interval": interval, "interval_count": count}
            currencies.add(currency)
            total += amount * quantity
            lines.append(
                {
                    "id": self._new_id("li"),
                    "object": "item",
                    "amount_subtotal": amount * quantity,
                    "amount_total": amount * quantity,
                    "currency": currency,
                    "description": name,
                    "quantity": quantity,
                    "price": {
                        "id": self._new_id("price"),
                        "object": "price",
                        "currency": currency,
                        "unit_amount": amount,
                        "product": self._new_id("prod"),
                        "recurring": recurring,
                        "type": "recurring" if recurring else "one_time",
                    },
                }
            )
        if len(currencies) != 1:
            raise _bad("All line items must have the same currency.", "line_items")
        now = self.now()
        session_id = self._new_id("cs")
        customer_obj = self.objects.get(customer) if customer else None
        session = self._store(
            {
                "id": session_id,
                "object": "checkout.session",
                "amount_subtotal": total,
                "amount_total": total,
                "cancel_url": params.get("cancel_url"),
                "client_reference_id": params.get("client_reference_id"),
                "created": now,
                "currency": currencies.pop(),
                "customer": customer,
                "customer_details": (
                    {"email": customer_obj["email"], "name": customer_obj["name"]}
                    if customer_obj
                    else None
                ),
                "customer_email": params.get("customer_email"),
                "expires_at": now + 24 * 60 * 60,
                "invoice": None,
                "livemode": False,
                "metadata": params.get("metadata") or {},
                "mode": mode,
                "payment_intent": None,
                "payment_method_types": ["card"],
                "payment_status": "unpaid",
                "status": "open",
                "submit_type": params.get("submit_type"),
                "subscription": None,
                "success_url": params.get("success_url"),
                "url": f"{self.url}/_fake/checkout/{session_id}",
                # Kept for what paying creates; Stripe does not show them on the session.
                "_payment_intent_data": params.get("payment_intent_data") or {},
                "_subscription_data": params.get("subscription_data") or {},
            }
        )
        self._line_items[session_id] = lines
        return session

    def _open_session(self, session_id):
        session = self._get(session_id, "checkout.session")
        if session["status"] != "open":
            raise _bad(
                f"This Checkout Session is {session['status']}, not open.",
                code="checkout_session_not_open",
            )
        return session

    def expire_session(self, session_id):
        session = self._open_session(session_id)
        session["status"] = "expired"
        self._emit("checkout.session.expired", self._public(session))
        return session

    def _public(self, obj):
        return {key: value for key, value in obj.items() if not key.startswith("_")}

    # -- money moving -----------------------------------------------------------------

    def _charge(self, intent, *, succeeded=True, decline_code="", fraudulent=False):
        charge = {
            "id": self._new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if succeeded else 0,
            "amount_refunded": 0,
            "balance_transaction": None,
            "captured": succeeded,
            "created": self.now(),
            "currency": intent["currency"],
            "customer": intent["customer"],
            "disputed": False,
            "failure_code": None if succeeded else "card_declined",
            "failure_message": None if succeeded else "Your card was declined.",
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "outcome": {
                "network_status": "approved_by_network" if succeeded else "declined_by_network",
                "reason": None if succeeded else decline_code,
                "risk_level": "highest" if fraudulent else "normal",
                "seller_message": "Payment complete." if succeeded else "The bank declined.",
                "type": "authorized" if succeeded else "issuer_declined",
            },
            "paid": succeeded,
            "payment_intent": intent["id"],
            "payment_method": self._new_id("pm"),
            "payment_method_details": {
                "type": "card",
                "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034},
            },
            "refunded": False,
            "status": "succeeded" if succeeded else "failed",
        }
        self._store(charge)
        intent["latest_charge"] = charge["id"]
        return charge

    def _intent(self, *, amount, currency, customer, metadata, status):
        return self._store(
            {
                "id": self._new_id("pi"),
                "object": "payment_intent",
                "amount": amount,
                "amount_received": 0,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic_async",
                "created": self.now(),
                "currency": currency,
                "customer": customer,
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": dict(metadata or {}),
                "payment_method_types": ["card"],
                "status": status,
            }
        )

    def _succeed_intent(self, intent):
        charge = self._charge(intent)
        intent["status"] = "succeeded"
        intent["amount_received"] = intent["amount"]
        intent["last_payment_error"] = None
        self._emit("charge.succeeded", charge)
        self._emit("payment_intent.succeeded", intent)
        return charge

    def _fail_intent(self, intent, *, decline_code="card_declined", fraudulent=False):
        decline_code = "fraudulent" if fraudulent else decline_code
        charge = self._charge(
            intent, succeeded=False, decline_code=decline_code, fraudulent=fraudulent
        )
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": decline_code,
            "message": "Your card was declined.",
            "charge": charge["id"],
        }
        self._emit("charge.failed", charge)
        self._emit("payment_intent.payment_failed", intent)
        return charge

    def _session_intent(self, session, status):
        if session["payment_intent"]:
            intent = self.objects[session["payment_intent"]]
            intent["status"] = status
            return intent
        intent = self._intent(
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            metadata=session["_payment_intent_data"].get("metadata"),
            status=status,
        )
        session["payment_intent"] = intent["id"]
        return intent

    def pay_session(self, session_id, *, delayed=False):
        """The visitor pays: one-off (PaymentIntent and charge) or a subscription's first invoice.

        ``delayed``: a bank debit; the session completes unpaid until ``settle_session``.
        """
        session = self._open_session(session_id)
        session["status"] = "complete"
        if session["mode"] == "subscription":
            self._start_subscription(session)
            session["payment_status"] = "paid"
        elif delayed:
            intent = self._session_intent(session, "processing")
            self._emit("payment_intent.processing", intent)
        else:
            self._succeed_intent(self._session_intent(session, "processing"))
            session["payment_status"] = "paid"
        self._emit("checkout.session.completed", self._public(session))
        return session

    def settle_session(self, session_id, *, succeeded=True):
        """A delayed payment of a completed session clears (or bounces)."""
        session = self._get(session_id, "checkout.session")
        intent = self.objects.get(session["payment_intent"] or "")
        if session["status"] != "complete" or not intent or intent["status"] != "processing":
            raise _bad("This Checkout Session has no payment waiting to clear.")
        if succeeded:
            self._succeed_intent(intent)
            session["payment_status"] = "paid"
            self._emit("checkout.session.async_payment_succeeded", self._public(session))
        else:
            self._fail_intent(intent, decline_code="insufficient_funds")
            self._emit("checkout.session.async_payment_failed", self._public(session))
        return session

    def decline_session(self, session_id, *, decline_code="card_declined", fraudulent=False):
        """The card is declined on the Checkout page; the session stays open for another try."""
        session = self._open_session(session_id)
        if session["mode"] != "payment":
            raise _bad("Declines are simulated for payment mode sessions.")
        intent = self._session_intent(session, "requires_payment_method")
        self._fail_intent(intent, decline_code=decline_code, fraudulent=fraudulent)
        return session

    # -- subscriptions and invoices -----------------------------------------------------

    def _start_subscription(self, session):
        line = self._line_items[session["id"]][0]
        price = line["price"]
        now = self.now()
        subscription = self._store(
            {
                "id": self._new_id("sub"),
                "object": "subscription",
                "billing_cycle_anchor": now,
                "cancel_at": None,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "cancellation_details": {"comment": None, "feedback": None, "reason": None},
                "collection_method": "charge_automatically",
                "created": now,
                "currency": session["currency"],
                "customer": session["customer"],
                "ended_at": None,
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": self._new_id("si"),
                            "object": "subscription_item",
                            "current_period_start": now,
                            "current_period_end": self._period_end(now, price["recurring"]),
                            "price": price,
                            "quantity": line["quantity"],
                        }
                    ],
                    "has_more": False,
                },
                "latest_invoice": None,
                "livemode": False,
                "metadata": dict(session["_subscription_data"].get("metadata") or {}),
                "start_date": now,
                "status": "active",
            }
        )
        session["subscription"] = subscription["id"]
        self._emit("customer.subscription.created", subscription)
        invoice = self._invoice(subscription, "subscription_create", paid=True)
        session["invoice"] = invoice["id"]
        return subscription

    def _period_end(self, start, recurring):
        count = recurring["interval_count"]
        if recurring["interval"] == "month":
            return _add_months(start, count)
        if recurring["interval"] == "year":
            return _add_months(start, 12 * count)
        return start + count * {"day": 1, "week": 7}[recurring["interval"]] * 86400

    def _invoice(self, subscription, billing_reason, *, paid):
        item = subscription["items"]["data"][0]
        amount = item["price"]["unit_amount"] * item["quantity"]
        now = self.now()
        invoice = self._store(
            {
                "id": self._new_id("in"),
                "object": "invoice",
                "amount_due": amount,
                "amount_paid": 0,
                "amount_remaining": amount,
                "attempt_count": 1,
                "attempted": True,
                "billing_reason": billing_reason,
                "collection_method": "charge_automatically",
                "created": now,
                "currency": subscription["currency"],
                "customer": subscription["customer"],
                "lines": {
                    "object": "list",
                    "data": [
                        {
                            "id": self._new_id("il"),
                            "object": "line_item",
                            "amount": amount,
                            "currency": subscription["currency"],
                            "period": {
                                "start": item["current_period_start"],
                                "end": item["current_period_end"],
                            },
                            "quantity": item["quantity"],
                        }
                    ],
                    "has_more": False,
                },
                "livemode": False,
                "metadata": {},
                "number": f"FAKE-{len(self._all('invoice')) + 1:04d}",
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {
                        "metadata": dict(subscription["metadata"]),
                        "subscription": subscription["id"],
                    },
                },
                "period_start": item["current_period_start"],
                "period_end": item["current_period_end"],
                "status": "open",
                "status_transitions": {
                    "finalized_at": now,
                    "paid_at": None,
                    "marked_uncollectible_at": None,
                    "voided_at": None,
                },
                "subtotal": amount,
                "total": amount,
            }
        )
        intent = self._intent(
            amount=amount,
            currency=invoice["currency"],
            customer=invoice["customer"],
            metadata={},
            status="processing",
        )
        self._store(
            {
                "id": self._new_id("inpay"),
                "object": "invoice_payment",
                "amount_paid": None,
                "amount_requested": amount,
                "created": now,
                "currency": invoice["currency"],
                "invoice": invoice["id"],
                "is_default": True,
                "livemode": False,
                "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
                "status": "open",
                "status_transitions": {"canceled_at": None, "paid_at": None},
            }
        )
        subscription["latest_invoice"] = invoice["id"]
        self._emit("invoice.created", invoice)
        self._emit("invoice.finalized", invoice)
        if paid:
            self._succeed_intent(intent)
            self._mark_invoice_paid(invoice, intent)
        else:
            self._fail_intent(intent, decline_code="insufficient_funds")
            self._emit("invoice.payment_failed", invoice)
        return invoice

    def _mark_invoice_paid(self, invoice, intent):
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["paid_at"] = self.now()
        for payment in self._all("invoice_payment"):
            if payment["payment"]["payment_intent"] == intent["id"]:
                payment.update(status="paid", amount_paid=invoice["amount_due"])
                payment["status_transitions"]["paid_at"] = self.now()
        self._emit("invoice.paid", invoice)
        self._emit("invoice.payment_succeeded", invoice)

    def _live_subscription(self, subscription_id):
        subscription = self._get(subscription_id, "subscription")
        if subscription["status"] == "canceled":
            raise _missing("subscription", subscription_id)
        return subscription

    def renew_subscription(self, subscription_id):
        """The next period starts and its invoice is paid (billing_reason subscription_cycle)."""
        subscription = self._live_subscription(subscription_id)
        item = subscription["items"]["data"][0]
        previous = {
            "current_period_start": item["current_period_start"],
            "current_period_end": item["current_period_end"],
        }
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] = self._period_end(
            item["current_period_start"], item["price"]["recurring"]
        )
        old_status, subscription["status"] = subscription["status"], "active"
        invoice = self._invoice(subscription, "subscription_cycle", paid=True)
        changed = {"items": {"data": [previous]}, "latest_invoice": None}
        if old_status != "active":
            changed["status"] = old_status
        self._emit("customer.subscription.updated", subscription, changed)
        return invoice

    def fail_invoice(self, subscription_id):
        """The next period's invoice cannot be collected; the subscription goes past due."""
        subscription = self._live_subscription(subscription_id)
        invoice = self._invoice(subscription, "subscription_cycle", paid=False)
        old_status, subscription["status"] = subscription["status"], "past_due"
        self._emit("customer.subscription.updated", subscription, {"status": old_status})
        return invoice

    def pay_invoice(self, invoice_id):
        """A failed invoice is paid on a retry (the subscription is active again)."""
        invoice = self._get(invoice_id, "invoice")
        if invoice["status"] != "open":
            raise _bad(f"This invoice is {invoice['status']}.", code="invoice_not_open")
        payment = next(p for p in self._all("invoice_payment") if p["invoice"] == invoice_id)
        intent = self.objects[payment["payment"]["payment_intent"]]
        self._succeed_intent(intent)
        self._mark_invoice_paid(invoice, intent)
        subscription = self.objects[invoice["parent"]["subscription_details"]["subscription"]]
        if subscription["status"] == "past_due":
            subscription["status"] = "active"
            self._emit("customer.subscription.updated", subscription, {"status": "past_due"})
        return invoice

    def cancel_subscription(self, subscription_id):
        subscription = self._live_subscription(subscription_id)
        subscription.update(status="canceled", canceled_at=self.now(), ended_at=self.now())
        subscription["cancellation_details"]["reason"] = "cancellation_requested"
        self._emit("customer.subscription.deleted", subscription)
        return subscription

    # -- refunds and disputes ----------------------------------------------------------

    def _paid_charge(self, params):
        if params.get("charge"):
            charge = self._get(params["charge"], "charge", "charge")
        elif params.get("payment_intent"):
            intent = self._get(params["payment_intent"], "payment_intent", "payment_intent")
            if intent["status"] != "succeeded":
                raise _bad(
                    "This PaymentIntent does not have a successful charge to refund.",
                    "payment_intent",
                    "charge_not_refundable",
                )
            charge = self.objects[intent["latest_charge"]]
        else:
            raise _bad("One of charge or payment_intent is required.", code="parameter_missing")
        return charge

    def create_refund(self, params, *, status="succeeded"):
        charge = self._paid_charge(params)
        left = charge["amount"] - charge["amount_refunded"]
        if left <= 0:
            raise _bad(
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = _int(params, "amount", default=left, minimum=1)
        _check_amount(amount, charge["currency"], "amount")
        if amount > left:
            raise _bad(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                "amount",
                "amount_too_large",
            )
        refund = self._store(
            {
                "id": self._new_id("re"),
                "object": "refund",
                "amount": amount,
                "balance_transaction": None,
                "charge": charge["id"],
                "created": self.now(),
                "currency": charge["currency"],
                "failure_reason": None,
                "metadata": params.get("metadata") or {},
                "payment_intent": charge["payment_intent"],
                "reason": params.get("reason"),
                "status": status,
            }
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._emit("refund.created", refund)
        self._emit("charge.refunded", charge)
        return refund

    def set_refund_status(self, refund_id, status):
        """A pending refund succeeds, or fails (its money returns to the charge)."""
        refund = self._get(refund_id, "refund")
        if status not in {"succeeded", "failed", "canceled"}:
            raise _bad("Status must be succeeded, failed or canceled.", "status")
        if refund["status"] != "pending":
            raise _bad(f"This refund is already {refund['status']}.")
        previous, refund["status"] = refund["status"], status
        if status != "succeeded":
            refund["failure_reason"] = "declined" if status == "failed" else None
            charge = self.objects[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
        self._emit("refund.updated", refund, {"status": previous})
        self._emit("charge.refund.updated", refund, {"status": previous})
        if status == "failed":
            self._emit("refund.failed", refund)
        return refund

    def open_dispute(self, charge_or_intent_id, *, reason="fraudulent"):
        """The payer's bank opens a chargeback for the whole charge."""
        if charge_or_intent_id.startswith("pi_"):
            charge = self._paid_charge({"payment_intent": charge_or_intent_id})
        else:
            charge = self._paid_charge({"charge": charge_or_intent_id})
        dispute = self._store(
            {
                "id": self._new_id("dp"),
                "object": "dispute",
                "amount": charge["amount"],
                "balance_transactions": [],
                "charge": charge["id"],
                "created": self.now(),
                "currency": charge["currency"],
                "evidence": {},
                "evidence_details": {
                    "due_by": self.now() + 7 * 86400,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
                "payment_intent": charge["payment_intent"],
                "reason": reason,
                "status": "needs_response",
            }
        )
        charge["disputed"] = True
        self._emit("charge.dispute.created", dispute)
        return dispute

    def set_dispute_status(self, dispute_id, status):
        """The dispute moves on: under review, or closed as won or lost (the money is gone)."""
        dispute = self._get(dispute_id, "dispute")
        if status not in DISPUTE_STATUSES:
            raise _bad(f"Status must be one of {', '.join(sorted(DISPUTE_STATUSES))}.", "status")
        if dispute["status"] in DISPUTE_CLOSED:
            raise _bad(f"This dispute is already {dispute['status']}.")
        previous, dispute["status"] = dispute["status"], status
        closed = status in DISPUTE_CLOSED
        self._emit(
            "charge.dispute.closed" if closed else "charge.dispute.updated",
            dispute,
            {"status": previous},
        )
        return dispute

    # -- Python control API (what tests call) ------------------------------------------

    def pay(self, session_id, *, delayed=False):
        return self._act(self.pay_session, session_id, delayed=delayed)

    def settle(self, session_id, *, succeeded=True):
        return self._act(self.settle_session, session_id, succeeded=succeeded)

    def decline(self, session_id, *, decline_code="card_declined", fraudulent=False):
        return self._act(
            self.decline_session, session_id, decline_code=decline_code, fraudulent=fraudulent
        )

    def expire(self, session_id):
        return self._act(self.expire_session, session_id)

    def renew(self, subscription_id):
        return self._act(self.renew_subscription, subscription_id)

    def fail_next_invoice(self, subscription_id):
        return self._act(self.fail_invoice, subscription_id)

    def retry_invoice(self, invoice_id):
        return self._act(self.pay_invoice, invoice_id)

    def cancel(self, subscription_id):
        return self._act(self.cancel_subscription, subscription_id)

    def dispute(self, charge_or_intent_id, *, reason="fraudulent"):
        return self._act(self.open_dispute, charge_or_intent_id, reason=reason)

    def refund_status(self, refund_id, status):
        return self._act(self.set_refund_status, refund_id, status)

    def dispute_status(self, dispute_id, status):
        return self._act(self.set_dispute_status, dispute_id, status)

    def refund(self, payment_intent_id, amount=None, *, status="succeeded"):
        """A refund made at Stripe (the dashboard), not through our code."""
        params = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = amount
        return self._act(self.create_refund, params, status=status)

    def objects_of(self, kind):
        """Every stored object of one kind ("customer", "checkout.session"...), oldest first."""
        with self._lock:
            rows = sorted(self._all(kind), key=lambda row: self._order[row["id"]])
            return [self._public(copy.deepcopy(row)) for row in rows]

    def session_line_items(self, session_id):
        with self._lock:
            self._get(session_id, "checkout.session")
            return copy.deepcopy(self._line_items[session_id])

    # -- HTTP -----------------------------------------------------------------------------

    def _routes(self):
        sid = r"(?P<id>[A-Za-z0-9_]+)"
        return [
            ("POST", r"/v1/customers", lambda p, m: self.create_customer(p)),
            ("GET", rf"/v1/customers/{sid}", self._retrieve("customer")),
            ("POST", r"/v1/checkout/sessions", lambda p, m: self.create_session(p)),
            (
                "GET",
                r"/v1/checkout/sessions",
                self._lister(
                    "checkout.session", ("customer", "payment_intent", "subscription", "status")
                ),
            ),
            ("GET", rf"/v1/checkout/sessions/{sid}", self._retrieve("checkout.session")),
            (
                "POST",
                rf"/v1/checkout/sessions/{sid}/expire",
                lambda p, m: self.expire_session(m["id"]),
            ),
            ("GET", r"/v1/payment_intents", self._lister("payment_intent", ("customer",))),
            ("GET", rf"/v1/payment_intents/{sid}", self._retrieve("payment_intent")),
            ("GET", r"/v1/charges", self._lister("charge", ("customer", "payment_intent"))),
            ("GET", rf"/v1/charges/{sid}", self._retrieve("charge")),
            (
                "POST",
                r"/v1/refunds",
                lambda p, m: self.create_refund(p, status=self.next_refund_status),
            ),
            ("GET", r"/v1/refunds", self._lister("refund", ("charge", "payment_intent"))),
            ("GET", rf"/v1/refunds/{sid}", self._retrieve("refund")),
            ("GET", r"/v1/subscriptions", self._list_subscriptions),
            ("GET", rf"/v1/subscriptions/{sid}", self._retrieve("subscription")),
            ("DELETE", rf"/v1/subscriptions/{sid}", lambda p, m: self.cancel_subscription(m["id"])),
            ("GET", r"/v1/invoice_payments", self._list_invoice_payments),
            ("GET", r"/v1/invoices", self._list_invoices),
            ("GET", rf"/v1/invoices/{sid}", self._retrieve("invoice")),
            ("GET", rf"/v1/disputes/{sid}", self._retrieve("dispute")),
            ("GET", r"/v1/events", self._list_events),
            ("GET", rf"/v1/events/{sid}", self._retrieve("event")),
            # Control endpoints: what visitors, banks and Stripe's clock do.
            ("GET", r"/_fake/events", lambda p, m: {"data": self.events}),
            ("POST", r"/_fake/reset", lambda p, m: self.reset() or {}),
            (
                "POST",
                rf"/_fake/checkout/sessions/{sid}/pay",
                lambda p, m: self.pay_session(m["id"], delayed=_bool(p.get("delayed"))),
            ),
            (
                "POST",
                rf"/_fake/checkout/sessions/{sid}/settle",
                lambda p, m: self.settle_session(
                    m["id"], succeeded=_bool(p.get("succeeded", "true"))
                ),
            ),
            (
                "POST",
                rf"/_fake/checkout/sessions/{sid}/decline",
                lambda p, m: self.decline_session(
                    m["id"],
                    decline_code=p.get("decline_code", "card_declined"),
                    fraudulent=_bool(p.get("fraudulent")),
                ),
            ),
            (
                "POST",
                rf"/_fake/checkout/sessions/{sid}/expire",
                lambda p, m: self.expire_session(m["id"]),
            ),
            (
                "POST",
                rf"/_fake/subscriptions/{sid}/renew",
                lambda p, m: self.renew_subscription(m["id"]),
            ),
            (
                "POST",
                rf"/_fake/subscriptions/{sid}/fail_invoice",
                lambda p, m: self.fail_invoice(m["id"]),
            ),
            (
                "POST",
                rf"/_fake/subscriptions/{sid}/cancel",
                lambda p, m: self.cancel_subscription(m["id"]),
            ),
            ("POST", rf"/_fake/invoices/{sid}/pay", lambda p, m: self.pay_invoice(m["id"])),
            (
                "POST",
                rf"/_fake/charges/{sid}/dispute",
                lambda p, m: self.open_dispute(m["id"], reason=p.get("reason", "fraudulent")),
            ),
            (
                "POST",
                rf"/_fake/disputes/{sid}/status",
                lambda p, m: self.set_dispute_status(m["id"], p.get("status", "")),
            ),
            (
                "POST",
                rf"/_fake/refunds/{sid}/status",
                lambda p, m: self.set_refund_status(m["id"], p.get("status", "")),
            ),
        ]

    def _retrieve(self, kind):
        def view(params, match):
            return self._render(self._get(match["id"], kind), self._expand_paths(params))

        return view

    def _lister(self, kind, filters):
        def view(params, match):
            return self._list(kind, params, "/v1/" + kind.replace(".", "/") + "s", filters)

        return view

    def _list_subscriptions(self, params, match):
        status = params.get("status")
        listing = self._list(
            "subscription", {**params, "limit": 100}, "/v1/subscriptions", ("customer",)
        )
        # As at Stripe, cancelled subscriptions are listed only when asked for.
        rows = [
            row
            for row in listing["data"]
            if status == "all"
            or (row["status"] == status if status else row["status"] != "canceled")
        ]
        limit = _int(params, "limit", default=10, minimum=1)
        return {**listing, "data": rows[:limit], "has_more": len(rows) > limit}

    def _list_invoices(self, params, match):
        listing = self._list(
            "invoice", {**params, "limit": 100}, "/v1/invoices", ("customer", "status")
        )
        rows = listing["data"]
        if "subscription" in params:
            rows = [
                row
                for row in rows
                if row["parent"]["subscription_details"]["subscription"] == params["subscription"]
            ]
        limit = _int(params, "limit", default=10, minimum=1)
        return {**listing, "data": rows[:limit], "has_more": len(rows) > limit}

    def _list_invoice_payments(self, params, match):
        """By ``invoice``, ``status``, or ``payment[type]`` and ``payment[payment_intent]``."""
        listing = self._list(
            "invoice_payment",
            {**params, "limit": 100},
            "/v1/invoice_payments",
            ("invoice", "status"),
        )
        rows = listing["data"]
        wanted = params.get("payment")
        if isinstance(wanted, dict):
            if wanted.get("type") != "payment_intent":
                raise _bad("Invalid payment[type].", param="payment[type]")
            rows = [
                row
                for row in rows
                if row["payment"].get("payment_intent") == wanted.get("payment_intent")
            ]
        limit = _int(params, "limit", default=10, minimum=1)
        return {**listing, "data": rows[:limit], "has_more": len(rows) > limit}

    def _list_events(self, params, match):
        types = params.get("types") or ([params["type"]] if "type" in params else None)
        listing = self._list("event", {**params, "limit": 100}, "/v1/events")
        rows = [row for row in listing["data"] if not types or row["type"] in types]
        limit = _int(params, "limit", default=10, minimum=1)
        return {**listing, "data": rows[:limit], "has_more": len(rows) > limit}

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if not self.url:
            self.url = f"http://{environ.get('HTTP_HOST', '127.0.0.1')}"
        page = re.fullmatch(r"/_fake/checkout/(cs_[A-Za-z0-9_]+)(/pay)?", path)
        if page:
            return self._checkout_page(start_response, method, page[1], bool(page[2]))
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length).decode("utf-8", "replace") if length else ""
        query = environ.get("QUERY_STRING", "")
        key = environ.get("HTTP_IDEMPOTENCY_KEY", "")
        with self._lock:
            self.requests.append(
                {"method": method, "path": path, "query": query, "body": body, "key": key}
            )
            status, payload, replayed = self._answer(environ, method, path, query, body, key)
        self._flush()
        headers = [("Content-Type", "application/json"), ("Request-Id", self._new_id("req"))]
        if replayed:
            headers.append(("Idempotent-Replayed", "true"))
        start_response(f"{status} {HTTP_REASONS.get(status, 'Error')}", headers)
        return [payload]

    def _answer(self, environ, method, path, query, body, key):
        if key and method in {"POST", "DELETE"} and key in self._idempotent:
            first, status, payload = self._idempotent[key]
            if first != (method, path, body):
                error = FakeStripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                    type="idempotency_error",
                )
                return error.status, json.dumps(error.body).encode(), False
            return status, payload, True
        try:
            self._authenticate(environ, path)
            pairs = parse_qsl(query, keep_blank_values=True)
            if environ.get("CONTENT_TYPE", "").startswith("application/json") and body:
                params = json.loads(body)
            else:
                params = decode_params(pairs + parse_qsl(body, keep_blank_values=True))
            status, result = 200, self._dispatch(method, path, params)
            result = self._public(result) if isinstance(result, dict) else result
        except FakeStripeError as error:
            status, result = error.status, error.body
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            status = 400
            result = {
                "error": {"type": "invalid_request_error", "message": f"Bad request: {error}"}
            }
        payload = json.dumps(result).encode()
        if key and method in {"POST", "DELETE"}:
            self._idempotent[key] = ((method, path, body), status, payload)
        return status, payload, False

    def _authenticate(self, environ, path):
        if path.startswith("/_fake/"):
            return
        given = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ").strip()
        if not given:
            raise FakeStripeError(401, "You did not provide an API key.")
        if self.api_key and given != self.api_key:
            raise FakeStripeError(401, f"Invalid API Key provided: {given[:8]}****{given[-4:]}")

    def _dispatch(self, method, path, params):
        allowed = False
        for route_method, pattern, view in self._routes():
            match = re.fullmatch(pattern, path)
            if match:
                if route_method == method:
                    return view(params, match.groupdict())
                allowed = True
        if allowed:
            raise FakeStripeError(405, f"Unrecognized request URL ({method}: {path[:200]}).")
        raise FakeStripeError(404, f"Unrecognized request URL ({method}: {path[:200]}).")

    def _checkout_page(self, start_response, method, session_id, pay):
        """A bare hosted-checkout stand-in for staging: pay or go back."""
        with self._lock:
            session = self.objects.get(session_id)
        if session is None or session["object"] != "checkout.session":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"No such checkout session"]
        if method == "POST" and pay:
            with contextlib.suppress(FakeStripeError):  # already paid or expired
                self._act(self.pay_session, session_id)
            start_response("303 See Other", [("Location", session["success_url"])])
            return [b""]
        amount = f"{session['amount_total']} {session['currency'].upper()} (minor units)"
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Fake Stripe Checkout</title></head><body><main>"
            f"<h1>Fake Stripe Checkout</h1><p>{html.escape(amount)}</p>"
            f"<p>Status: {html.escape(session['status'])}</p>"
            f"<form method='post' action='/_fake/checkout/{html.escape(session_id)}/pay'>"
            "<button type='submit'>Pay</button></form>"
            f"<p><a href='{html.escape(session['cancel_url'] or '/')}'>Cancel</a></p>"
            "</main></body></html>"
        )
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--webhook-url", default="")
    parser.add_argument("--webhook-secret", default="")
    args = parser.parse_args(argv)
    fake = FakeStripe(
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        port=args.port,
    )
    print(f"Fake Stripe on {fake.start()} (Ctrl-C to stop)")  # noqa: T201
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
