"""Appending to the raw log, `ghl.webhooks.v1`: the exact body bytes, metadata in headers.

`RawLog` is also the producer API other Python services import to put first-party events on the
log (`await raw_log.append_event({...})`). Writes go through an idempotent producer with
`acks=all`; `append` returns only once Kafka acknowledged the record, and raises
`KafkaUnavailable` when it could not within the timeout, so the caller can answer 503.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from streams.codec import dumps
from streams.errors import StreamsError
from streams.events import record_headers
from streams.topics import RAW_WEBHOOKS, RECORD_MAX_BYTES, raw_key

__all__ = ["Incoming", "KafkaUnavailable", "RawLog"]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A body on its way into the raw log, with what is known of it besides the body."""

    body: bytes
    payload: dict[str, Any]
    received_at: int | None = None  # epoch ms; now when unknown
    kind: str | None = None  # the event type, when the body does not say
    webhook_id: str | None = None


class KafkaUnavailable(StreamsError, RuntimeError):
    """Kafka did not acknowledge the write in time; nothing may be assumed written."""


class RawLog:
    def __init__(self, bootstrap: str, *, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def append(
        self,
        body: bytes,
        payload: dict[str, Any],
        *,
        source: str,
        signature: str,
        received_at: int | None = None,
    ) -> RecordMetadata:
        """Write `body` (the exact bytes of `payload`) and wait for Kafka's acknowledgement."""
        # The path of every webhook: one deadline, no task or gathering future of its own.
        producer = await self._started()
        item = Incoming(body, payload, received_at)
        try:
            async with asyncio.timeout(self.timeout):
                return await (await self._send(producer, item, source, signature, _now_ms()))
        except Exception as exc:
            raise KafkaUnavailable(f"Kafka did not acknowledge the write: {exc!r}") from exc

    async def append_many(
        self, items: list[Incoming], *, source: str, signature: str, timeout: float | None = None
    ) -> list[RecordMetadata]:
        """Write many records, in order, pipelined; return once Kafka acknowledged them all.
        The whole write is bounded by `timeout` (default: three times the producer's)."""
        producer = await self._started()
        now = _now_ms()
        try:
            async with asyncio.timeout(timeout or self.timeout * 3):
                # Enqueue one by one (keeps log order), then wait for all acknowledgements.
                pending = [await self._send(producer, i, source, signature, now) for i in items]
                return list(await asyncio.gather(*pending))
        except Exception as exc:
            raise KafkaUnavailable(f"Kafka did not acknowledge the write: {exc!r}") from exc

    @staticmethod
    async def _send(
        producer: AIOKafkaProducer, item: Incoming, source: str, signature: str, now: int
    ) -> asyncio.Future[RecordMetadata]:
        """Enqueue `item`; the future of its acknowledgement."""
        return await producer.send(
            RAW_WEBHOOKS.name,
            item.body,
            key=raw_key(item.payload),
            headers=record_headers(
                item.payload,
                item.body,
                source=source,
                signature=signature,
                received_at=item.received_at or now,
                kind=item.kind,
                webhook=item.webhook_id,
            ),
        )

    async def append_event(
        self, payload: dict[str, Any], *, source: str = "live"
    ) -> RecordMetadata:
        """Write a first-party event (a trusted producer, so no signature)."""
        return await self.append(dumps(payload), payload, source=source, signature="trusted")

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> RawLog:
        await self._started()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=0,  # nothing waits on a timer: aiokafka batches what queues meanwhile
                    request_timeout_ms=int(self.timeout * 1000),
                    max_request_size=RECORD_MAX_BYTES,
                )
                try:
                    await asyncio.wait_for(producer.start(), self.timeout)
                except Exception as exc:
                    await producer.stop()
                    raise KafkaUnavailable(
                        f"cannot reach Kafka at {self.bootstrap}: {exc!r}"
                    ) from exc
                self._producer = producer
            return self._producer
