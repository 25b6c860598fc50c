"""The one JSON codec (orjson)."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["DecodeError", "dumps", "loads", "loads_object"]

DecodeError = orjson.JSONDecodeError


# orjson's own functions, not wrapped: every table key and value goes through them.
# `dumps(value, default=f)`: f turns what orjson does not know (e.g. BSON types) into JSON.
dumps = orjson.dumps
loads = orjson.loads


def loads_object(data: bytes) -> dict[str, Any]:
    """Decode a JSON object; anything else raises ValueError with the reason."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"body is JSON but not an object (got {type(value).__name__})")
    return value
