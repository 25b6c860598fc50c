"""Validating instances against the schema files with `jsonschema-rs` (Draft 2020-12, formats
checked), resolving `$ref`s between the files from a registry of them: nothing is fetched (a
`$ref` to no file fails, it is not looked up on the network)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema_rs

from schemas.catalog import BASE_URI, SCHEMA_DIR, load, schema_files

__all__ = ["DRAFT", "ably_message_problems", "check_schema", "derived_event_problems", "problems"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"


@cache
def _registry() -> jsonschema_rs.Registry:
    resources = []
    for path in schema_files():
        relative = path.relative_to(SCHEMA_DIR).as_posix()
        schema = load(relative)
        if schema.get("$id") != BASE_URI + relative:
            raise ValueError(f"{relative}: $id must be {BASE_URI + relative}")
        resources.append((schema["$id"], schema))
    return jsonschema_rs.Registry(resources)


@cache
def _validator(relative: str) -> Any:
    return jsonschema_rs.validator_for(
        load(relative), registry=_registry(), validate_formats=True, offline=True
    )


def check_schema(relative: str) -> None:
    """Raise unless the file is a valid Draft 2020-12 schema (`jsonschema_rs.ValidationError`
    when it is not valid, ValueError when it says it is of another draft)."""
    schema = load(relative)
    if schema.get("$schema", DRAFT) != DRAFT:
        raise ValueError(f"{relative}: $schema must be {DRAFT}")
    jsonschema_rs.meta.validate(schema)


def problems(relative: str, instance: Any) -> list[str]:
    """Why `instance` does not match the schema at `relative`, one line each ([] when it does)."""
    return [
        f"{'/'.join(str(p) for p in error.instance_path) or '(root)'}: {error.message}"
        for error in _validator(relative).iter_errors(instance)
    ]


def derived_event_problems(event: dict[str, Any]) -> list[str]:
    """A record for `streams.derived.v1`, checked against the envelope (which checks `data`
    against the schema named after the event)."""
    return problems("derived/envelope.json", event)


def ably_message_problems(message: dict[str, Any]) -> list[str]:
    """A message as the Ably stand-in stored it (`data` may still be JSON text)."""
    data = message.get("data")
    if message.get("encoding") == "json" and isinstance(data, str):
        data = json.loads(data)
    return problems(
        "derived/ably-message.json",
        {k: message.get(k) for k in ("id", "name", "channel")} | {"data": data},
    )
