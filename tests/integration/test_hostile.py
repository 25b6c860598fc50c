"""Hostile input against a real worker: property-based fuzzing of the ingress (hypothesis) with
valid traffic interleaved, the realtime token endpoint with forged and broken JWTs and a real Ably
client on the minted token, the API without its bearer token, and secrets in logs and answers."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import jwt
import pytest
from ably import AblyRest
from ably.types.message import Message
from ably.util.exceptions import AblyException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.processes import Worker, http, start_worker, wait_for
from tests.integration.services import AblyServer
from tests.integration.webhooks import (
    API_TOKEN,
    JWT_SECRET,
    post_webhook,
    query,
    record_figures,
    signature,
    webhook_env,
)

MAX_BYTES = 64 * 1024  # a small limit, so "huge" bodies are cheap to send
KNOWN_TYPES = ["ContactCreate", "ContactUpdate", "InboundMessage", "ConversationUnreadUpdate"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def post_raw(worker: Worker, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, Any]:
    """POST with exactly these headers, written to the socket as they are (repeats, control
    characters and non-Latin-1 text included); (0, reason) when nothing answers."""
    head = [b"POST /webhooks/ghl HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    head += [f"{name}: {value}".encode() for name, value in headers]
    head.append(b"Content-Length: %d" % len(body))
    try:
        with socket.create_connection(("127.0.0.1", worker.port), timeout=30) as connection:
            # A server that refuses a body may answer before reading all of it.
            with contextlib.suppress(OSError):
                connection.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        return 0, repr(exc)
    response = b"".join(chunks)
    status_line, _, rest = response.partition(b"\r\n")
    if not status_line.startswith(b"HTTP/1."):
        return 0, response[:200]
    raw = rest.partition(b"\r\n\r\n")[2]
    try:
        return int(status_line.split()[1]), json.loads(raw)
    except ValueError:
        return int(status_line.split()[1]), raw.decode(errors="replace")


def hostile_cases(location: str) -> st.SearchStrategy[tuple[str, bytes, list[tuple[str, str]]]]:
    """(kind, body, headers) of every sort of junk HighLevel's endpoint may be sent."""

    def signed(kind: str, body: bytes) -> tuple[str, bytes, list[tuple[str, str]]]:
        return kind, body, [("X-GHL-Signature", signature(body))]

    wrong_types = st.builds(
        lambda kind, fields, ident: {
            **fields,
            "type": kind,
            "locationId": location,
            # The identifying field is never a usable one: no fuzz case may count as valid data.
            "id": ident,
            "conversationId": ident,
        },
        st.sampled_from(KNOWN_TYPES),
        st.dictionaries(
            st.sampled_from(
                ["assignedTo", "dateAdded", "messageId", "unreadCount", "body", "email", "phone"]
            ),
            json_values,
        ),
        st.none() | st.integers() | st.lists(st.integers(), max_size=2) | st.just(""),
    )
    return st.one_of(
        st.binary(max_size=2000).map(lambda b: signed("random bytes", b)),
        st.binary(min_size=1, max_size=200).map(
            lambda b: signed("invalid UTF-8", b'{"type": "' + b"\xff\xfe" + b + b'"}')
        ),
        st.integers(min_value=600, max_value=50_000).map(
            lambda depth: signed("deep nesting", b"[" * depth + b"]" * depth)
        ),
        st.integers(min_value=100, max_value=900).map(
            lambda depth: signed(
                "deep nesting in an object",
                b'{"type": "Note", "locationId": "%s", "x": %s}'
                % (location.encode(), b"[" * depth + b"]" * depth),
            )
        ),
        st.sampled_from(["1e400", "-1e400", "9" * 400, "123456789012345678901234567890"]).map(
            lambda n: signed(
                "huge number",
                b'{"type": "ConversationUnreadUpdate", "locationId": "%s", "id": 1, '
                b'"unreadCount": %s}' % (location.encode(), n.encode()),
            )
        ),
        wrong_types.map(lambda body: signed("wrong types", json.dumps(body).encode())),
        st.builds(
            # Valid but for a time whose UTC or local date no datetime holds; in a location of
            # its own (with a far-east zone), so it never counts as the valid traffic below.
            lambda kind, moment, n: {
                "type": kind,
                "locationId": f"{location}-far",
                "id": f"far-{n}",
                "contactId": f"far-c{n}",
                "conversationId": f"far-cv{n}",
                "messageId": f"far-m{n}",
                "timezone": "Pacific/Kiritimati",
                "dateAdded": moment,
                "timestamp": moment,
                "startTime": moment,
            },
            st.sampled_from(
                ["LocationSettingsUpdated", "ContactCreate", "InboundMessage", "AppointmentCreate"]
            ),
            st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+14:00"]),
            st.integers(min_value=0, max_value=10**6),
        ).map(lambda body: signed("a time at the calendar's ends", json.dumps(body).encode())),
        st.integers(min_value=MAX_BYTES + 1, max_value=MAX_BYTES * 3).map(
            lambda size: signed("huge body", b'{"x": "' + b"a" * size + b'"}')
        ),
        st.binary(max_size=200).map(lambda b: ("missing signature", b, [])),
        st.tuples(wrong_types, st.text(min_size=1, max_size=60)).map(
            lambda case: (
                "duplicated signature headers",
                json.dumps(case[0]).encode(),
                [
                    ("X-GHL-Signature", case[1]),
                    ("X-GHL-Signature", signature(json.dumps(case[0]).encode())),
                ],
            )
        ),
        st.tuples(wrong_types, st.binary(min_size=1, max_size=20)).map(
            lambda case: (
                "replayed signature, altered body",
                json.dumps(case[0]).encode() + case[1],
                [("X-GHL-Signature", signature(json.dumps(case[0]).encode()))],
            )
        ),
        st.text(max_size=100).map(
            lambda s: (
                "garbage signature",
                b'{"type": "ContactCreate"}',
                [("X-GHL-Signature", s.encode("utf-8", "replace").decode("latin-1"))],
            )
        ),
    )


