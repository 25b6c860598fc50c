"""Derived events: what the app is told, on which Ably channel (see docs/events.md).

Each derived event is `{"id", "name", "channel", "occurred_at", "source": {"webhook_id",
"partition", "offset"}, "data"}`. The id is a digest of the source webhook, the event name and the
channel: a retried or re-emitted publish carries the same id, and Ably drops the repeat.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from streams.events import Event, event_time

__all__ = ["derived_event", "location_channel", "location_safe", "preview", "user_channel"]

PREVIEW_CHARS = 80
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")
_PERSONAL_FIELDS = frozenset({"email", "phone", "emailTo", "emailFrom", "from", "to"})
_FREE_TEXT = frozenset({"preview", "name", "body", "subject", "title"})


def user_channel(user_id: str) -> str:
    return f"user:{user_id}"


def location_channel(location_id: str) -> str:
    return f"location:{location_id}"


def derived_event(name: str, channel: str, data: dict[str, Any], source: Event) -> dict[str, Any]:
    digest = hashlib.sha256(f"{source.webhook_id}\x1f{name}\x1f{channel}".encode()).digest()
    # `<base>:<n>` is the form Ably expects of client-supplied ids.
    message_id = base64.urlsafe_b64encode(digest[:18]).decode() + ":0"
    if channel.startswith("location:"):
        data = location_safe(data)
    return {
        "id": message_id,
        "name": name,
        "channel": channel,
        "occurred_at": event_time(source).isoformat().replace("+00:00", "Z"),
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


def location_safe(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without e-mail addresses or phone numbers, for location-wide channels: personal
    fields are dropped, and addresses and numbers in free text are masked."""
    safe: dict[str, Any] = {}
    for key, value in data.items():
        if key in _PERSONAL_FIELDS:
            continue
        if key in _FREE_TEXT and isinstance(value, str):
            value = _PHONE.sub("[phone]", _EMAIL.sub("[email]", value))
        elif isinstance(value, dict):
            value = location_safe(value)
        safe[key] = value
    return safe
