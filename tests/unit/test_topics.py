from __future__ import annotations

from streams.topics import RAW_WEBHOOKS, raw_key


def test_raw_key_prefers_location_then_company_then_alt_id() -> None:
    assert raw_key({"locationId": "L1", "companyId": "C1", "altId": "A1"}) == b"L1"
    assert raw_key({"companyId": "C1", "altId": "A1"}) == b"C1"
    assert raw_key({"altId": "A1", "altType": "location"}) == b"A1"
    assert raw_key({"locationId": "", "companyId": "C1"}) == b"C1"
    assert raw_key({"locationId": 42}) is None
    assert raw_key({}) is None


def test_raw_log_is_kept_forever() -> None:
    assert RAW_WEBHOOKS.name == "ghl.webhooks.v1"
    assert RAW_WEBHOOKS.configs["retention.ms"] == "-1"
    assert RAW_WEBHOOKS.configs["retention.bytes"] == "-1"
