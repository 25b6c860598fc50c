from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.realtime_token import (
    capability_for,
    install_realtime_token,
    token_request,
    user_claims,
)
from streams.settings import Secret, Settings

SECRET = Secret("a-test-secret-of-at-least-32-bytes!!")


def bearer(claims: dict[str, object], key: str = SECRET.reveal()) -> str:
    return "Bearer " + jwt.encode(claims, key, algorithm="HS256")


def valid_claims() -> dict[str, object]:
    return {"sub": "userA", "locationId": "locA", "exp": int(time.time()) + 300}


def test_a_valid_app_jwt_names_the_user_and_location() -> None:
    claims = user_claims(bearer(valid_claims()), SECRET)
    assert (claims.user_id, claims.location_id) == ("userA", "locA")
    assert capability_for(claims) == {
        "user:userA": ["subscribe"],
        "location:locA": ["subscribe", "presence"],
        "typing:locA": ["publish", "subscribe", "presence"],
    }


def test_only_an_admin_gets_the_admin_channel() -> None:
    admin = user_claims(bearer({**valid_claims(), "role": "admin"}), SECRET)
    assert capability_for(admin)["admin:health"] == ["subscribe"]
    for role in ("user", "Admin", None, ["admin"]):
        claims = user_claims(bearer({**valid_claims(), "role": role}), SECRET)
        assert "admin:health" not in capability_for(claims)


def unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"Bearer {part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        bearer({**valid_claims(), "exp": int(time.time()) - 10}),  # expired
        bearer(valid_claims(), key="another-secret-of-at-least-32-bytes"),  # wrong key
        unsigned(valid_claims()),  # alg: none
        bearer({"sub": "userA", "locationId": "locA"}),  # no expiry
        bearer({**valid_claims(), "locationId": ""}),  # no location
    ],
)
def test_bad_app_tokens_are_refused(authorization: str) -> None:
    with pytest.raises(jwt.InvalidTokenError):
        user_claims(authorization, SECRET)


async def test_the_token_request_carries_exactly_the_capability() -> None:
    claims = user_claims(bearer(valid_claims()), SECRET)
    request = await token_request(Secret("app.key:keysecret"), claims)
    assert request["keyName"] == "app.key" and request["clientId"] == "userA"
    minted = {channel: sorted(ops) for channel, ops in json.loads(request["capability"]).items()}
    assert minted == {channel: sorted(ops) for channel, ops in capability_for(claims).items()}
    assert request["ttl"] <= 3600 * 1000 and request["mac"]
    assert "keysecret" not in json.dumps(request)


def token_app(environ: dict[str, str]) -> web.Application:
    web_app = web.Application()
    install_realtime_token(web_app, Settings.from_env(environ))
    return web_app


CONFIGURED = {"STREAMS_APP_JWT_SECRET": SECRET.reveal(), "ABLY_API_KEY": "app.key:keysecret"}


@pytest.mark.parametrize(
    ("environ", "authorization", "status", "reason"),
    [
        ({}, bearer(valid_claims()), 503, "STREAMS_APP_JWT_SECRET and ABLY_API_KEY"),
        (CONFIGURED, "", 401, "invalid app token"),
        (
            CONFIGURED,
            bearer(valid_claims(), key="another-secret-of-at-least-32-bytes"),
            401,
            "invalid app token",
        ),
    ],
)
async def test_the_endpoint_refuses_with_the_reason(
    environ: dict[str, str], authorization: str, status: int, reason: str
) -> None:
    async with TestClient(TestServer(token_app(environ))) as client:
        response = await client.post("/v1/realtime/token", headers={"Authorization": authorization})
        assert response.status == status
        assert reason in (await response.json())["error"]


async def test_the_endpoint_answers_a_token_request_for_the_user() -> None:
    async with TestClient(TestServer(token_app(CONFIGURED))) as client:
        response = await client.post(
            "/v1/realtime/token", headers={"Authorization": bearer(valid_claims())}
        )
        assert response.status == 200
        request = await response.json()
        assert request["keyName"] == "app.key" and request["clientId"] == "userA"
