"""How two versions of a projection differ (their tables as `streams.runtime.changelog`
reads them)."""

from __future__ import annotations

from typing import Any

__all__ = ["differences"]


def differences(name: str, a: dict[Any, Any], b: dict[Any, Any], limit: int = 10) -> list[str]:
    """Up to `limit` readable differences between two versions of table `name`."""
    found = []
    for key in sorted(a.keys() | b.keys(), key=repr):
        if a.get(key) != b.get(key):
            found.append(f"{name}[{key}]: {a.get(key)!r} != {b.get(key)!r}")
            if len(found) == limit:
                break
    return found
