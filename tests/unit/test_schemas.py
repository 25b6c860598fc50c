"""The schema files are valid Draft 2020-12 schemas, their examples match them, every documented
HighLevel type has one, and what each family handler returns for the documented payloads matches
the schema of its derived event."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from schemas import validate
from schemas.catalog import (
    DERIVED_NAMES,
    SCHEMA_DIR,
    derived_schema,
    event_schemas,
    load,
    schema_files,
    webhook_schemas,
)
from schemas.docs import DOCS_PAGE, render
from schemas.validate import (
    DRAFT,
    ably_message_problems,
    check_schema,
    derived_event_problems,
    problems,
)
from streams.app import FAMILIES
from streams.tables.registry import LIVE_TABLES
from tests.unit.events import event

ALL = [p.relative_to(SCHEMA_DIR).as_posix() for p in schema_files()]
# Every type the HighLevel reference (shared/reference/highlevel-webhooks.md §3) lists.
DOCUMENTED_TYPES = {
    *(f"Contact{s}" for s in ("Create", "Update", "Delete", "TagUpdate", "DndUpdate")),
    *(f"Note{s}" for s in ("Create", "Update", "Delete")),
    *(f"Task{s}" for s in ("Create", "Complete", "Delete")),
    "CampaignStatusUpdate",
    "OrderCreate",
    "OrderStatusUpdate",
    "LocationCreate",
    "LocationUpdate",
    *(
        f"Opportunity{s}"
        for s in (
            "Create",
            "Update",
            "Delete",
            "StatusUpdate",
            "StageUpdate",
            "MonetaryValueUpdate",
            "AssignedToUpdate",
        )
    ),
    *(f"Appointment{s}" for s in ("Create", "Update", "Delete")),
    "InboundMessage",
    "OutboundMessage",
    "ConversationUnreadUpdate",
    "LCEmailStats",
    *(f"User{s}" for s in ("Create", "Update", "Delete")),
    "KnowledgeBaseFileChange",
    "KnowledgeBaseTrainedUrlChange",
    *(
        f"Invoice{s}"
        for s in ("Create", "Update", "Sent", "Paid", "PartiallyPaid", "Void", "Delete")
    ),
    *(f"{o}{s}" for o in ("Product", "Price", "Record") for s in ("Create", "Update", "Delete")),
    "ObjectSchemaCreate",
    "ObjectSchemaUpdate",
    *(f"Association{s}" for s in ("Create", "Update", "Delete")),
    "RelationCreate",
    "RelationDelete",
    "VoiceAiCallEnd",
    *("INSTALL", "UNINSTALL", "UPDATE", "PLAN_CHANGE", "APP_PAYMENT_STATUS"),
    *("EXTERNAL_AUTH_CONNECTED", "SaasPlanCreate"),
    *(f"SupportTicket{s}" for s in ("Create", "Update", "Delete")),
}
FIRST_PARTY = {"LocationSettingsUpdated", "QuoteViewed", "QuoteSigned", "QuoteDownloaded"}
BUILT_TODAY = {"new-message", "unread-changed", "payment-received", "revenue-update", "lead-alert"}


@pytest.mark.parametrize("relative", ALL)
def test_each_file_is_a_valid_schema_whose_examples_match_it(relative: str) -> None:
    check_schema(relative)
    for example in load(relative).get("examples", []):
        assert problems(relative, example) == [], example


def test_a_broken_schema_or_one_of_another_draft_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "good.json": {"$schema": DRAFT, "type": "object"},
        "no-draft.json": {"type": "object"},  # read as 2020-12
        "broken.json": {"$schema": DRAFT, "type": "objekt"},
        "draft-07.json": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
    }
    monkeypatch.setattr(validate, "load", files.__getitem__)
    check_schema("good.json")
    check_schema("no-draft.json")
    with pytest.raises(jsonschema_rs.ValidationError):
        check_schema("broken.json")
    with pytest.raises(ValueError, match=r"draft-07\.json: \$schema must be"):
        check_schema("draft-07.json")


def test_a_format_is_checked() -> None:
    # A time that has the pattern of one but is no date-time (month 13): only the format says.
    revenue = next(e for e in derived_events(linked_examples()) if e["name"] == "revenue-update")
    assert derived_event_problems(revenue) == []
    assert derived_event_problems({**revenue, "occurred_at": "2026-13-02T25:00:00Z"}) != []


def test_every_documented_type_has_a_schema_with_an_example() -> None:
    assert set(webhook_schemas()) == DOCUMENTED_TYPES
    assert set(event_schemas()) == FIRST_PARTY
    for kind, schema in {**webhook_schemas(), **event_schemas()}.items():
        assert schema["title"] == kind and schema["examples"], kind


def test_every_family_type_has_a_schema() -> None:
    known = set(webhook_schemas()) | set(event_schemas())
    for family, module in FAMILIES:
        assert set(module.TYPES) <= known, (family, set(module.TYPES) - known)


def test_one_schema_per_derived_event_name() -> None:
    derived = {path.stem for path in (SCHEMA_DIR / "derived").glob("*.json")}
    assert derived == {*DERIVED_NAMES, "common", "envelope", "ably-message"}
    assert load("derived/ably-message.json")["properties"]["name"]["enum"] == list(DERIVED_NAMES)


def test_webhook_schemas_stay_loose_but_check_what_they_declare() -> None:
    unread = "webhooks/ConversationUnreadUpdate.json"
    minimal = {"type": "ConversationUnreadUpdate", "locationId": "L", "id": "c", "new": 1}
    assert problems(unread, minimal) == []  # extra fields are fine
    assert problems(unread, {**minimal, "unreadCount": "3"}) != []  # a wrong type is not
    assert problems(unread, {"type": "ConversationUnreadUpdate", "locationId": "L"}) != []
    assert problems(unread, {**minimal, "type": "InboundMessage"}) != []
    # Price bodies carry their own `type` ("one_time"): no event type is imposed on them.
    assert problems("webhooks/PriceCreate.json", {"type": "one_time", "amount": 5}) == []


def derived_events(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every derived event the families return for `bodies`, folded in order into fresh tables."""
    tables: dict[str, dict[Any, Any]] = {name: {} for name in LIVE_TABLES}
    handlers = [(module.TYPES, module.handler(tables)) for _, module in FAMILIES]
    out = []
    for body in bodies:
        source = event(body)
        for types, handle in handlers:
            if source.type in types:
                out.extend(handle(source))
    return out


