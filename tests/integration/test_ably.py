"""The ably package against the Ably-compatible stand-in: publish, de-duplicate, read back."""

from __future__ import annotations

import uuid

from ably import AblyRest
from ably.types.message import Message

from tests.integration.services import AblyServer


def rest_client(server: AblyServer) -> AblyRest:
    # Plain HTTP allows no Basic auth, so the client exchanges its key for a token first.
    return AblyRest(
        key=server.key,
        use_token_auth=True,
        endpoint=server.host,
        port=server.port,
        tls=False,
        use_binary_protocol=False,
    )


async def test_publish_with_id_then_read_back_once(ably_server: AblyServer) -> None:
    # Not an app channel (user:/location:): the data is not a derived event's.
    channel_name = f"ably-client-test:{uuid.uuid4().hex[:8]}"
    message_id = f"{uuid.uuid4().hex}:0"
    async with rest_client(ably_server) as ably:
        channel = ably.channels.get(channel_name)
        message = Message(name="unread-changed", data={"total": 3}, id=message_id)
        await channel.publish(message)
        # A retried publish with the same id is dropped by the server's idempotency.
        await channel.publish(Message(name="unread-changed", data={"total": 3}, id=message_id))

        history = await channel.history()
        assert [(m.id, m.name, m.data) for m in history.items] == [
            (message_id, "unread-changed", {"total": 3})
        ]
