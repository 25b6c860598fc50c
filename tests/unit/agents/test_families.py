"""Each family's handler against dict tables: which derived events, on which channels, with
which data, from the documented payload shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from streams.agents import (
    app_lifecycle,
    appointments,
    campaigns,
    email_stats,
    first_party,
    messages,
    opportunities,
    payments,
    tasks,
    users,
)
from streams.agents.reminders import due_reminders
from streams.app import FAMILIES
from streams.events import BadRecord
from streams.routing import partition_for
from streams.tables import reminders
from streams.tables.registry import LIVE_TABLES
from tests.unit.events import event


def live_tables() -> dict[str, dict[Any, Any]]:
    return {name: {} for name in LIVE_TABLES}


def sent(out: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["name"], e["channel"]) for e in out]


def test_every_family_owns_its_types_alone() -> None:
    owners: dict[str, str] = {}
    for family, module in FAMILIES:
        if family == "activity":
            continue  # the feed reads what the other families own, by design
        for kind in module.TYPES:
            if kind == "LocationSettingsUpdated" or kind == "InboundMessage":
                continue  # folded by every projection with local dates; read by two families
            assert kind not in owners, f"{kind} in {owners.get(kind)} and {family}"
            owners[kind] = family
    assert {"OpportunityStageUpdate", "AppointmentDelete", "TaskComplete", "LCEmailStats"} <= set(
        owners
    )
    assert {
        "CampaignStatusUpdate",
        "INSTALL",
        "UserCreate",
        "QuoteViewed",
        "OrderCreate",
        "NoteCreate",
    } <= set(owners)


def opportunity(**fields: Any) -> Any:
    body = {
        "type": "OpportunityStatusUpdate",
        "locationId": "loc-1",
        "id": "opp-1",
        "assignedTo": "u1",
        "contactId": "c1",
        "monetaryValue": 1250.5,
        "name": "Call ann@example.com",
        "pipelineId": "p1",
        "pipelineStageId": "s1",
        "status": "open",
        "dateAdded": "2026-03-01T12:41:02.193Z",
    }
    return event({**body, **fields})


def test_opportunities_tell_the_assignee_of_changes_and_the_location_of_a_first_win() -> None:
    handle = opportunities.handler(live_tables())
    created = handle(opportunity(type="OpportunityCreate"))
    assert sent(created) == [("project-update", "user:u1")]
    assert created[0]["data"] == {
        "location_id": "loc-1",
        "opportunity_id": "opp-1",
        "name": "Call ann@example.com",
        "pipeline_id": "p1",
        "stage_id": "s1",
        "status": "open",
        "monetary_value": "1250.50",
        "contact_id": "c1",
        "assigned_to": "u1",
        "previous_stage_id": None,
        "previous_status": None,
    }
    won = handle(opportunity(status="won"))
    assert sent(won) == [("project-update", "user:u1"), ("project-won", "location:loc-1")]
    assert won[1]["data"]["won_value_today"] == "1250.50" and won[1]["data"]["date"] == "2026-03-01"
    assert "example.com" not in str(won[1]["data"])  # location-wide: addresses masked
    assert handle(opportunity(type="OpportunityUpdate", status="won")) == []


def test_an_unassigned_opportunity_tells_nobody_until_won() -> None:
    handle = opportunities.handler(live_tables())
    assert handle(opportunity(assignedTo=None)) == []


def task(**fields: Any) -> Any:
    body = {
        "type": "TaskCreate",
        "locationId": "loc-1",
        "id": "t1",
        "assignedTo": "u1",
        "title": "Call",
    }
    return event({**body, **fields})


def test_tasks_tell_the_user_a_task_is_created_for_or_moved_to() -> None:
    handle = tasks.handler(live_tables())
    out = handle(task())
    assert sent(out) == [("task-assigned", "user:u1")]
    assert out[0]["data"] == {
        "location_id": "loc-1",
        "task_id": "t1",
        "title": "Call",
        "due_date": None,
        "contact_id": None,
        "assigned_to": "u1",
    }
    assert handle(task()) == []
    assert sent(handle(task(assignedTo="u2"))) == [("task-assigned", "user:u2")]
    assert handle(task(type="TaskComplete")) == []


def outbound(status: str, **fields: Any) -> Any:
    body = {
        "type": "OutboundMessage",
        "locationId": "loc-1",
        "conversationId": "conv-1",
        "messageId": "m-1",
        "messageType": "Email",
        "userId": "u-1",
        "status": status,
        "emailTo": ["a@b.co"],
    }
    return event({**body, **fields})


def test_read_receipts_go_to_the_sender_and_never_move_back() -> None:
    handle = messages.handler(live_tables())
    out = handle(outbound("delivered"))
    assert sent(out) == [("message-status", "user:u-1")]
    assert out[0]["data"] == {
        "location_id": "loc-1",
        "message_id": "m-1",
        "conversation_id": "conv-1",
        "contact_id": None,
        "message_type": "Email",
        "status": "delivered",
        "previous_status": None,
    }
    assert handle(outbound("delivered")) == []  # a redelivery
    assert handle(outbound("sent")) == []  # late
    (read,) = handle(outbound("read"))
    assert (read["data"]["status"], read["data"]["previous_status"]) == ("read", "delivered")
    # A workflow's message has no sender to tell; history tells nobody.
    assert handle(outbound("sent", messageId="m-2", userId=None)) == []
    assert handle(event({**outbound("sent", messageId="m-3").body}, source="backfill")) == []


def test_email_events_go_to_the_location_without_addresses() -> None:
    handle = email_stats.handler(live_tables())
    body = {
        "type": "LCEmailStats",
        "locationId": "loc-1",
        "companyId": "co-1",
        "webhookPayload": {
            "event": "delivered",
            "id": "e1",
            "timestamp": 1772409600,
            "recipient": "a@b.co",
        },
    }
    out = handle(event(body))
    assert sent(out) == [("email-event", "location:loc-1")]
    assert out[0]["data"] == {
        "location_id": "loc-1",
        "email_event_id": "e1",
        "event": "delivered",
        "occurred_at": "2026-03-02T00:00:00Z",
        "date": "2026-03-02",
        "count_today": 1,
    }


def test_quote_viewed_goes_to_the_sales_rep_with_time_on_page() -> None:
    handle = first_party.handler(live_tables())
    body = {
        "type": "QuoteViewed",
        "locationId": "loc-1",
        "quoteId": "q1",
        "quoteName": "Kitchen",
        "salesRepId": "rep",
        "contactId": "c1",
        "timeOnPageSeconds": 95,
        "timestamp": "2026-03-02T10:00:00Z",
    }
    out = handle(event(body))
    assert sent(out) == [("quote-viewed", "user:rep")]
    assert out[0]["data"] == {
        "location_id": "loc-1",
        "quote_id": "q1",
        "quote_name": "Kitchen",
        "contact_id": "c1",
        "sales_rep_id": "rep",
        "viewed_at": "2026-03-02T10:00:00Z",
        "time_on_page_seconds": 95,
        "views": 1,
    }
    assert handle(event({**body, "type": "QuoteSigned"})) == []


def appointment(appointment_id: str, start: datetime, **fields: Any) -> Any:
    return event(
        {
            "type": "AppointmentCreate",
            "locationId": "loc-1",
            "appointment": {
                "id": appointment_id,
                "title": "Visit",
                "assignedUserId": "u1",
                "users": ["u1", "u2"],
                "startTime": start.isoformat(),
                "appointmentStatus": "confirmed",
                **fields,
            },
        }
    )


def test_reminders_fire_once_to_every_user_with_an_id_of_the_appointment_and_start() -> None:
    tables = live_tables()
    handle = appointments.handler(tables)
    start = datetime.now(UTC) + timedelta(minutes=10)
    assert handle(appointment("a1", start)) == []
    tick = SimpleNamespace(partition=0, offset=7)
    lead = timedelta(minutes=15)
    out = due_reminders(tables, 0, 1, datetime.now(UTC), lead, tick)
    assert sent(out) == [("appointment-reminder", "user:u1"), ("appointment-reminder", "user:u2")]
    assert out[0]["data"]["start_time"] == start.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert set(out[0]["data"]) == {
        "location_id",
        "appointment_id",
        "title",
        "start_time",
        "end_time",
        "assigned_user_id",
        "users",
        "contact_id",
        "calendar_id",
        "lead_seconds",
    }
    assert due_reminders(tables, 0, 1, datetime.now(UTC), lead, tick) == []
    # A redelivery after it was sent schedules nothing; a reschedule schedules a new one.
    handle(appointment("a1", start))
    assert due_reminders(tables, 0, 1, datetime.now(UTC), lead, tick) == []
    handle(appointment("a1", start + timedelta(minutes=1)))
    again = due_reminders(tables, 0, 1, datetime.now(UTC), lead, tick)
    assert len(again) == 2 and again[0]["id"] != out[0]["id"]
    # The id depends on the appointment and start, not on the tick that found it due.
    tables[reminders.REMINDERS]["loc-1"]["sent"].clear()
    handle(appointment("a1", start))
    replayed = due_reminders(
        tables, 0, 1, datetime.now(UTC), lead, SimpleNamespace(partition=0, offset=99)
    )
    assert [e["id"] for e in replayed] == [e["id"] for e in out]


def test_a_tick_fires_only_its_own_partitions_reminders() -> None:
    tables = live_tables()
    appointments.handler(tables)(appointment("a1", datetime.now(UTC) + timedelta(minutes=1)))
    mine = partition_for("loc-1", 8)
    other = (mine + 1) % 8
    tick = SimpleNamespace(partition=other, offset=0)
    assert due_reminders(tables, other, 8, datetime.now(UTC), timedelta(minutes=15), tick) == []
    assert due_reminders(tables, mine, 8, datetime.now(UTC), timedelta(minutes=15), tick)


def test_an_uninstalled_location_gets_nothing_but_its_data_still_folds() -> None:
    tables = live_tables()
    lifecycle = app_lifecycle.handler(tables)
    handle = app_lifecycle.unless_uninstalled(tables, tasks.handler(tables))
    lifecycle(event({"type": "INSTALL", "locationId": "loc-1", "companyId": "co-1"}))
    assert sent(handle(task())) == [("task-assigned", "user:u1")]
    lifecycle(event({"type": "UNINSTALL", "locationId": "loc-1"}))
    assert handle(task(id="t2")) == []
    assert set(tables["open_tasks"]["loc-1"]) == {"t1", "t2"}
    appointments.handler(tables)(appointment("a1", datetime.now(UTC) + timedelta(minutes=1)))
    tick = SimpleNamespace(partition=0, offset=0)
    assert due_reminders(tables, 0, 1, datetime.now(UTC), timedelta(minutes=15), tick) == []
    lifecycle(event({"type": "INSTALL", "locationId": "loc-1", "companyId": "co-1"}))
    assert sent(handle(task(id="t3"))) == [("task-assigned", "user:u1")]


@pytest.mark.parametrize(
    ("module", "body", "reason"),
    [
        (campaigns, {"type": "CampaignStatusUpdate", "id": "x"}, "locationId"),
        (users, {"type": "UserCreate", "companyId": "co-1"}, "id"),
        (users, {"type": "LocationCreate", "id": "loc-9"}, "companyId"),
        (payments, {"type": "OrderCreate", "altId": "loc-1", "altType": "location"}, "_id"),
        (payments, {"type": "OrderCreate", "_id": "o1"}, "locationId"),
    ],
)
def test_families_without_projections_still_dead_letter_what_they_cannot_use(
    module: Any, body: dict[str, Any], reason: str
) -> None:
    with pytest.raises(BadRecord, match=reason):
        module.handler(live_tables())(event(body))


def test_documented_campaign_user_order_and_invoice_events_are_accepted_quietly() -> None:
    tables = live_tables()
    for module, body in [
        (
            campaigns,
            {
                "type": "CampaignStatusUpdate",
                "locationId": "loc-1",
                "id": "cmp",
                "status": "active",
            },
        ),
        (users, {"type": "UserCreate", "companyId": "co-1", "id": "u1", "locations": ["loc-1"]}),
        (users, {"type": "LocationUpdate", "companyId": "co-1", "id": "loc-1", "name": "HQ"}),
        (
            payments,
            {
                "type": "OrderCreate",
                "altId": "loc-1",
                "altType": "location",
                "_id": "o1",
                "amount": 150.1,
            },
        ),
        (
            payments,
            {
                "_id": "inv1",
                "status": "sent",
                "amountPaid": 0,
                "altId": "loc-1",
                "altType": "location",
            },
        ),
    ]:
        assert module.handler(tables)(event(body)) == []


def test_a_late_redelivery_of_the_old_start_does_not_bring_its_reminder_back() -> None:
    tables = live_tables()
    handle = appointments.handler(tables)
    start = datetime.now(UTC) + timedelta(minutes=10)
    handle(appointment("a1", start, dateUpdated="2026-03-01T09:00:00Z"))
    handle(appointment("a1", start + timedelta(hours=1), dateUpdated="2026-03-01T10:00:00Z"))
    handle(appointment("a1", start, dateUpdated="2026-03-01T09:00:00Z"))  # retried, late
    pending = tables[reminders.REMINDERS]["loc-1"]["pending"]
    later = (start + timedelta(hours=1)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert pending["a1"]["start_time"] == later
    tick = SimpleNamespace(partition=0, offset=0)
    assert due_reminders(tables, 0, 1, datetime.now(UTC), timedelta(minutes=15), tick) == []


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59"]
)
def test_times_at_the_ends_of_the_calendar_fold_or_dead_letter_never_crash(moment: str) -> None:
    # A local date or UTC of such a time lies outside what datetime can hold (OverflowError);
    # every family must fold it or dead-letter it, never stop the stream.
    tables = live_tables()
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        for _, module in FAMILIES:
            handle = module.handler(tables)
            settings = {"type": "LocationSettingsUpdated", "id": "loc-1", "timezone": zone}
            if "LocationSettingsUpdated" in module.TYPES:
                handle(event({**settings, "locationId": "loc-1"}))
            for kind in sorted(module.TYPES):
                body: dict[str, Any] = {"type": kind, "locationId": "loc-1", "id": "x-1"}
                for name in (
                    "timestamp",
                    "dateAdded",
                    "dateUpdated",
                    "updatedAt",
                    "startTime",
                    "endTime",
                    "dueDate",
                    "completedAt",
                    "lastStatusChangeAt",
                    "createdAt",
                    "issueDate",
                    "date",
                ):
                    body[name] = moment
                body.update(
                    contactId="c-1",
                    conversationId="cv-1",
                    assignedTo="u-1",
                    amountPaid=100,
                    currency="USD",
                    status="paid",
                    _id="i-1",
                    altId="loc-1",
                    altType="location",
                    messageType="SMS",
                    direction="inbound",
                    appointmentStatus="confirmed",
                    calendarId="cal-1",
                    pipelineId="p-1",
                    pipelineStageId="s-1",
                    monetaryValue=10,
                    companyId="co-1",
                )
                if kind == "LCEmailStats":
                    body["webhookPayload"] = {
                        "event": "delivered",
                        "id": "e-1",
                        "timestamp": 253402300799,
                    }
                try:
                    out = handle(event(body))
                except BadRecord:
                    continue
                assert isinstance(out, list), (module, kind)
