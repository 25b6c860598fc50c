"""FerretDB (a MongoDB-compatible server) through PyMongo's async API, as backfill will use it."""

from __future__ import annotations

import uuid

from pymongo import ASCENDING, AsyncMongoClient


async def test_write_index_and_read_back_oldest_first(mongodb_uri: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongodb_uri)
    collection = client["legacy"][f"webhooks_{uuid.uuid4().hex[:8]}"]
    try:
        docs = [
            {
                "webhookId": f"w{i}",
                "type": "InboundMessage",
                "receivedAt": 1_700_000_000_000 - i,
                "body": {"locationId": "loc-1", "messageId": f"m{i}"},
            }
            for i in range(25)
        ]
        result = await collection.insert_many(docs)
        assert len(result.inserted_ids) == 25
        await collection.create_index([("receivedAt", ASCENDING)])

        cursor = collection.find({"type": "InboundMessage"}).sort("receivedAt", ASCENDING).limit(10)
        oldest = [d["webhookId"] async for d in cursor]
        assert oldest == [f"w{i}" for i in range(24, 14, -1)]
        assert await collection.count_documents({"body.locationId": "loc-1"}) == 25
    finally:
        await collection.drop()
        await client.close()
