"""Signed webhooks and authorised queries against a worker, as HighLevel and the app send them."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.processes import Worker, http
from tests.integration.services import TEST_PARTITIONS, AblyServer

SIGNING_KEY = Ed25519PrivateKey.generate()  # stands in for HighLevel's key
API_TOKEN = "test-api-token"
JWT_SECRET = "a-test-app-secret-at-least-32-bytes"


def webhook_env(kafka: str, ably: AblyServer) -> dict[str, str]:
    """A worker's environment: this Kafka and Ably, the test signing key, tokens set."""
    public_pem = (
        SIGNING_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return {
        "STREAMS_KAFKA_BOOTSTRAP": kafka,
        "STREAMS_PARTITIONS": str(TEST_PARTITIONS),
        "STREAMS_REPLICATION_FACTOR": "1",
        "GHL_WEBHOOK_ED25519_PUBLIC_KEY": public_pem,
        "ABLY_API_KEY": ably.key,
        "ABLY_ENDPOINT": f"http://{ably.address}",
        "STREAMS_API_TOKEN": API_TOKEN,
        "STREAMS_APP_JWT_SECRET": JWT_SECRET,
    }


def post_webhook(worker: Worker, payload: dict[str, Any], *, sign: bool = True) -> tuple[int, Any]:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        headers["X-GHL-Signature"] = base64.b64encode(SIGNING_KEY.sign(body)).decode()
    return http("POST", f"{worker.url}/webhooks/ghl", body, headers)


def query(worker: Worker, location: str, kind: str, token: str | None = API_TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http("GET", f"{worker.url}/v1/locations/{location}/{kind}", headers=headers)
