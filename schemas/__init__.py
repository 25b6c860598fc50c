"""The JSON Schemas of the project's public contract, and the code that reads them.

- `webhooks/`: one schema per HighLevel webhook type (`shapes/` holds the shapes they share);
- `events/`: first-party events other services put on the raw log;
- `derived/`: one schema per derived event's `data`, named after the event, plus the record on
  `streams.derived.v1` (`envelope.json`) and the message an Ably subscriber sees
  (`ably-message.json`).

The schema files are the source of truth: `python -m schemas.docs` generates docs/events.md from
them, and the tests check the derived events the code produces against them. The product itself
does not validate at run time (the folds check what they use, and a record they cannot use goes to
the dead letters), so `jsonschema-rs` is a development dependency only (`schemas.validate`).
"""
