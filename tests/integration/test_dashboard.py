"""The live dashboard in a real browser (Debian's Chromium, driven by Playwright) against a worker,
the Kafka broker and the Ably-compatible server: sign in with the app's JWT, see today's figures,
post signed webhooks and see the numbers change without a reload; a user of one location can open
neither another location's dashboard nor the admin channel; an admin sees system health."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

from tests.integration.processes import REPO, Worker, http, start_worker, wait_for
from tests.integration.services import AblyServer
from tests.integration.webhooks import (
    JWT_SECRET,
    ably_messages,
    post_webhook,
    record_figures,
    webhook_env,
)

SCREENSHOT = REPO / ".build" / "dashboard.png"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        await launched.close()


def app_jwt(user: str, location: str, **extra: Any) -> str:
    claims = {"sub": user, "locationId": location, "exp": int(time.time()) + 600, **extra}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def invoice_paid(location: str, invoice: str, amount: str) -> dict[str, Any]:
    return {
        "type": "InvoicePaid",
        "_id": invoice,
        "altId": location,
        "altType": "location",
        "status": "paid",
        "amountPaid": amount,
        "currency": "USD",
        "name": f"Invoice {invoice}",
        "updatedAt": now_iso(),
    }


def contact_created(location: str, contact: str) -> dict[str, Any]:
    return {"type": "ContactCreate", "locationId": location, "id": contact, "dateAdded": now_iso()}


def inbound(location: str, message: str) -> dict[str, Any]:
    return {
        "type": "InboundMessage",
        "locationId": location,
        "conversationId": f"{location}-conv",
        "messageId": message,
        "contactId": f"{location}-c1",
        "body": "Is Friday fine?",
        "messageType": "SMS",
        "dateAdded": now_iso(),
    }


def task_created(location: str, task: str) -> dict[str, Any]:
    return {
        "type": "TaskCreate",
        "locationId": location,
        "id": task,
        "title": f"Send the quote ({task})",
        "assignedTo": "rep-1",
        "dateAdded": now_iso(),
    }


def appointment_booked(location: str, appointment: str) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=1)
    return {
        "type": "AppointmentCreate",
        "locationId": location,
        "appointment": {
            "id": appointment,
            "title": "Site visit",
            "calendarId": "cal-1",
            "contactId": f"{location}-c1",
            "appointmentStatus": "confirmed",
            "assignedUserId": "rep-1",
            "startTime": start.isoformat().replace("+00:00", "Z"),
            "endTime": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        },
    }


async def sign_in(page: Page, worker: Worker, token: str) -> None:
    await page.goto(f"{worker.url}/dashboard")
    await page.fill("#jwt", token)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#status.live", timeout=20_000)


async def figure(page: Page, element: str) -> str:
    return (await page.inner_text(f"#{element}")).strip()


async def changes_within(page: Page, element: str, before: str, deadline: float) -> float:
    """Seconds until the element's text is no longer `before` (at most `deadline`)."""
    started = time.monotonic()
    await page.wait_for_function(
        "([id, before]) => document.getElementById(id).innerText.trim() !== before",
        arg=[element, before],
        timeout=deadline * 1000,
    )
    return time.monotonic() - started


