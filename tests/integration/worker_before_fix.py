"""The `streams` command of a build with a bug, for the dead-letter test: its payments family
refuses invoices in Kuwaiti dinars. The test dead-letters such an invoice here, "deploys the fix"
(the real `streams` command) and re-drives it."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

from streams import app
from streams.agents import payments
from streams.cli import main
from streams.events import BadRecord, Event
from streams.tables.projection import Tables

BUG = "KWD is not supported yet"


def handler(tables: Tables) -> Any:
    handle = payments.handler(tables)

    def with_bug(event: Event) -> list[dict[str, Any]]:
        if event.body.get("currency") == "KWD":
            raise BadRecord(BUG)
        return list(handle(event))

    return with_bug


# A stand-in module for payments: mypy types FAMILIES as the four real modules.
app.FAMILIES = tuple(  # type: ignore[assignment]
    (name, SimpleNamespace(TYPES=payments.TYPES, handler=handler) if name == "payments" else module)
    for name, module in app.FAMILIES
)

if __name__ == "__main__":
    sys.exit(main())