def hostile_env(kafka_bootstrap: str, ably_server: AblyServer) -> dict[str, str]:
    return webhook_env(kafka_bootstrap, ably_server) | {"STREAMS_WEBHOOK_MAX_BYTES": str(MAX_BYTES)}


def assert_no_secrets_logged(process: Worker, ably_server: AblyServer) -> None:
    # The process's whole log, after all it was sent.
    log = process.log.read_text(errors="replace")
    for secret in (API_TOKEN, JWT_SECRET, ably_server.key.split(":")[1]):
        assert secret not in log


@pytest.fixture
def hostile_worker(kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path) -> Any:
    worker = start_worker(hostile_env(kafka_bootstrap, ably_server), tmp_path / "worker")
    try:
        worker.wait_healthy()
        yield worker
    finally:
        worker.stop()
    assert_no_secrets_logged(worker, ably_server)


@pytest.fixture(params=["worker", "ingress process"])
def front(
    request: pytest.FixtureRequest,
    hostile_worker: Worker,
    kafka_bootstrap: str,
    ably_server: AblyServer,
    tmp_path: Path,
) -> Any:
    """Where webhooks are posted: the worker's own ingress, or `streams ingress` beside it."""
    if request.param == "worker":
        yield hostile_worker
        return
    env = hostile_env(kafka_bootstrap, ably_server)
    ingress = start_worker(env, tmp_path / "ingress", command="ingress")
    try:
        ingress.wait_healthy()
        yield ingress
    finally:
        ingress.stop()
    assert_no_secrets_logged(ingress, ably_server)


