"""Builds of the `streams` command that differ from the real one in one family, for the tests
of what a fold's bug does (`python -m tests.integration.worker_before_fix`, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from streams import app
from streams.tables.projection import Tables


def replace_family(name: str, types: Iterable[str], handler: Callable[[Tables], Any]) -> None:
    """The live worker runs `handler` (for `types`) as its family `name` from now on."""
    # A stand-in module: mypy types FAMILIES as the real modules.
    app.FAMILIES = tuple(  # type: ignore[assignment]
        (family, SimpleNamespace(TYPES=types, handler=handler) if family == name else module)
        for family, module in app.FAMILIES
    )
