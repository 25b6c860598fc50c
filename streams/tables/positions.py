"""How far each family has folded each raw partition: `positions` ("{family}/{partition}" ->
the offset of the last record whose folds were applied).

Why: a worker killed outright (kill -9, OOM) has already written the tables for records whose
offsets it had not committed yet; its successor processes those records again. Folds that set a
value (an unread count) are not idempotent against later folds that add to it (a new message), so
folding a record twice can give a different state and a notification nobody should get. The
positions are committed with the folds' table writes, all or nothing
(`streams.agents.effects`), so a record at or below its family's position was folded already
and is skipped (see DESIGN.md, "store the last processed position with each projection's state").
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

__all__ = ["POSITIONS", "already_folded", "record_folded"]

POSITIONS = "positions"


def _key(family: str, partition: int) -> str:
    return f"{family}/{partition}"


def already_folded(
    positions: MutableMapping[str, Any], family: str, partition: int, offset: int
) -> bool:
    last = positions.get(_key(family, partition))
    return last is not None and offset <= last


def record_folded(
    positions: MutableMapping[str, Any], family: str, partition: int, offset: int
) -> None:
    positions[_key(family, partition)] = offset
