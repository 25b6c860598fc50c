from __future__ import annotations

from streams.ably_sink import Outcome, outcomes, retryable_status


def test_success_statuses_deliver_everything() -> None:
    assert outcomes(201, [[{"channel": "a", "messageId": "x"}]], 2) == [Outcome(True)] * 2


def test_legacy_partial_failure_is_read_per_channel() -> None:
    body = {
        "error": {"code": 40020, "statusCode": 400},
        "batchResponse": [
            {"channel": "a", "messageId": "x"},
            {"channel": "b", "error": {"code": 40160, "statusCode": 401, "message": "denied"}},
            {"channel": "c", "error": {"code": 50000, "statusCode": 500, "message": "oops"}},
        ],
    }
    result = outcomes(400, [body], 3)
    assert result[0].delivered
    assert not result[1].delivered and result[1].retryable  # 401: a key an operator can fix
    assert result[2].retryable and "50000" in result[2].reason


def test_newer_per_spec_shape_is_read_too() -> None:
    items = [
        {"successCount": 1, "failureCount": 0, "results": [{"channel": "a"}]},
        {
            "successCount": 0,
            "failureCount": 1,
            "results": [
                {
                    "channel": "b",
                    "error": {"code": 40010, "statusCode": 400, "message": "bad channel"},
                }
            ],
        },
    ]
    result = outcomes(400, items, 2)
    assert result[0].delivered and not result[1].delivered and not result[1].retryable


def test_whole_request_failure_applies_to_every_spec() -> None:
    result = outcomes(429, [{"error": {"code": 42910, "message": "slow down"}}], 2)
    assert all(not o.delivered and o.retryable and "42910" in o.reason for o in result)


def test_which_statuses_are_retried() -> None:
    assert all(retryable_status(s) for s in (None, 500, 503, 429, 401))
    assert not any(retryable_status(s) for s in (400, 413, 422))
