"""`POST /v1/realtime/token`: a short-lived Ably token request for the mobile app's user.

The app sends its user JWT (HS256, `STREAMS_APP_JWT_SECRET`) as a bearer token. The answer is an
Ably TokenRequest, signed with `ABLY_API_KEY` here so the key never leaves the server, whose
capability is exactly: subscribe on `user:{userId}`, subscribe and presence on
`location:{locationId}`, publish, subscribe and presence on `typing:{locationId}` (typing
indicators go client to client), and, only when the JWT says the user is an admin (`"role":
"admin"`), subscribe on `admin:health`. Mobile clients never hold the API key.
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
from aiohttp import web

from streams.derived import ADMIN_CHANNEL, location_channel, typing_channel, user_channel
from streams.settings import Secret, Settings
from streams.web import json_response, problem

__all__ = [
    "TOKEN_TTL_MS",
    "UserClaims",
    "capability_for",
    "install_realtime_token",
    "token_request",
    "user_claims",
]

log = logging.getLogger(__name__)

TOKEN_TTL_MS = 60 * 60 * 1000


class UserClaims:
    def __init__(self, user_id: str, location_id: str, admin: bool = False) -> None:
        self.user_id, self.location_id, self.admin = user_id, location_id, admin


def user_claims(authorization: str, secret: Secret) -> UserClaims:
    """The verified user of an app JWT; raises `jwt.InvalidTokenError` with the reason."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise jwt.InvalidTokenError("an app user JWT is required as a bearer token")
    claims = jwt.decode(
        token.strip(), secret.reveal(), algorithms=["HS256"], options={"require": ["exp"]}
    )
    user_id = claims.get("sub") or claims.get("userId") or claims.get("user_id")
    location_id = claims.get("locationId") or claims.get("location_id")
    if not isinstance(user_id, str) or not user_id:
        raise jwt.InvalidTokenError("the JWT names no user (sub)")
    if not isinstance(location_id, str) or not location_id:
        raise jwt.InvalidTokenError("the JWT names no location (locationId)")
    return UserClaims(user_id, location_id, admin=claims.get("role") == "admin")


def capability_for(claims: UserClaims) -> dict[str, list[str]]:
    capability = {
        user_channel(claims.user_id): ["subscribe"],
        location_channel(claims.location_id): ["subscribe", "presence"],
        typing_channel(claims.location_id): ["publish", "subscribe", "presence"],
    }
    if claims.admin:
        capability[ADMIN_CHANNEL] = ["subscribe"]
    return capability


def install_realtime_token(web_app: web.Application, settings: Settings) -> None:
    async def realtime_token(request: web.Request) -> web.Response:
        if settings.app_jwt_secret is None or settings.ably_api_key is None:
            return problem(503, "realtime tokens need STREAMS_APP_JWT_SECRET and ABLY_API_KEY")
        try:
            claims = user_claims(request.headers.get("Authorization", ""), settings.app_jwt_secret)
        except jwt.InvalidTokenError as exc:
            return problem(401, f"invalid app token: {exc}")
        return json_response(await token_request(settings.ably_api_key, claims))

    web_app.router.add_post("/v1/realtime/token", realtime_token)


async def token_request(api_key: Secret, claims: UserClaims) -> dict[str, Any]:
    from ably import AblyRest

    key_name, _, key_secret = api_key.reveal().partition(":")
    # Signed locally: no network call.
    async with AblyRest(key=api_key.reveal()) as ably:
        request = await ably.auth.create_token_request(
            token_params={
                "client_id": claims.user_id,
                "capability": capability_for(claims),
                "ttl": TOKEN_TTL_MS,
            },
            key_name=key_name,
            key_secret=key_secret,
        )
    return {k: v for k, v in request.to_dict().items() if v is not None}