async def test_the_dashboard_signs_in_paints_today_and_stays_live(
    kafka_bootstrap: str, ably_server: AblyServer, browser: Browser, tmp_path: Path
) -> None:
    location = f"d{uuid.uuid4().hex[:8]}"
    worker = start_worker(webhook_env(kafka_bootstrap, ably_server), tmp_path / "worker")
    try:
        worker.wait_healthy()
        for body in (
            invoice_paid(location, "inv-1", "120.50"),
            contact_created(location, f"{location}-c1"),
            appointment_booked(location, "a-1"),
            task_created(location, "t-1"),
        ):
            assert post_webhook(worker, body)[0] == 200

        # A change published after the page's first query but before its stream opened (here: held
        # at the Ably token request until the worker has published it) is on the page all the same.
        async def publish_while_connecting(route: Route) -> None:
            status, _ = await asyncio.to_thread(post_webhook, worker, inbound(location, "m-1"))
            assert status == 200
            published = await asyncio.to_thread(
                wait_for,
                lambda: [
                    m for m in ably_messages(ably_server, location) if m["name"] == "unread-changed"
                ],
                timeout=20,
                interval=0.1,
            )
            assert published, "the worker did not publish the inbound message's unread count"
            await route.continue_()

        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        await page.route("**/requestToken", publish_while_connecting)
        await sign_in(page, worker, app_jwt("rep-1", location))
        await page.unroute("**/requestToken")
        assert await figure(page, "unread") == "1"
        assert await figure(page, "revenue-today") == "120.50USD"
        assert await figure(page, "leads-today") == "1"
        assert await figure(page, "open-tasks") == "1"
        assert "Site visit" in await page.inner_text("#appointments")
        await page.evaluate("window.notReloaded = true")

        # Each webhook moves its number on the open page, without a reload, within a second.
        moved: dict[str, float] = {}
        for element, body, expected in (
            ("revenue-today", invoice_paid(location, "inv-2", "30.25"), "150.75USD"),
            ("leads-today", contact_created(location, f"{location}-c2"), "2"),
            ("unread", inbound(location, "m-2"), "2"),
            ("open-tasks", task_created(location, "t-2"), "2"),
        ):
            before = await figure(page, element)
            assert post_webhook(worker, body)[0] == 200
            moved[element] = await changes_within(page, element, before, deadline=1.0)
            assert await figure(page, element) == expected
        assert await page.evaluate("window.notReloaded") is True
        activity = await page.inner_text("#activity")
        assert "message-received" in activity and "payment" in activity
        assert await page.is_hidden("#health"), "a user who is not an admin sees system health"
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        # An admin of the location also sees every worker's health, each second.
        admin = await browser.new_page(viewport={"width": 1200, "height": 900})
        await sign_in(admin, worker, app_jwt("boss", location, role="admin"))
        await admin.wait_for_selector("#health-rows tr", timeout=10_000)
        cells = (await admin.inner_text("#health-rows tr")).split("\t")
        assert cells[0].endswith(f":{worker.port}"), cells  # the worker's URL
        assert cells[4].endswith(" ms"), cells  # webhook-to-Ably p50 / p99 of the last seconds
        await admin.screenshot(
            path=str(SCREENSHOT.with_name("dashboard-admin.png")), full_page=True
        )
        record_figures("dashboard", seconds_to_change=moved, screenshot=str(SCREENSHOT))
    finally:
        worker.stop()


async def test_nobody_opens_another_locations_dashboard_or_the_admin_channel(
    kafka_bootstrap: str, ably_server: AblyServer, browser: Browser, tmp_path: Path
) -> None:
    worker = start_worker(webhook_env(kafka_bootstrap, ably_server), tmp_path / "worker")
    try:
        worker.wait_healthy()
        mine = app_jwt("rep-1", "loc-mine")
        headers = {"Authorization": f"Bearer {mine}"}
        assert (
            http("GET", f"{worker.url}/v1/locations/loc-mine/dashboard", headers=headers)[0] == 200
        )
        status, answer = http(
            "GET", f"{worker.url}/v1/locations/loc-other/dashboard", headers=headers
        )
        assert status == 401, answer
        forged = jwt.encode(
            {"sub": "x", "locationId": "loc-other", "exp": int(time.time()) + 60},
            "not-the-secret-of-this-deployment-at-all",
            algorithm="HS256",
        )
        status, _ = http(
            "GET",
            f"{worker.url}/v1/locations/loc-other/dashboard",
            headers={"Authorization": f"Bearer {forged}"},
        )
        assert status == 401

        # The page itself: signed in as a user of loc-mine, it shows loc-mine only, and the
        # Ably-compatible server refuses that user's token on the admin and foreign channels.
        page = await browser.new_page()
        await sign_in(page, worker, mine)
        assert (await page.inner_text("#location")).startswith("loc-mine")
        status, request = http(
            "POST", f"{worker.url}/v1/realtime/token", b"", {"Authorization": f"Bearer {mine}"}
        )
        assert status == 200, request
        status, token = http(
            "POST",
            f"http://{ably_server.address}/keys/{urllib.parse.quote(request['keyName'])}/requestToken",
            json.dumps(request).encode(),
            {"Content-Type": "application/json"},
        )
        assert status in (200, 201), token
        refused = {}
        for channel in ("admin:health", "location:loc-other", "typing:loc-other"):
            query = urllib.parse.urlencode(
                {"v": "1.2", "channels": channel, "accessToken": token["token"]}
            )
            status, answer = http("GET", f"http://{ably_server.address}/sse?{query}")
            assert status == 401 and answer["error"]["code"] == 40160, (channel, status, answer)
            refused[channel] = answer["error"]["code"]
        record_figures("dashboard refusals", refused_by_ably_server=refused)
    finally:
        worker.stop()