def test_fuzzed_ingress_answers_every_request_and_keeps_processing(
    front: Worker, hostile_worker: Worker
) -> None:
    worker, run = hostile_worker, f"f{uuid.uuid4().hex[:6]}"
    location = f"{run}0"
    tried: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    valid = {"contacts": 0, "messages": 0}
    answers: list[Any] = []

    def valid_traffic() -> None:
        n = valid["contacts"]
        contact = {
            "type": "ContactCreate",
            "locationId": location,
            "id": f"{run}-c{n}",
            "dateAdded": "2026-03-02T10:00:00Z",
        }
        message = {
            "type": "InboundMessage",
            "locationId": location,
            "conversationId": f"{run}-conv",
            "messageId": f"{run}-m{n}",
            "dateAdded": "2026-03-02T10:00:00Z",
        }
        assert post_webhook(front, contact)[0] == 200
        assert post_webhook(front, message)[0] == 200
        valid["contacts"] += 1
        valid["messages"] += 1

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=hostile_cases(location))
    def every_request_is_answered(case: tuple[str, bytes, list[tuple[str, str]]]) -> None:
        kind, body, headers = case
        status, answer = post_raw(front, body, headers)
        tried[kind] += 1
        answers.append(answer)
        assert status == 200 or (400 <= status < 500), (kind, status, answer)
        if status != 200:
            # The reason: our JSON `error`, or the HTTP server's own text for a request so
            # malformed (a control character in a header) that it never reaches a handler.
            reason = answer.get("error") if isinstance(answer, dict) else answer
            assert isinstance(reason, str) and reason.strip(), (kind, status, answer)
            refused[kind] += 1
        if sum(tried.values()) % 10 == 0:
            valid_traffic()

    every_request_is_answered()
    for process in (front, worker):
        assert process.process.poll() is None, process.tail()
        assert http("GET", f"{process.url}/healthz")[0] == 200
    # The valid traffic interleaved with the junk was all processed, in the junk's partition.
    assert wait_for(
        lambda: query(worker, location, "leads")[1].get("total") == valid["contacts"], timeout=120
    ), query(worker, location, "leads")
    assert wait_for(
        lambda: (
            query(worker, location, "unread")[1].get("conversations", {}).get(f"{run}-conv")
            == valid["messages"]
        ),
        timeout=120,
    ), query(worker, location, "unread")
    assert not any(
        secret in json.dumps(answer) for answer in answers for secret in (API_TOKEN, JWT_SECRET)
    )
    # Every sort of junk was tried; the ones that can never be valid were all refused.
    assert set(tried) >= {
        "random bytes",
        "huge body",
        "missing signature",
        "wrong types",
        "a time at the calendar's ends",
    }
    for kind in ("missing signature", "huge body", "replayed signature, altered body"):
        assert refused[kind] == tried[kind], (kind, tried, refused)
    record_figures(
        f"ingress fuzzing (hypothesis), posted to the {front.log.parent.name}",
        cases_tried=dict(tried),
        refused_4xx=dict(refused),
        accepted_200={k: tried[k] - refused[k] for k in tried if tried[k] - refused[k]},
        valid_interleaved=2 * valid["contacts"],
        valid_processed=2 * valid["contacts"],
        worker_died=False,
    )


