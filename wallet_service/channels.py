"""The notifier's channels (adapters): signed webhooks over HTTP (httpx), email over SMTP
(smtplib), or as .eml files when no SMTP server is configured."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.charset import QP, Charset
from email.message import EmailMessage
from email.policy import compat32
from email.utils import formataddr, formatdate, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx

from wallet_service.events import FRAUD_ALERT_TYPES, Event, EventType
from wallet_service.notifier import DeliveryFailed


def signature(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`, one v1 per secret (rotation:
    receivers accept any of them)."""
    signed = str(timestamp).encode() + b"." + body
    macs = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    return ",".join([f"t={timestamp}", *(f"v1={m}" for m in macs)])


class WebhookChannel:
    """POSTs every event as JSON to one URL; any non-2xx answer or a transport error
    (timeout, refused) is a temporary failure, retried with backoff."""

    def __init__(
        self,
        url: str,
        secrets: Sequence[str],
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url, self.secrets, self.clock = url, list(secrets), clock
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    @property
    def name(self) -> str:
        return f"webhook:{self.url}"

    def wants(self, event: Event) -> bool:
        return True

    def deliver(self, event: Event) -> None:
        body = json.dumps(event.body(), sort_keys=True, separators=(",", ":")).encode()
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "Webhook-Id": event.id,
            "Webhook-Timestamp": str(timestamp),
            "Webhook-Signature": signature(self.secrets, timestamp, body),
        }
        try:
            reply = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if not reply.is_success:
            raise DeliveryFailed(f"HTTP {reply.status_code}")


def alert_message(event: Event, *, sender: str, to: Sequence[str], admin_url: str) -> EmailMessage:
    """The fraud team's email about a flagged or blocked transaction."""
    d = event.data
    verb = "blocked" if event.type.value.endswith("blocked") else "flagged for review"
    reasons = "\n".join(f"  - {r['rule_id']}: {r['description']}" for r in d["fraud_reasons"])
    return plain_text_email(
        subject=f"[wallet] {d['transaction_type']} of {d['amount']} {d['currency']} {verb}",
        sender=sender,
        to=to,
        # The event id is the de-duplication key of every message (also in Message-ID).
        message_id=f"<{event.id}@wallet>",
        event=event,
        body=(
            f"Transaction {d['transaction_id']} was {verb}.\n\n"
            f"Type:      {d['transaction_type']}\n"
            f"Amount:    {d['amount']} {d['currency']}\n"
            f"From:      {d['from_username'] or '(outside)'}\n"
            f"To:        {d['to_username'] or '(outside)'}\n"
            f"Decision:  {d['fraud_decision']} (score {d['fraud_score']})\n"
            f"Rule set:  {d['rules_version'] or '(none)'}\n"
            f"Reasons:\n{reasons or '  (none)'}\n\n"
            f"Review it: {admin_url.rstrip('/')}/admin/transactions/{d['transaction_id']}\n"
            f"Event id:  {event.id}\n"
        ),
    )


@dataclass(frozen=True)
class AlertRoute:
    """Who sends the fraud alerts, to whom, and where their "review it" link points."""

    sender: str
    to: tuple[str, ...]
    admin_url: str


def received_message(event: Event, *, sender: str, to: str) -> EmailMessage:
    """A user's own email: money reached them (`transfer.received`)."""
    d = event.data
    return plain_text_email(
        subject=f"[wallet] You received {d['amount']} {d['currency']}",
        sender=sender,
        to=[to],
        message_id=f"<{event.id}.recipient@wallet>",
        event=event,
        body=(
            f"{d['from_username'] or 'Someone'} sent you {d['amount']} {d['currency']}.\n\n"
            f"Transaction: {d['transaction_id']}\n"
            f"Event id:    {event.id}\n"
        ),
    )


def plain_text_email(
    *, subject: str, sender: str, to: Sequence[str], message_id: str, event: Event, body: str
) -> EmailMessage:
    """A UTF-8 text/plain email carrying the event's id and type in its headers. Built with
    the compat32 policy: the default policy parses every header it is given into a
    structured object, which cost ~0.6 CPU-ms per email, as much as a whole transfer's
    write (measured, bench/README.md); these headers are ours and need no parsing. Address
    headers are formatted (a non-ASCII display name is RFC 2047 encoded), other non-ASCII
    values are encoded on output; a line break in any value is refused, as the default
    policy refuses it."""
    headers = {
        "Subject": subject,
        "From": _address(sender),
        "To": ", ".join(_address(a) for a in to),
        "Date": formatdate(localtime=False),
        "Message-ID": message_id,
        "X-Wallet-Event-Id": event.id,
        "X-Wallet-Event-Type": event.type.value,
        "MIME-Version": "1.0",
    }
    msg = EmailMessage(policy=compat32)
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"{name}: header values may not contain line breaks")
        msg[name] = value
    msg.set_payload(body, _UTF8_QP)
    return msg


