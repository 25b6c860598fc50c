"""One event of every catalog type through the real broker: each reaches its family and the
derived events it should cause reach the Ably stand-in on the right channels, or it is counted
as a type no family handles, or (broken on purpose) it lands in the dead letters with its reason.
Plus what an uninstall means, and the new queries through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.derived import STATE_EVENTS
from streams.events import event_type
from streams.tables import activity
from tests.integration.processes import REPO, Worker, http, start_worker, wait_for
from tests.integration.services import AblyServer
from tests.integration.test_pipeline import dead_letter_for
from tests.integration.webhooks import API_TOKEN, post_webhook, query, webhook_env

# Documented types no family handles: catalog objects no projection reads (their examples carry
# no `type`; deliveries presumably name the page) and platform events about the app itself.
UNHANDLED = (
    "ProductCreate",
    "PriceCreate",
    "RecordCreate",
    "ObjectSchemaCreate",
    "AssociationCreate",
    "RelationCreate",
    "KnowledgeBaseFileChange",
    "KnowledgeBaseTrainedUrlChange",
    "VoiceAiCallEnd",
    "SupportTicketCreate",
    "SaasPlanCreate",
)
NEW_FAMILIES = (
    "opportunities",
    "appointments",
    "tasks",
    "email_stats",
    "campaigns",
    "app_lifecycle",
    "users",
    "first_party",
)


def first_party(worker: Worker, payload: dict[str, Any]) -> None:
    status, answer = http(
        "POST",
        f"{worker.url}/v1/events",
        json.dumps(payload).encode(),
        {"Authorization": f"Bearer {API_TOKEN}"},
    )
    assert status == 200, answer


def catalog(loc: str, run: str) -> list[dict[str, Any]]:
    """One webhook of every type a family handles, in the documented shapes, for `loc`."""
    rep, rep2 = f"rep{run}", f"rep2{run}"
    opportunity = {
        "locationId": loc,
        "id": "opp1",
        "assignedTo": rep,
        "contactId": "c1",
        "monetaryValue": 100,
        "name": "Roof",
        "pipelineId": "p1",
        "pipelineStageId": "s1",
        "source": "web",
        "status": "open",
        "dateAdded": "2026-03-02T03:00:00.000Z",  # March 1st in New York
    }
    invoice = {
        "_id": "inv1",
        "altId": loc,
        "altType": "location",
        "currency": "USD",
        "total": 250,
        "contactDetails": {"id": "c1", "email": "ann@example.com", "phoneNo": "+15550001111"},
        "updatedAt": "2026-03-02T15:00:00.000Z",
    }
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    appointment = {
        "id": "apt1",
        "title": "Visit",
        "calendarId": "cal1",
        "contactId": "c1",
        "appointmentStatus": "confirmed",
        "assignedUserId": rep,
        "users": [rep],
        "startTime": start.astimezone().isoformat(),
        "endTime": (start + timedelta(hours=1)).astimezone().isoformat(),
    }
    return [
        {
            "type": "InboundMessage",
            "locationId": loc,
            "conversationId": f"conv1{run}",
            "contactId": "c1",
            "messageId": "m1",
            "body": "call me on +1 555 000 1111",
            "messageType": "SMS",
            "dateAdded": "2026-03-02T10:00:00.000Z",
        },
        {
            "type": "OutboundMessage",
            "locationId": loc,
            "conversationId": f"conv1{run}",
            "contactId": "c1",
            "messageId": "m2",
            "body": "sure",
            "userId": rep,
            "direction": "outbound",
        },
        {
            "type": "ConversationUnreadUpdate",
            "locationId": loc,
            "id": f"conv1{run}",
            "contactId": "c1",
            "unreadCount": 0,
            "inbox": False,
            "starred": False,
            "deleted": False,
        },
        {"type": "ContactUpdate", "locationId": loc, "id": "c1", "assignedTo": rep, "tags": ["x"]},
        {"type": "ContactTagUpdate", "locationId": loc, "id": "c1", "tags": ["x", "y"]},
        {
            "type": "ContactDndUpdate",
            "locationId": loc,
            "id": "c1",
            "dnd": True,
            "dndSettings": {"SMS": {"status": "active", "message": "", "code": ""}},
        },
        {"type": "ContactDelete", "locationId": loc, "id": "c-gone"},
        {"type": "NoteCreate", "locationId": loc, "id": "n1", "body": "hi", "contactId": "c1"},
        {"type": "NoteUpdate", "locationId": loc, "id": "n1", "body": "hey", "contactId": "c1"},
        {"type": "NoteDelete", "locationId": loc, "id": "n1", "contactId": "c1"},
        {**invoice, "type": "InvoiceCreate", "status": "draft", "amountPaid": 0},
        {**invoice, "type": "InvoiceUpdate", "status": "draft", "amountPaid": 0},
        {**invoice, "type": "InvoiceSent", "status": "sent", "amountPaid": 0},
        {**invoice, "status": "partially_paid", "amountPaid": 100, "amountDue": 150},  # no type
        {**invoice, "type": "InvoicePaid", "status": "paid", "amountPaid": 250},
        {**invoice, "_id": "inv2", "type": "InvoiceVoid", "status": "void", "amountPaid": 0},
        {**invoice, "_id": "inv2", "type": "InvoiceDelete", "status": "delete", "amountPaid": 0},
        {
            "type": "OrderCreate",
            "altId": loc,
            "altType": "location",
            "_id": "o1",
            "contactId": "c1",
            "status": "pending",
            "currency": "USD",
            "amount": 150.1,
        },
        {
            "type": "OrderStatusUpdate",
            "altId": loc,
            "altType": "location",
            "_id": "o1",
            "status": "completed",
            "currency": "USD",
            "amount": 150.1,
        },
        {**opportunity, "type": "OpportunityCreate"},
        {**opportunity, "type": "OpportunityStageUpdate", "pipelineStageId": "s2"},
        {**opportunity, "type": "OpportunityUpdate", "pipelineStageId": "s2"},  # same change
        {
            **opportunity,
            "type": "OpportunityMonetaryValueUpdate",
            "pipelineStageId": "s2",
            "monetaryValue": 500,
        },
        {
            **opportunity,
            "type": "OpportunityAssignedToUpdate",
            "pipelineStageId": "s2",
            "monetaryValue": 500,
            "assignedTo": rep2,
        },
        {
            **opportunity,
            "type": "OpportunityStatusUpdate",
            "pipelineStageId": "s2",
            "monetaryValue": 500,
            "assignedTo": rep2,
            "status": "won",
        },
        {
            **opportunity,
            "type": "OpportunityDelete",
            "pipelineStageId": "s2",
            "monetaryValue": 500,
            "assignedTo": rep2,
            "status": "won",
        },
        {
            **opportunity,
            "type": "OpportunityCreate",
            "id": "opp2",
            "assignedTo": None,
            "monetaryValue": 99.99,
        },
        {"type": "AppointmentCreate", "locationId": loc, "appointment": appointment},
        {
            "type": "AppointmentUpdate",
            "locationId": loc,
            "appointment": {**appointment, "title": "Visit!"},
        },
        {
            "type": "AppointmentDelete",
            "locationId": loc,
            "appointment": {**appointment, "id": "apt2"},
        },
        {
            "type": "TaskCreate",
            "locationId": loc,
            "id": "t1",
            "assignedTo": rep,
            "title": "Call",
            "dueDate": "2026-03-03T09:00:00.000Z",
        },  # no contactId, no body: as delivered
        {"type": "TaskCreate", "locationId": loc, "id": "t2", "title": "Unassigned"},
        {"type": "TaskComplete", "locationId": loc, "id": "t1", "assignedTo": rep},
        {"type": "TaskDelete", "locationId": loc, "id": "t-none"},
        {
            "type": "LCEmailStats",
            "locationId": loc,
            "companyId": "co1",
            "webhookPayload": {
                "event": "delivered",
                "id": "e1",
                "timestamp": 1772420400,
                "recipient": "ann@example.com",
            },
        },  # 2026-03-02T03:00Z
        {
            "type": "CampaignStatusUpdate",
            "locationId": loc,
            "id": "cmp1",
            "contactId": "c1",
            "status": "active",
            "templateId": "tpl",
            "replied": False,
        },
        {
            "type": "INSTALL",
            "appId": "app",
            "versionId": "v1",
            "installType": "Location",
            "locationId": loc,
            "companyId": "co1",
            "planId": "basic",
        },
        {
            "type": "PLAN_CHANGE",
            "appId": "app",
            "locationId": loc,
            "companyId": "co1",
            "currentPlanId": "basic",
            "newPlanId": "pro",
        },
        {
            "type": "UPDATE",
            "appId": "app",
            "locationId": loc,
            "versionId": "v2",
            "previousVersionId": "v1",
        },
        {
            "type": "APP_PAYMENT_STATUS",
            "appId": "app",
            "locationId": loc,
            "previousStatus": "PENDING",
            "newStatus": "COMPLETE",
        },
        {
            "type": "EXTERNAL_AUTH_CONNECTED",
            "appId": "app",
            "locationId": loc,
            "companyId": "co1",
            "authType": "oauth2",
            "timestamp": "2026-03-02T10:00:00.000Z",
            "webhookId": f"{run}-auth",
        },
        {"type": "UserCreate", "locationId": loc, "id": rep, "firstName": "Rae", "role": "user"},
        {"type": "UserUpdate", "locationId": loc, "id": rep, "firstName": "Rae"},
        {"type": "UserDelete", "locationId": loc, "id": "gone"},
        {"type": "LocationCreate", "id": f"new{run}", "companyId": "co1", "name": "New"},
        {"type": "LocationUpdate", "id": loc, "companyId": "co1", "name": "Renamed"},
    ]


BROKEN = {  # family -> a record it cannot use
    "opportunities": {"type": "OpportunityCreate", "id": "o", "status": "maybe"},
    "appointments": {"type": "AppointmentCreate", "appointment": {"id": "a", "startTime": "soon"}},
    "tasks": {"type": "TaskCreate", "title": "no id"},
    "email_stats": {"type": "LCEmailStats", "webhookPayload": {"event": "x", "timestamp": "now"}},
    "campaigns": {"type": "CampaignStatusUpdate", "status": "active"},
    "app_lifecycle": {"type": "PLAN_CHANGE", "appId": "app"},
    "users": {"type": "UserCreate", "firstName": "no id"},
}


async def test_every_type_reaches_its_family_ably_the_unknown_count_or_the_dead_letters(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    loc, gone = f"F{run}", f"U{run}"
    rep, rep2, rep3 = f"rep{run}", f"rep2{run}", f"rep3{run}"
    env = webhook_env(kafka_bootstrap, ably_server)
    worker = start_worker(env, tmp_path / "worker")
    try:
        worker.wait_healthy()
        first_party(
            worker,
            {"type": "LocationSettingsUpdated", "locationId": loc, "timezone": "America/New_York"},
        )
        contact = {
            "type": "ContactCreate",
            "locationId": loc,
            "id": "c1",
            "assignedTo": rep,
            "email": "ann@example.com",
            "phone": "+15550001111",
            "name": "Ann",
            "dateAdded": "2026-03-02T03:00:00.000Z",
        }
        assert post_webhook(worker, contact)[0] == 200
        # Other families read the contact's assignment as it stands when they get there.
        assert wait_for(lambda: query(worker, loc, "leads")[1].get("total") == 1)
        for payload in catalog(loc, run):
            status, answer = post_webhook(worker, payload)
            assert status == 200, (payload, answer)
        for kind in ("QuoteViewed", "QuoteSigned", "QuoteDownloaded"):
            first_party(
                worker,
                {
                    "type": kind,
                    "locationId": loc,
                    "quoteId": "q1",
                    "quoteName": "Kitchen",
                    "salesRepId": rep,
                    "contactId": "c1",
                    "timeOnPageSeconds": 95,
                    "timestamp": "2026-03-02T10:00:00Z",
                },
            )
        for kind in UNHANDLED:
            assert post_webhook(worker, {"type": kind, "locationId": loc, "id": "x"})[0] == 200
        for family, body in BROKEN.items():
            payload = {**body, "locationId": loc, "webhookId": f"{run}-broken-{family}"}
            assert post_webhook(worker, payload)[0] == 200
        first_party(
            worker,
            {"type": "QuoteViewed", "locationId": loc, "webhookId": f"{run}-broken-first_party"},
        )

        # Uninstalled: its data still folds, but nothing is sent until it is installed again.
        lifecycle = {"appId": "app", "locationId": gone, "companyId": "co1"}
        task = {"type": "TaskCreate", "locationId": gone, "assignedTo": rep3, "title": "Quietly"}
        # (Each family is its own agent: the registry must have the change before the task.)
        for payload in ({**lifecycle, "type": "INSTALL"}, {**lifecycle, "type": "UNINSTALL"}):
            assert post_webhook(worker, payload)[0] == 200
        assert wait_for(lambda: query(worker, gone, "registry")[1].get("installed") is False)
        assert post_webhook(worker, {**task, "id": "quiet"})[0] == 200
        assert wait_for(lambda: query(worker, gone, "tasks")[1].get("total") == 1)
        assert post_webhook(worker, {**lifecycle, "type": "INSTALL"})[0] == 200
        assert wait_for(lambda: query(worker, gone, "registry")[1].get("notifies") is True)
        assert post_webhook(worker, {**task, "id": "heard"})[0] == 200

        expected = Counter(
            {
                ("lead-alert", f"location:{loc}"): 1,
                ("lead-alert", f"user:{rep}"): 1,
                ("new-message", f"location:{loc}"): 1,
                ("new-message", f"user:{rep}"): 1,
                ("unread-changed", f"location:{loc}"): 2,
                ("unread-changed", f"user:{rep}"): 2,
                ("payment-received", f"location:{loc}"): 2,
                ("payment-received", f"user:{rep}"): 2,
                ("revenue-update", f"location:{loc}"): 2,
                ("project-update", f"user:{rep}"): 3,
                ("project-update", f"user:{rep2}"): 3,
                ("project-won", f"location:{loc}"): 1,
                ("task-assigned", f"user:{rep}"): 1,
                ("task-assigned", f"user:{rep3}"): 1,
                ("email-event", f"location:{loc}"): 1,
                ("quote-viewed", f"user:{rep}"): 1,
                # One feed entry per activity webhook to the location, bad ones included (their
                # families say why; HighLevel did say it happened); the uninstalled location's
                # quiet task tells nobody, the task after it is installed again does.
                ("activity", f"location:{loc}"): sum(
                    1
                    for body in (contact, *catalog(loc, run), *BROKEN.values())
                    if event_type(body) in activity.TYPES
                ),
                ("activity", f"location:{gone}"): 1,
            }
        )
        ours = {f"location:{loc}", f"location:{gone}", *(f"user:{u}" for u in (rep, rep2, rep3))}

        def received() -> tuple[Counter[tuple[str, str]], list[dict[str, Any]]]:
            status, messages = http("GET", f"http://{ably_server.address}/_standin/messages")
            assert status == 200, messages
            mine = [m for m in messages if m["channel"] in ours]
            return Counter((m["name"], m["channel"]) for m in mine), mine

        def as_expected() -> bool:
            # State events may be conflated on a busy channel (a newer one replaced a waiting
            # one): at least one of each arrives, never more than were derived; the rest exactly.
            got = received()[0]
            return all(
                1 <= got[key] <= n if key[0] in STATE_EVENTS else got[key] == n
                for key, n in expected.items()
            ) and set(got) <= set(expected)

        assert wait_for(as_expected, 60), {
            "missing": expected - received()[0],
            "extra": received()[0] - expected,
        }
        for message in received()[1]:
            if message["channel"].startswith("location:"):
                assert "@example.com" not in message["data"], message
                assert "000 1111" not in message["data"], message  # no phone numbers, even in text
        quote = next(json.loads(m["data"]) for m in received()[1] if m["name"] == "quote-viewed")
        assert quote["time_on_page_seconds"] == 95 and quote["quote_id"] == "q1"
        won = next(json.loads(m["data"]) for m in received()[1] if m["name"] == "project-won")
        assert (won["date"], won["monetary_value"]) == ("2026-03-01", "500.00")

        # Types no family handles are counted; every new family processed its records.
        def metrics() -> str:
            return str(http("GET", f"{worker.url}/metrics")[1])

        for kind in UNHANDLED:
            assert wait_for(
                lambda k=kind: f'streams_unknown_types_total{{type="{k}"}}' in metrics()
            )
        for family in NEW_FAMILIES:
            assert f'streams_records_total{{family="{family}"}}' in metrics(), family
        for family in (*BROKEN, "first_party"):
            dead = await dead_letter_for(kafka_bootstrap, f"{run}-broken-{family}")
            assert dead["family"] == family.encode() and dead["error"], (family, dead)

        # The new queries.
        pipeline = {
            "location_id": loc,
            "from": None,
            "to": None,
            "stages": [
                {"pipeline_id": "p1", "stage_id": "s1", "open_count": 1, "open_value": "99.99"}
            ],
            "open_count": 1,
            "open_value": "99.99",
            "won": [{"date": "2026-03-01", "value": "500.00"}],
            "won_total": "500.00",
        }
        assert query(worker, loc, "pipeline") == (200, pipeline)
        cli = subprocess.run(
            [str(REPO / ".venv/bin/streams"), "query", "pipeline", "--location", loc, "--json"],
            env={**env, "STREAMS_WEB_PORT": str(worker.port), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == pipeline
        tasks = query(worker, loc, "tasks")[1]
        assert tasks["total"] == 1 and tasks["unassigned"][0]["task_id"] == "t2"
        assert query(worker, gone, "tasks")[1]["assignees"] == {
            rep3: [
                {"task_id": "heard", "title": "Quietly", "due_date": None, "contact_id": None},
                {"task_id": "quiet", "title": "Quietly", "due_date": None, "contact_id": None},
            ]
        }
        emails = query(worker, loc, "email_stats")[1]
        assert emails["days"] == [{"date": "2026-03-01", "event": "delivered", "count": 1}]
        registry = query(worker, loc, "registry")[1]
        assert (registry["installed"], registry["plan_id"], registry["timezone"]) == (
            True,
            "pro",
            "America/New_York",
        )
        upcoming = query(worker, loc, "appointments")[1]
        assert [a["title"] for a in upcoming["users"][rep]] == ["Visit!"]
    finally:
        worker.stop()
