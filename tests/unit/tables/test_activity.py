from __future__ import annotations

import random
from typing import Any

from streams.tables import activity
from tests.unit.events import event


def tables() -> dict[str, dict[Any, Any]]:
    return {name: {} for name in activity.FOLD.tables}


def fold(state: dict[str, dict[Any, Any]], *bodies: dict[str, Any], **kw: Any) -> list[Any]:
    return [activity.update(state, event(body, **kw)) for body in bodies]


def message(message_id: str, at: str, kind: str = "InboundMessage", **fields: Any) -> Any:
    return {
        "type": kind,
        "locationId": "loc-1",
        "contactId": "c-1",
        "conversationId": "conv-1",
        "messageId": message_id,
        "body": "Call me at +1 555 010 9999 or a@b.co",
        "dateAdded": at,
        **fields,
    }


def newest_first(state: dict[str, dict[Any, Any]], table: str, key: str) -> list[Any]:
    return list(reversed(state[table][key]))  # kept oldest first


def kinds(entries: list[Any]) -> list[str]:
    return [e["kind"] for e in entries]


def test_the_feeds_hold_entries_newest_first_by_when_they_happened() -> None:
    state = tables()
    fold(
        state,
        {
            "type": "ContactCreate",
            "locationId": "loc-1",
            "id": "c-1",
            "firstName": "Ada",
            "lastName": "Byron",
            "dateAdded": "2026-03-01T09:00:00Z",
        },
        message("m1", "2026-03-01T11:00:00Z"),
        {
            "type": "TaskCreate",
            "locationId": "loc-1",
            "id": "t1",
            "title": "Call back",
            "dateAdded": "2026-03-01T10:00:00Z",
        },  # arrives late, no contact (docs issue #332)
        {
            "type": "NoteCreate",
            "locationId": "loc-1",
            "id": "n1",
            "contactId": "c-1",
            "body": "Wants a quote",
            "dateAdded": "2026-03-01T12:00:00Z",
        },
    )
    location = newest_first(state, activity.ACTIVITY_BY_LOCATION, "loc-1")
    assert kinds(location) == ["note-added", "message-received", "task-created", "contact-created"]
    assert [e["at"] for e in location][-1] == "2026-03-01T09:00:00.000Z"
    assert location[-1]["title"] == "Ada Byron"
    contact = newest_first(state, activity.ACTIVITY_BY_CONTACT, "loc-1/c-1")
    assert kinds(contact) == ["note-added", "message-received", "contact-created"]


def test_a_redelivery_or_a_status_update_of_a_message_adds_nothing() -> None:
    state = tables()
    first = event(message("m1", "2026-03-01T11:00:00Z"), webhook_id="w1")
    assert activity.update(state, first) is not None
    assert activity.update(state, first) is None
    status = message("m2", "2026-03-01T11:05:00Z", "OutboundMessage", status="sent")
    assert fold(state, status, {**status, "status": "delivered"})[1] is None
    assert kinds(newest_first(state, activity.ACTIVITY_BY_LOCATION, "loc-1")) == [
        "message-sent",
        "message-received",
    ]


def test_only_the_newest_are_kept() -> None:
    state = tables()
    bodies = [message(f"m{n}", f"2026-03-01T10:{n // 60:02d}:{n % 60:02d}Z") for n in range(120)]
    fold(state, *bodies)
    location = newest_first(state, activity.ACTIVITY_BY_LOCATION, "loc-1")
    contact = newest_first(state, activity.ACTIVITY_BY_CONTACT, "loc-1/c-1")
    assert len(location) == activity.LOCATION_ENTRIES and len(contact) == activity.CONTACT_ENTRIES
    assert (
        location[0]["ref"] == "m119" and contact[-1]["ref"] == f"m{120 - activity.CONTACT_ENTRIES}"
    )
    # Older than everything kept: nothing changes.
    assert fold(state, message("old", "2026-02-01T00:00:00Z"))[0] is None


def test_equal_times_are_ordered_by_id_whatever_the_arrival() -> None:
    for order in (("m1", "m2"), ("m2", "m1")):
        state = tables()
        fold(state, *(message(m, "2026-03-01T11:00:00Z") for m in order))
        assert [e["ref"] for e in newest_first(state, activity.ACTIVITY_BY_LOCATION, "loc-1")] == [
            "m2",
            "m1",
        ]


