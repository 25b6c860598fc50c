"""Derived events: what the app is told, on which Ably channel (see docs/events.md).

Each derived event is `{"id", "name", "channel", "occurred_at", "source": {"webhook_id",
"partition", "offset"}, "data"}`. The id is a digest of the source webhook, the event name and the
channel: a retried or re-emitted publish carries the same id, and Ably drops the repeat.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from typing import Any

from streams.events import Event, occurred_at

__all__ = [
    "ADMIN_CHANNEL",
    "STATE_EVENTS",
    "derived_event",
    "location_channel",
    "location_safe",
    "masked",
    "message_id",
    "preview",
    "state_subject",
    "typing_channel",
    "user_channel",
]

PREVIEW_CHARS = 80
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# `\+?\d[\d\s().-]{6,}\d` written so that it starts with a choice of characters, which the
# regex engine scans for before it tries a match: a third faster on text without a number.
_PHONE = re.compile(r"(?:\+\d|\d)[\d\s().-]{6,}\d")
_PERSONAL_FIELDS = frozenset({"email", "phone", "emailTo", "emailFrom", "from", "to"})
_FREE_TEXT = frozenset({"preview", "name", "body", "subject", "title"})

# State events, by the fields that name their subject: each carries the whole current figure of
# its subject, so a newer one on the same channel makes an older one not yet sent worthless. Under
# Ably's per-channel rate the publisher sends the newer and drops the older (`streams.outbox`).
# Every other event is discrete: delivered once, in order, never dropped.
STATE_EVENTS: dict[str, tuple[str, ...]] = {
    "unread-changed": ("conversation_id",),
    "revenue-update": ("date", "currency"),
    "message-status": ("message_id",),
}


def state_subject(event: dict[str, Any]) -> tuple[Any, ...] | None:
    """The subject a state event states (None for a discrete event)."""
    fields = STATE_EVENTS.get(event["name"])
    if fields is None:
        return None
    data = event["data"]
    return tuple(data.get(field) for field in fields)


# The admin channel: `system-health` each second from every worker; only admins may subscribe.
ADMIN_CHANNEL = "admin:health"


def user_channel(user_id: str) -> str:
    return f"user:{user_id}"


def location_channel(location_id: str) -> str:
    return f"location:{location_id}"


def typing_channel(location_id: str) -> str:
    """Typing indicators, client to client: the location's users publish and subscribe on it;
    the server never does."""
    return f"typing:{location_id}"


def message_id(*parts: str) -> str:
    """An Ably message id that is the same whenever `parts` are: a digest, in the `<base>:<n>`
    form Ably expects of client-supplied ids."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    # base64.urlsafe_b64encode, less its two Python calls (one id per derived event)
    return binascii.b2a_base64(digest[:18], newline=False).translate(_URL_SAFE).decode() + ":0"


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def derived_event(name: str, channel: str, data: dict[str, Any], source: Event) -> dict[str, Any]:
    if channel.startswith("location:"):
        data = location_safe(data)
    return {
        "id": message_id(source.webhook_id, name, channel),
        "name": name,
        "channel": channel,
        "occurred_at": occurred_at(source),
        "source": {
            "webhook_id": source.webhook_id,
            "partition": source.partition,
            "offset": source.offset,
        },
        "data": data,
    }


def preview(text: str) -> str:
    """A message preview: short, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def masked(text: str) -> str:
    """`text` with e-mail addresses and phone numbers masked."""
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    return _PHONE.sub("[phone]", text)


def location_safe(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without e-mail addresses or phone numbers, for location-wide channels: personal
    fields are dropped, and addresses and numbers in free text are masked."""
    safe = {}
    for key, value in data.items():  # one pass: nearly every location event is sent through it
        if key in _PERSONAL_FIELDS:
            continue
        if isinstance(value, str):
            if key in _FREE_TEXT:
                value = masked(value)
        elif isinstance(value, dict):
            value = location_safe(value)
        safe[key] = value
    return safe