def _address(text: str) -> str:
    return formataddr(parseaddr(text), charset="utf-8")


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


# -- what an email says (content) and how it leaves (transport) -------------------------


class MailContent(Protocol):
    @property
    def name(self) -> str: ...

    def wants(self, event: Event) -> bool: ...

    def message(self, event: Event) -> EmailMessage: ...


class MailTransport(Protocol):
    def send(self, event_id: str, message: EmailMessage) -> None:
        """Hand `message` over; DeliveryFailed when it was not taken."""


class FraudAlerts:
    """Flag and block alerts to the fraud team's addresses."""

    name = "email:fraud-alerts"

    def __init__(self, route: AlertRoute) -> None:
        self.sender, self.to, self.admin_url = route.sender, list(route.to), route.admin_url

    def wants(self, event: Event) -> bool:
        return bool(self.to) and event.type in FRAUD_ALERT_TYPES

    def message(self, event: Event) -> EmailMessage:
        return alert_message(event, sender=self.sender, to=self.to, admin_url=self.admin_url)


class ReceivedTransfers:
    """`transfer.received` to the recipient, when they gave an email. The address is looked
    up when the event is sent (`email_of(user id)`), so it is never copied into the event
    (which every webhook receives) and a cleared address is honoured."""

    name = "email:recipient"

    def __init__(self, sender: str, email_of: Callable[[str], str | None]) -> None:
        self.sender, self.email_of = sender, email_of

    def _address(self, event: Event) -> str | None:
        user_id = event.data.get("to_user_id")
        return self.email_of(user_id) if user_id else None

    def wants(self, event: Event) -> bool:
        return event.type is EventType.TRANSFER_RECEIVED and self._address(event) is not None

    def message(self, event: Event) -> EmailMessage:
        return received_message(event, sender=self.sender, to=self._address(event) or "")


class EmailChannel:
    """One kind of email (`content`) over one transport."""

    def __init__(self, content: MailContent, transport: MailTransport) -> None:
        self.content, self.transport = content, transport

    @property
    def name(self) -> str:
        return self.content.name

    def wants(self, event: Event) -> bool:
        return self.content.wants(event)

    def deliver(self, event: Event) -> None:
        self.transport.send(event.id, self.content.message(event))


class SmtpTransport:
    """Over SMTP: `smtp://[user:password@]host[:port]` (STARTTLS when offered) or
    `smtps://...` (TLS from the start). 4xx answers, refused connections and timeouts are
    temporary; 5xx answers permanent."""

    def __init__(self, smtp_url: str, *, timeout: float = 10.0) -> None:
        self.url, self.timeout = urlsplit(smtp_url), timeout
        if self.url.scheme not in ("smtp", "smtps") or not self.url.hostname:
            raise ValueError("SMTP_URL must be smtp://host[:port] or smtps://host[:port]")

    def send(self, event_id: str, message: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = min(codes) >= 500
            raise DeliveryFailed(f"recipients refused: {codes}", permanent=permanent) from exc
        except smtplib.SMTPResponseException as exc:
            permanent = exc.smtp_code >= 500
            raise DeliveryFailed(f"SMTP {exc.smtp_code}", permanent=permanent) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc

    def _connect(self) -> smtplib.SMTP:
        host, secure = self.url.hostname or "", self.url.scheme == "smtps"
        port = self.url.port or (465 if secure else 25)
        smtp: smtplib.SMTP
        if secure:
            smtp = smtplib.SMTP_SSL(host, port, timeout=self.timeout)
        else:
            smtp = smtplib.SMTP(host, port, timeout=self.timeout)
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
        if self.url.username:
            smtp.login(unquote(self.url.username), unquote(self.url.password or ""))
        return smtp


class EmlDirectory:
    """Without SMTP_URL: each email as `<event id><suffix>.eml` in a directory (zero
    set-up; a redelivery overwrites the same file)."""

    def __init__(self, directory: Path, suffix: str = "") -> None:
        self.directory, self.suffix = directory, suffix

    def send(self, event_id: str, message: EmailMessage) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{event_id}{self.suffix}.eml"
            path.write_bytes(bytes(message))
        except OSError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc


class SmtpAlertEmail(EmailChannel):
    def __init__(self, smtp_url: str, route: AlertRoute, *, timeout: float = 10.0) -> None:
        super().__init__(FraudAlerts(route), SmtpTransport(smtp_url, timeout=timeout))


class EmlDirectoryAlertEmail(EmailChannel):
    def __init__(self, directory: Path, route: AlertRoute) -> None:
        super().__init__(FraudAlerts(route), EmlDirectory(directory))
