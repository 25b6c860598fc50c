"""Reading the schema files: by kind and name, and their shared annotations. No validation here
(see `schemas.validate`), so the docs generator needs nothing beyond the standard library."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_URI",
    "DERIVED_NAMES",
    "SCHEMA_DIR",
    "derived_schema",
    "event_schemas",
    "load",
    "schema_files",
    "webhook_schemas",
]

SCHEMA_DIR = Path(__file__).resolve().parent
# Every `$id` starts here; `.invalid` (RFC 2606) says the address is a name, not a place to fetch.
BASE_URI = "https://streams.invalid/schemas/"
# The event names the app binds (DESIGN.md), in the order the docs list them.
DERIVED_NAMES = (
    "new-message",
    "unread-changed",
    "payment-received",
    "revenue-update",
    "lead-alert",
    "project-update",
    "project-won",
    "appointment-reminder",
    "task-assigned",
    "quote-viewed",
    "email-event",
    "message-status",
    "activity",
    "system-health",
)


def schema_files() -> Iterator[Path]:
    """Every schema file, in a stable order."""
    return iter(sorted(SCHEMA_DIR.rglob("*.json")))


@cache
def load(relative: str) -> dict[str, Any]:
    """The schema at `relative` (e.g. "derived/new-message.json")."""
    value = json.loads((SCHEMA_DIR / relative).read_text())
    if not isinstance(value, dict):
        raise ValueError(f"{relative}: a schema file must hold a JSON object")
    return value


def derived_schema(name: str) -> dict[str, Any]:
    return load(f"derived/{name}.json")


def _top_level(kind: str) -> dict[str, dict[str, Any]]:
    """The schemas directly in `kind/` (not its shared shapes), by title."""
    return {
        path.stem: load(f"{kind}/{path.name}")
        for path in sorted((SCHEMA_DIR / kind).glob("*.json"))
    }


def webhook_schemas() -> dict[str, dict[str, Any]]:
    """HighLevel type -> its schema."""
    return _top_level("webhooks")


def event_schemas() -> dict[str, dict[str, Any]]:
    """First-party event type -> its schema."""
    return _top_level("events")