async def test_token_endpoint_refuses_bad_jwts_and_mints_only_the_users_channels(
    hostile_worker: Worker, ably_server: AblyServer
) -> None:
    worker = hostile_worker
    now = int(time.time())
    good = {"sub": "userA", "locationId": "locA", "exp": now + 300}
    bad_tokens = {
        "expired": jwt.encode({**good, "exp": now - 10}, JWT_SECRET, algorithm="HS256"),
        "wrong key": jwt.encode(good, "another-secret-of-at-least-32-bytes!", algorithm="HS256"),
        "alg none": jwt.encode(good, None, algorithm="none"),
        "HS512": jwt.encode(good, JWT_SECRET + "-padding-for-the-hs512-length", algorithm="HS512"),
        "no exp": jwt.encode({"sub": "userA", "locationId": "locA"}, JWT_SECRET),
        "no location": jwt.encode({"sub": "userA", "exp": now + 300}, JWT_SECRET),
        "malformed": "not.a.jwt",
        "garbage": "%%%",
        "truncated": jwt.encode(good, JWT_SECRET, algorithm="HS256")[:-5],
        "empty": "",
    }
    refused = {}
    for name, token in bad_tokens.items():
        status, answer = http(
            "POST", f"{worker.url}/v1/realtime/token", b"", {"Authorization": f"Bearer {token}"}
        )
        refused[name] = status
        assert status == 401 and answer["error"], (name, status, answer)
        assert JWT_SECRET not in json.dumps(answer)
    assert http("POST", f"{worker.url}/v1/realtime/token", b"", {})[0] == 401

    app_jwt = jwt.encode(good, JWT_SECRET, algorithm="HS256")
    status, token_request = http(
        "POST", f"{worker.url}/v1/realtime/token", b"", {"Authorization": f"Bearer {app_jwt}"}
    )
    assert status == 200, token_request
    assert ably_server.key.split(":")[1] not in json.dumps(token_request)

    async def auth_callback(params: Any) -> dict[str, Any]:
        return dict(token_request)  # what the app's authCallback returns

    # A real Ably client on the minted TokenRequest, against the Ably-compatible server. It has
    # no realtime (no subscribe over a connection): the capability the server granted is checked,
    # and every REST operation outside it is refused with 40160.
    client = AblyRest(
        auth_callback=auth_callback,
        endpoint=ably_server.host,
        port=ably_server.port,
        tls=False,
        use_binary_protocol=False,
    )
    denied = {}
    async with client:
        details = await client.auth.authorize()
        granted = {channel: sorted(ops) for channel, ops in dict(details.capability).items()}
        assert granted == {
            "user:userA": ["subscribe"],
            "location:locA": ["presence", "subscribe"],
            "typing:locA": ["presence", "publish", "subscribe"],
        }
        assert details.client_id == "userA"
        # Typing indicators: the location's users publish on its typing channel themselves.
        await client.channels.get("typing:locA").publish(Message(name="typing", data="c1"))
        for channel, operation in (
            ("user:userA", "publish"),
            ("location:locA", "publish"),
            ("user:userB", "publish"),
            ("user:userB", "history"),
            ("location:locB", "history"),
            ("location:locB", "publish"),
            ("typing:locB", "publish"),
            ("admin:health", "publish"),
            ("admin:health", "history"),
        ):
            target = client.channels.get(channel)
            with pytest.raises(AblyException) as refusal:
                if operation == "publish":
                    await target.publish(Message(name="x", data="forged"))
                else:
                    await target.history()
            assert refusal.value.code == 40160, (channel, operation, refusal.value)
            denied[f"{operation} {channel}"] = refusal.value.code
    record_figures(
        "token endpoint",
        bad_jwts_refused_401=refused,
        minted_capability=granted,
        refused_by_ably_server=denied,
    )


def test_api_needs_its_bearer_token_and_serves_no_table_pages(hostile_worker: Worker) -> None:
    worker = hostile_worker
    refused: Counter[str] = Counter()
    for kind in ("revenue", "unread", "leads"):
        for token in (None, "wrong", API_TOKEN + "x", ""):
            status, answer = query(worker, "L1", kind, token=token)
            assert status == 401 and answer["error"], (kind, token, status, answer)
            refused[kind] += 1
        assert query(worker, "L1", kind)[0] == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_TOKEN}"}):
        status, answer = http("POST", f"{worker.url}/v1/events", b'{"type": "X"}', headers)
        assert status == 401, (headers, status, answer)
        refused["/v1/events"] += 1
    for page in ("/table/", "/table/daily_revenue/", "/table/daily_revenue/L1/"):
        status, answer = http("GET", f"{worker.url}{page}")
        assert status == 404, (page, status, answer)
        refused["table pages"] += 1
    record_figures("API without its bearer token, table pages", refused=dict(refused))
