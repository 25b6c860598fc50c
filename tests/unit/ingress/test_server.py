"""`streams ingress` (`streams.ingress.server`): the answers that need no Kafka, and the 503 when
Kafka cannot be reached. Writing to a real broker is tested in tests/integration/test_hostile.py,
which posts the same fuzzed traffic to a worker and to this server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from streams import metrics
from streams.ingress.raw_log import RawLog
from streams.ingress.server import ingress_app
from streams.processes import free_port
from streams.settings import Settings

KEY = ed25519.Ed25519PrivateKey.generate()
PUBLIC_PEM = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings.from_env(
        {
            "GHL_WEBHOOK_ED25519_PUBLIC_KEY": PUBLIC_PEM,
            "STREAMS_API_TOKEN": "service-token",
            "STREAMS_WEBHOOK_MAX_BYTES": "1000",
        }
    )
    raw_log = RawLog(f"127.0.0.1:{free_port()}", timeout=1.0)  # nobody listens there
    async with TestClient(TestServer(ingress_app(settings, raw_log))) as client:
        yield client


def signed(body: bytes) -> dict[str, str]:
    return {"X-GHL-Signature": base64.b64encode(KEY.sign(body)).decode()}


async def test_health_answers_while_the_process_serves(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "reason"),
    [
        ("/webhooks/ghl", b'{"type":"ContactCreate"}', {}, 401, "X-GHL-Signature"),
        (
            "/webhooks/ghl",
            b'{"type":"ContactCreate"}',
            signed(b'{"type":"ContactDelete"}'),
            401,
            "does not match",
        ),
        ("/webhooks/ghl", b"x" * 1001, signed(b"x" * 1001), 413, "larger than 1000 bytes"),
        ("/webhooks/ghl", b"[1, 2]", signed(b"[1, 2]"), 400, "not an object"),
        ("/v1/events", b'{"type":"Custom"}', {}, 401, "bearer token"),
        (
            "/v1/events",
            b'{"type":"InboundMessage","locationId":"L1"}',
            {"Authorization": "Bearer service-token"},
            400,
            "InboundMessage is a HighLevel webhook: POST it signed to /webhooks/ghl",
        ),
        (
            "/v1/events",
            b'{"no":"type"}',
            {"Authorization": "Bearer service-token"},
            400,
            "needs a string `type`",
        ),
    ],
)
async def test_bad_requests_get_a_4xx_with_the_reason(
    client: TestClient,  # type: ignore[type-arg]
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    key = f'streams_ingress_refused_total{{endpoint="{path}",status="{status}"}}'
    before = _counter(key)
    response = await client.post(path, data=body, headers=headers)
    assert response.status == status
    assert reason in (await response.json())["error"]
    assert _counter(key) == before + 1  # /metrics counts each refusal by endpoint and status


def _counter(key: str) -> int:
    found = [line for line in metrics.render().splitlines() if line.startswith(key + " ")]
    return int(found[0].rsplit(" ", 1)[1]) if found else 0


async def test_a_valid_webhook_gets_503_when_kafka_cannot_be_reached(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    body = b'{"type":"ContactCreate","locationId":"L1"}'
    response = await client.post("/webhooks/ghl", data=body, headers=signed(body))
    assert response.status == 503
    assert "unavailable" in (await response.json())["error"]


def test_a_body_limit_the_raw_log_cannot_take_is_refused_at_start() -> None:
    settings = Settings.from_env({"STREAMS_WEBHOOK_MAX_BYTES": str(4 * 1024 * 1024)})
    with pytest.raises(ValueError, match="the raw log takes bodies of at most"):
        ingress_app(settings, RawLog("127.0.0.1:1"))
