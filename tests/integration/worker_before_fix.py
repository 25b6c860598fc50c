"""The `streams` command of a build with a bug, for the dead-letter test: its payments family
refuses invoices in Kuwaiti dinars. The test dead-letters such an invoice here, "deploys the fix"
(the real `streams` command) and re-drives it."""

from __future__ import annotations

import sys
from typing import Any

from streams.agents import payments
from streams.cli import main
from streams.events import BadRecord, Event
from streams.tables.projection import Tables
from tests.integration.builds import replace_family

BUG = "KWD is not supported yet"


def handler(tables: Tables) -> Any:
    handle = payments.handler(tables)

    def with_bug(event: Event) -> list[dict[str, Any]]:
        if event.body.get("currency") == "KWD":
            raise BadRecord(BUG)
        return list(handle(event))

    return with_bug


replace_family("payments", payments.TYPES, handler)

if __name__ == "__main__":
    sys.exit(main())
