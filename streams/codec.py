"""The one JSON codec (orjson)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["DecodeError", "dumps", "loads", "loads_object"]

DecodeError = orjson.JSONDecodeError


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """JSON bytes; `default` turns values orjson does not know (e.g. BSON types) into ones it does."""
    return orjson.dumps(value, default=default)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def loads_object(data: bytes) -> dict[str, Any]:
    """Decode a JSON object; anything else raises ValueError with the reason."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"body is JSON but not an object (got {type(value).__name__})")
    return value
