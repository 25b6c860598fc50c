from __future__ import annotations

import base64
import hashlib
import random
import re

from streams.derived import derived_event, location_safe, masked, message_id, preview
from tests.unit.events import event


def test_ids_are_deterministic_per_webhook_name_and_channel() -> None:
    source = event({"type": "InboundMessage", "locationId": "L"}, webhook_id="w1")
    again = event({"type": "InboundMessage", "locationId": "L"}, webhook_id="w1")
    first = derived_event("new-message", "user:u1", {}, source)
    assert first["id"] == derived_event("new-message", "user:u1", {}, again)["id"]
    assert first["id"] != derived_event("new-message", "location:L", {}, source)["id"]
    assert first["id"] != derived_event("unread-changed", "user:u1", {}, source)["id"]
    assert first["id"].endswith(":0")
    assert first["source"] == {"webhook_id": "w1", "partition": 0, "offset": source.offset}


def test_an_id_is_the_url_safe_base64_of_a_digest_of_its_parts_as_published_before() -> None:
    # Ably drops a repeat by id: ids must not change from one version to the next.
    for parts in (("w1", "new-message", "user:u1"), ("wh-é?>", "activity", "location:~~~")):
        digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
        assert message_id(*parts) == base64.urlsafe_b64encode(digest[:18]).decode() + ":0"
    assert message_id("w1", "new-message", "user:u1") == "avj90uxiAH_Q0mr0xUepEUVV:0"


def test_occurred_at_is_when_the_webhook_says_it_happened_with_its_offset() -> None:
    utc = derived_event(
        "x", "user:u", {}, event({"type": "X", "timestamp": "2026-03-01T10:00:00Z"})
    )
    assert utc["occurred_at"] == "2026-03-01T10:00:00Z"
    paris = event({"type": "X", "dateAdded": "2026-03-01T11:00:00.5+01:00"})
    for _ in range(2):  # worked out once per event, the same every time
        assert (
            derived_event("x", "user:u", {}, paris)["occurred_at"]
            == "2026-03-01T11:00:00.500000+01:00"
        )


def test_location_channels_carry_no_email_or_phone() -> None:
    data = {
        "email": "a@b.com",
        "phone": "+15551234567",
        "preview": "call +1 (555) 123-4567 or a@b.co",
        "date": "2026-03-01",
        "nested": {"phone": "1"},
    }
    safe = derived_event("lead-alert", "location:L", data, event({"type": "X"}))["data"]
    assert "email" not in safe and "phone" not in safe and safe["nested"] == {}
    assert safe["preview"] == "call [phone] or [email]"
    assert safe["date"] == "2026-03-01"
    user = derived_event("lead-alert", "user:u", data, event({"type": "X"}))["data"]
    assert user["email"] == "a@b.com"  # the assigned user may see their contact's details
    assert location_safe({"name": "Ann ann@x.org"}) == {"name": "Ann [email]"}


def test_previews_are_short_and_on_one_line() -> None:
    assert preview("hello\n  there") == "hello there"
    long = preview("x" * 500)
    assert len(long) == 80 and long.endswith("…")


def test_phone_numbers_are_masked_as_the_plain_pattern_would() -> None:
    # The pattern is written for speed; it must mask exactly what `\+?\d[\d\s().-]{6,}\d` does.
    plain = re.compile(r"\+?\d[\d\s().-]{6,}\d")
    draw = random.Random(7)
    for _ in range(20_000):
        text = "".join(draw.choice("a +-().0123456789 \t") for _ in range(draw.randint(0, 30)))
        assert masked(text) == plain.sub("[phone]", text), text
    assert masked("call +1 (555) 123-4567 now") == "call [phone] now"
    assert masked("order 1234567") == "order 1234567"  # seven digits: not a phone number
