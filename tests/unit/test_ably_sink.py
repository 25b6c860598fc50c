from __future__ import annotations

import base64

from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.ably_sink import AblyRestSink, Outcome, outcomes, retryable_status


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


async def test_batch_publish_with_basic_auth_and_the_next_host_after_a_5xx() -> None:
    seen: list[tuple[str, str, object]] = []

    def server(status: int, body: object) -> web.Application:
        async def messages(request: web.Request) -> web.Response:
            seen.append((request.host, request.headers["Authorization"], await request.json()))
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_post("/messages", messages)
        return app

    failing = TestServer(server(503, {"error": {"code": 50004, "message": "busy"}}))
    working = TestServer(server(201, [{"channel": "a", "messageId": "m1"}]))
    async with failing, working:
        sink = AblyRestSink("app.key:secret", None)
        hosts = [str(failing.make_url("")).rstrip("/"), str(working.make_url("")).rstrip("/")]
        sink.hosts = list(hosts)
        spec = {"channels": "a", "messages": {"id": "m1", "name": "x", "data": "{}"}}
        try:
            first = await sink.publish([spec])
            second = await sink.publish([spec])
        finally:
            await sink.close()
    assert first == [Outcome(False, True, "50004: busy")]
    assert second == [Outcome(True)]
    assert ["http://" + s[0] for s in seen] == hosts
    assert {s[1] for s in seen} == {"Basic " + base64.b64encode(b"app.key:secret").decode()}
    assert seen[1][2] == [spec]


async def test_a_dropped_connection_is_retryable() -> None:
    sink = AblyRestSink("app.key:secret", "http://127.0.0.1:9")  # nothing listens on port 9
    try:
        [outcome] = await sink.publish([{"channels": "a", "messages": {"id": "m1"}}])
    finally:
        await sink.close()
    assert not outcome.delivered and outcome.retryable
