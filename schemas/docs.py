"""Generates docs/events.md, the app team's page, from the schema files.

    python -m schemas.docs           # write docs/events.md
    python -m schemas.docs --check   # exit 1 if docs/events.md is not what the schemas give

The page is made from the schemas so it cannot drift from them; a unit test runs the check.
It lives beside the schema files, not in the `streams` package: the product never reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from schemas.catalog import (
    DERIVED_NAMES,
    SCHEMA_DIR,
    derived_schema,
    event_schemas,
    load,
    webhook_schemas,
)
from streams.derived import STATE_EVENTS

__all__ = ["DOCS_PAGE", "main", "render"]

DOCS_PAGE = SCHEMA_DIR.parent / "docs" / "events.md"

_CLIENT = """\
```js
import * as Ably from 'ably'; // ably-js 2.x (2.0.1 or newer under Metro)

// The app user's JWT (HS256; claims sub = the HighLevel user id, locationId, exp), from your login.
const realtime = new Ably.Realtime({
  authCallback: async (_tokenParams, callback) => {
    try {
      const response = await fetch(`${STREAMS_URL}/v1/realtime/token`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${await getAppJwt()}` },
      });
      if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
      callback(null, await response.json()); // a signed TokenRequest; ably-js redeems it
    } catch (error) {
      callback(error, null);
    }
  },
});