def test_a_redelivery_of_an_entry_dropped_from_the_feed_changes_nothing() -> None:
    state = tables()
    same_time = [message(f"m{n:03d}", "2026-03-01T11:00:00Z") for n in range(120)]
    fold(state, *same_time)
    kept = list(newest_first(state, activity.ACTIVITY_BY_LOCATION, "loc-1"))
    assert fold(state, same_time[0], same_time[5]) == [None, None]  # both were dropped
    assert newest_first(state, activity.ACTIVITY_BY_LOCATION, "loc-1") == kept


def test_entries_carry_no_contact_details_and_short_previews() -> None:
    state = tables()
    (entry,) = fold(state, message("m1", "2026-03-01T11:00:00Z", body="x" * 500 + " a@b.co"))
    assert entry["title"].endswith("…") and len(entry["title"]) == 80
    (entry,) = fold(state, message("m2", "2026-03-01T11:01:00Z"))
    assert entry["title"] == "Call me at [phone] or [email]"


def test_payments_appointments_and_opportunity_moves_are_named() -> None:
    state = tables()
    entries = fold(
        state,
        {
            "_id": "inv-1",
            "altId": "loc-1",
            "altType": "location",
            "status": "paid",
            "amountPaid": 12.5,
            "currency": "USD",
            "name": "Roof repair",
            "contactDetails": {"id": "c-1"},
            "updatedAt": "2026-03-01T10:00:00Z",
            "type": "InvoicePaid",
        },
        {
            "type": "AppointmentUpdate",
            "locationId": "loc-1",
            "appointment": {
                "id": "a1",
                "contactId": "c-1",
                "title": "Visit",
                "appointmentStatus": "cancelled",
            },
        },
        {
            "type": "OpportunityStatusUpdate",
            "locationId": "loc-1",
            "id": "o1",
            "status": "won",
            "name": "Big deal",
            "contactId": "c-1",
        },
        {
            "type": "OpportunityStatusUpdate",
            "locationId": "loc-1",
            "id": "o1",
            "status": "open",
            "name": "Big deal",
            "contactId": "c-1",
        },
    )
    assert [(e["kind"], e["title"]) for e in entries] == [
        ("payment", "Roof repair: 12.5 USD paid"),
        ("appointment-cancelled", "Visit"),
        ("opportunity-won", "Big deal"),
        ("opportunity-reopened", "Big deal"),
    ]


def test_what_cannot_be_placed_makes_no_entry_and_raises_nothing() -> None:
    state = tables()
    # A time Python cannot bring to UTC reads as no time: the entry is placed when received.
    far = {"type": "NoteCreate", "locationId": "loc-1", "id": "n9", "contactId": "c-1"}
    [placed] = fold(state, {**far, "dateAdded": "9999-12-31T23:59:59-01:00"})
    assert placed is not None and placed["at"] == "2023-11-14T22:13:20.000Z"
    assert fold(state, {"type": "NoteCreate", "id": "n1"}, {"type": "UserCreate", "id": "u"}) == [
        None,
        None,
    ]
    (entry,) = fold(
        state,
        {"type": "InvoicePaid", "altId": "loc-1", "altType": "location", "amountPaid": "twelve"},
    )
    assert entry is not None and entry["title"] is None


def test_a_feed_is_always_the_newest_entries_by_time_and_id_and_never_changed_in_place() -> None:
    # Model: the set of every (time, id) added, sorted, its newest `keep`. Times and ids are drawn
    # from few values, so equal times, ties by id, redeliveries and drops all happen.
    rnd = random.Random(7)
    for _ in range(2000):
        keep = rnd.choice((1, 2, 3, 5, 8))
        feed: list[Any] | None = None
        seen: set[tuple[str, str]] = set()
        for _ in range(rnd.randint(1, 30)):
            entry: Any = {"at": f"2026-03-01T11:00:0{rnd.randint(0, 6)}.000Z"}
            entry["id"] = f"wh-{rnd.randint(0, 12)}"
            before = list(feed or [])
            added = activity.add(feed, entry, keep)
            assert (feed or []) == before  # the old list may still be read: a copy changes
            seen.add((entry["at"], entry["id"]))
            expected = sorted(seen)[-keep:]
            if added is None:
                assert [(e["at"], e["id"]) for e in feed or []] == expected
            else:
                assert [(e["at"], e["id"]) for e in added] == expected
                feed = added
