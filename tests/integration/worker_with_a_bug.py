"""The `streams` command of a build with a bug in a fold (a TypeError, not a bad record) for a
contact named "Bug": its worker must stop without committing (exit 75), to be restarted."""

from __future__ import annotations

import sys
from typing import Any

from streams.agents import contacts
from streams.cli import main
from streams.events import Event
from streams.tables.projection import Tables
from tests.integration.builds import replace_family


def handler(tables: Tables) -> Any:
    handle = contacts.handler(tables)

    def with_bug(event: Event) -> list[dict[str, Any]]:
        if event.body.get("firstName") == "Bug":
            raise TypeError("a bug in the contacts fold")
        return list(handle(event))

    return with_bug


replace_family("contacts", contacts.TYPES, handler)

if __name__ == "__main__":
    sys.exit(main())