def documented_examples() -> list[dict[str, Any]]:
    schemas = [*event_schemas().values(), *webhook_schemas().values()]
    return [example for schema in schemas for example in schema["examples"]]


def linked_examples() -> list[dict[str, Any]]:
    """Documented examples tied together (one location, one contact assigned to a user), so the
    user-channel variants appear too."""
    hooks = webhook_schemas()
    location, contact, user = "ve9EPM428h8vShlRW1KT", "cJAWDskpkJHbRbhAT7bs", "bNl8QNGXhIQJLv8eeASQ"
    [created] = hooks["ContactCreate"]["examples"]
    [inbound] = hooks["InboundMessage"]["examples"]
    [partial] = hooks["InvoicePartiallyPaid"]["examples"]
    [paid] = hooks["InvoicePaid"]["examples"]
    [unread] = hooks["ConversationUnreadUpdate"]["examples"]
    [opportunity] = hooks["OpportunityStatusUpdate"]["examples"]
    [task] = hooks["TaskCreate"]["examples"]
    return [
        {**created, "locationId": location, "id": contact, "assignedTo": user},
        {**inbound, "locationId": location, "contactId": contact, "messageId": "m1"},
        {**unread, "locationId": location, "contactId": contact, "id": inbound["conversationId"]},
        *(
            {**invoice, "altId": location, "contactDetails": {"id": contact}}
            for invoice in (partial, paid)
        ),
        {**opportunity, "locationId": location, "status": "won", "assignedTo": user},
        {**task, "locationId": location, "assignedTo": user},
    ]


def test_what_the_families_derive_from_documented_payloads_matches_the_schemas() -> None:
    produced = derived_events(documented_examples()) + derived_events(linked_examples())
    for item in produced:
        assert derived_event_problems(item) == [], item
        allowed = [c["channel"].split(":")[0] for c in derived_schema(item["name"])["x-channels"]]
        assert item["channel"].split(":")[0] in allowed, item
    # Every event the code builds today came out, on a user channel and a location channel.
    names = {(item["name"], item["channel"].split(":")[0]) for item in produced}
    assert {name for name, _ in names} >= BUILT_TODAY
    assert {("lead-alert", "user"), ("new-message", "user"), ("payment-received", "user")} <= names


def test_the_envelope_refuses_numbers_for_money_and_contact_details_on_location_channels() -> None:
    revenue = next(e for e in derived_events(linked_examples()) if e["name"] == "revenue-update")
    assert derived_event_problems(revenue) == []
    assert derived_event_problems({**revenue, "data": {**revenue["data"], "amount": 12.5}})
    assert derived_event_problems({**revenue, "name": "revenue-updated"})
    assert derived_event_problems({**revenue, "source": {"webhook_id": "w"}})
    lead = {
        "id": "x:0",
        "name": "lead-alert",
        "channel": "location:L",
        "data": {**load("derived/lead-alert.json")["examples"][0], "email": "a@b.co"},
    }
    assert ably_message_problems(lead) != []
    assert ably_message_problems({**lead, "channel": "user:u1"}) == []


def test_docs_events_md_is_generated_from_the_schemas() -> None:
    assert DOCS_PAGE.read_text() == render(), "docs/events.md is stale: run `make docs`"
    page = render()
    for name in DERIVED_NAMES:
        assert f"### `{name}`" in page
    assert "new Ably.Realtime({\n  authCallback" in page and "/v1/realtime/token" in page