const mine = realtime.channels.get(`user:${userId}`);
await mine.subscribe('new-message', (message) => {
  // message.id: the event id (a repeat has the same id); message.data: see below
  showNewMessage(message.data.conversation_id, message.data.preview);
});
const location = realtime.channels.get(`location:${locationId}`);
await location.subscribe('revenue-update', (message) => {
  setRevenue(message.data.date, message.data.currency, message.data.amount); // "1399.90": a string
});
```"""


_TYPING = """\
```js
// Typing indicators go client to client over Ably: the server never sees them. Every user of
// the location may publish and subscribe on `typing:{locationId}`; nobody else may.
const typing = realtime.channels.get(`typing:${locationId}`);
let stopTimer;
function onKeystroke(conversationId) {
  if (!stopTimer) typing.publish('typing', { conversation_id: conversationId, typing: true });
  clearTimeout(stopTimer);
  stopTimer = setTimeout(() => {
    stopTimer = undefined;
    typing.publish('typing', { conversation_id: conversationId, typing: false });
  }, 3000); // stopped typing: 3 s without a keystroke
}
await typing.subscribe('typing', (message) => {
  if (message.clientId === userId) return; // our own
  showTyping(message.clientId, message.data.conversation_id, message.data.typing);
});
```"""


def _resolved(prop: dict[str, Any]) -> dict[str, Any]:
    """A property with its `$ref` into derived/common.json replaced by what it points at."""
    if "$ref" not in prop:
        return prop
    file, _, pointer = prop["$ref"].partition("#")
    target = load(f"derived/{file}")
    for part in pointer.strip("/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}


def _type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " \\| ".join(json.dumps(v) for v in prop["enum"])
    types = prop.get("type", "any")
    names = [types] if isinstance(types, str) else list(types)
    fmt = prop.get("format")
    return " \\| ".join(fmt if fmt and name == "string" else name for name in names)


def _fields(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | meaning |", "|---|---|---|---|"]
    for name, raw in schema.get("properties", {}).items():
        prop = _resolved(raw)
        text = prop.get("description", "").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type(prop)} | {'yes' if name in required else ''} | {text} |")
    return rows


def _json(value: Any) -> list[str]:
    return ["```json", json.dumps(value, indent=2, ensure_ascii=False), "```"]


def _example_channel(template: str) -> str:
    kind = template.split(":")[0]
    return f"{kind}:bNl8QNGXhIQJLv8eeASQ" if kind == "user" else f"{kind}:ve9EPM428h8vShlRW1KT"


def _derived_section(name: str) -> list[str]:
    schema = derived_schema(name)
    channels = schema["x-channels"]
    lines = [f"### `{name}`", ""]
    if schema.get("x-status") == "provisional":
        lines += ["**Provisional**: not produced yet; the fields may still change.", ""]
    lines += [schema["description"], "", "Channels:"]
    lines += [f"- `{c['channel']}`: {c['when']}" for c in channels]
    lines += ["", f"`data` ([schema](../schemas/derived/{name}.json)):", "", *_fields(schema), ""]
    message = {"channel": _example_channel(channels[0]["channel"]), "name": name}
    lines += ["Example message:", "", *_json({**message, "data": schema["examples"][0]}), ""]
    return lines


def render() -> str:
    envelope = load("derived/envelope.json")
    lines = [
        "# Realtime events: channels, names, payloads",
        "",
        "<!-- Generated by `python -m schemas.docs` from schemas/; do not edit by hand. -->",
        "",
        "The app receives derived events over Ably. Every payload has a JSON Schema in",
        "[`schemas/derived/`](../schemas/derived/) (Draft 2020-12); this page is generated from them.",
        "",
        "## Channels",
        "",
        "| channel | who may subscribe | what arrives |",
        "|---|---|---|",
    ]
    for prefix, who in (
        ("user:{userId}", "that user (the token's `sub`)"),
        ("location:{locationId}", "users of that location (also presence)"),
        (
            "admin:health",
            "operators of this deployment (the app JWT's `role` is `admin`): it shows every worker and partition",
        ),
    ):
        kind = prefix.split(":")[0] + ":"
        names = [
            f"`{n}`"
            for n in DERIVED_NAMES
            if any(c["channel"].startswith(kind) for c in derived_schema(n)["x-channels"])
        ]
        lines.append(f"| `{prefix}` | {who} | {', '.join(names)} |")
    lines += [
        "| `typing:{locationId}` | users of that location, who also publish on it (and presence)"
        " | typing indicators from the other users, client to client (see below) |",
        "",
        "Data on `location:` channels never carries e-mail addresses or phone numbers, and message",
        "previews are cut to 80 characters. Money is always a decimal string in major units",
        '(`"12.30"` USD, `"1500"` JPY), never a number. Each message\'s `id` is deterministic, so a',
        "repeat of the same event is dropped by Ably (or can be ignored by id).",
        "",
        "## Getting a token and subscribing (React Native, ably-js)",
        "",
        "The app never holds an Ably key. `POST /v1/realtime/token`, with the app user's JWT as",
        "bearer token, answers a signed Ably TokenRequest for client id `sub`, allowed to subscribe",
        "to `user:{sub}`, to subscribe and enter presence on `location:{locationId}`, to publish,",
        "subscribe and enter presence on `typing:{locationId}` and, only when the JWT's `role` is",
        "`admin`, to subscribe to `admin:health`; valid for an hour; ably-js calls `authCallback`",
        "again before it expires. A 401 means the app JWT is invalid or expired: refresh it before",
        "the next call. Ably refuses anything else the token tries (error 40160).",
        "",
        _CLIENT,
        "",
        "## Under a burst: state events are conflated, discrete events wait their turn",
        "",
        "Ably takes at most 50 messages a second on one channel. The publisher keeps every channel",
        "under that (`STREAMS_ABLY_CHANNEL_RATE`). A *state* event carries the whole current",
        "figure of its subject, so when a newer one of the same subject is waiting for the same",
        "channel, the older is dropped unsent: the app still ends on the final figure. Every other",
        "event is *discrete*: each is delivered once, in order, later rather than never.",
        "",
        "| state event | its subject (a newer one with the same fields replaces a waiting one) |",
        "|---|---|",
        *[
            f"| `{name}` | {', '.join(f'`{f}`' for f in fields)} |"
            for name, fields in STATE_EVENTS.items()
        ],
        "",
        "## Typing indicators (client to client)",
        "",
        _TYPING,
        "",
        "## Events",
        "",
        "| event | channels | when |",
        "|---|---|---|",
    ]
    for name in DERIVED_NAMES:
        schema = derived_schema(name)
        channels = ", ".join(f"`{c['channel']}`" for c in schema["x-channels"])
        status = " (provisional)" if schema.get("x-status") == "provisional" else ""
        lines.append(f"| [`{name}`](#{name}){status} | {channels} | {_summary(schema)} |")
    lines.append("")
    for name in DERIVED_NAMES:
        lines += _derived_section(name)
    lines += [
        "## The record on `streams.derived.v1`",
        "",
        envelope["description"],
        "[Schema](../schemas/derived/envelope.json); the message a subscriber sees is",
        "[`ably-message.json`](../schemas/derived/ably-message.json).",
        "",
        *_fields(envelope),
        "",
        *_json(envelope["examples"][0]),
        "",
        "## Inbound: first-party events and HighLevel webhooks",
        "",
        "First-party events (`POST /v1/events` with the service token, or `RawLog.append_event`):",
        "",
        "| type | required | schema |",
        "|---|---|---|",
    ]
    lines += _inbound_rows("events", event_schemas())
    lines += [
        "",
        "HighLevel webhooks (`POST /webhooks/ghl`): one schema per type. They require only what is",
        "structurally certain and allow any other field, because HighLevel adds fields without",
        "notice and documents fields it does not send. Each carries HighLevel's documented",
        "example, kept as documented (its ids do not fit together); to send webhooks that do,",
        "use [samples/webhooks.jsonl](samples/webhooks.jsonl) with `streams send`.",
        "",
        "| type | required | schema |",
        "|---|---|---|",
    ]
    lines += _inbound_rows("webhooks", webhook_schemas())
    return "\n".join(lines) + "\n"


def _summary(schema: dict[str, Any]) -> str:
    first = schema["description"].split(". ")[0].rstrip(".")
    return first + "."


def _inbound_rows(kind: str, schemas: dict[str, dict[str, Any]]) -> list[str]:
    return [
        f"| `{name}` | {', '.join(f'`{r}`' for r in schema.get('required', [])) or '(none)'} "
        f"| [{name}.json](../schemas/{kind}/{name}.json) |"
        for name, schema in schemas.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    parser.add_argument("--out", type=Path, default=DOCS_PAGE)
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != page:
            print(f"{args.out} is stale: run `python -m schemas.docs`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
