from __future__ import annotations

import json

import pytest

from streams.send import read_webhooks


def test_one_object_an_array_or_json_lines() -> None:
    assert read_webhooks('{"type": "A"}\n') == [b'{"type": "A"}']
    assert [json.loads(b) for b in read_webhooks('[{"type": "A"}, {"type": "B"}]')] == [
        {"type": "A"},
        {"type": "B"},
    ]
    # Lines are sent as their exact bytes: the signature covers what HighLevel would send.
    assert read_webhooks('{"type":"A", "x": 1}\n\n{"type":"B"}\n') == [
        b'{"type":"A", "x": 1}',
        b'{"type":"B"}',
    ]
    assert read_webhooks("  \n") == []


def test_what_is_not_a_json_object_is_named() -> None:
    with pytest.raises(ValueError, match="line 2 is not a JSON object"):
        read_webhooks('{"type": "A"}\n[1]\n')
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        read_webhooks("{nope\n")
    with pytest.raises(ValueError, match="other than JSON objects"):
        read_webhooks("[1, 2]")


def test_the_samples_cover_every_webhook_family_and_match_their_schemas() -> None:
    from schemas.validate import problems
    from streams.app import FAMILIES
    from streams.events import event_type
    from streams.settings import REPO_ROOT

    bodies = [
        json.loads(b)
        for b in read_webhooks((REPO_ROOT / "docs" / "samples" / "webhooks.jsonl").read_text())
    ]
    kinds = {event_type(body) for body in bodies}
    for body in bodies:
        assert problems(f"webhooks/{event_type(body)}.json", body) == [], body
    families = {name for name, module in FAMILIES if kinds & set(module.TYPES)}
    # first_party takes first-party events (POST /v1/events), not HighLevel webhooks
    assert families == {name for name, _ in FAMILIES} - {"first_party"}
