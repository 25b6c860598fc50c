"""The one place that knows each topic's name, key and configuration (see DESIGN.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.broker import kafka_bootstrap
from streams.settings import Settings

__all__ = [
    "DERIVED",
    "DLQ",
    "HEADERS_ROOM",
    "PROJECTION_VERSIONS",
    "RAW_WEBHOOKS",
    "RECORD_MAX_BYTES",
    "STATE_MAX_BYTES",
    "STATE_ROW_MAX_BYTES",
    "TOMBSTONES_KEPT_MS",
    "TOPICS",
    "TopicSpec",
    "ensure_changelog",
    "ensure_configured_topics",
    "ensure_topics",
    "partition_ids",
    "raw_key",
    "ready_kafka",
]

FOREVER = "-1"
# The largest record batch the raw log and the dead letters take (`max.message.bytes`): a body
# of STREAMS_WEBHOOK_MAX_BYTES with its headers, or a dead letter of it with the reason, fits.
RECORD_MAX_BYTES = 2 * 1024 * 1024
# The changelog's: one table value (a location's whole unread map...) may be large.
STATE_MAX_BYTES = 8 * 1024 * 1024
HEADERS_ROOM = 64 * 1024  # what a record's headers and framing may add to its body
# A table row's key and value at most: the changelog takes it in a record batch of its own, with
# the batch's framing (about 130 bytes; a row a few bytes under STATE_MAX_BYTES passed, and Kafka
# refused its batch on every retry).
STATE_ROW_MAX_BYTES = STATE_MAX_BYTES - 1024
# How long a changelog keeps a deletion once compacted (`delete.retention.ms`: Kafka's default,
# set on the changelogs this project creates): a store that has not read its changelog's records
# written since longer ago may have missed a deletion, and is restored from the start.
TOMBSTONES_KEPT_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    configs: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None  # None: as configured (STREAMS_PARTITIONS)


RAW_WEBHOOKS = TopicSpec(
    "ghl.webhooks.v1",
    key="locationId, else companyId, else altId (raw UTF-8)",
    # The raw log is the source of truth: kept forever, never compacted.
    configs={
        "retention.ms": FOREVER,
        "retention.bytes": FOREVER,
        "cleanup.policy": "delete",
        "max.message.bytes": str(RECORD_MAX_BYTES),
    },
)
DERIVED = TopicSpec(
    "streams.derived.v1",
    key="Ably channel name",
    configs={"retention.ms": str(7 * 24 * 3600 * 1000)},
)
DLQ = TopicSpec(
    "ghl.webhooks.dlq.v1",
    key="as the source record",
    configs={
        "retention.ms": FOREVER,
        "retention.bytes": FOREVER,
        "max.message.bytes": str(RECORD_MAX_BYTES),
    },
)
PROJECTION_VERSIONS = TopicSpec(
    "streams.projections.v1",
    key="projection name",
    # One record per projection (its versions, the one serving queries): the latest is the state.
    configs={"cleanup.policy": "compact"},
    partitions=1,
)
TOPICS = (RAW_WEBHOOKS, DERIVED, DLQ, PROJECTION_VERSIONS)


def raw_key(payload: dict[str, object]) -> bytes | None:
    """The raw topic's key: all of a location's events land in one partition, in order."""
    for name in ("locationId", "companyId", "altId"):
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value.encode()
    return None


async def ensure_topics(bootstrap: str, *, partitions: int, replication_factor: int) -> list[str]:
    """Create the project's topics that do not exist yet; return the names created."""
    return await _create_missing(bootstrap, TOPICS, partitions, replication_factor)


async def ensure_changelog(
    bootstrap: str, name: str, *, source: str, replication_factor: int
) -> list[str]:
    """Create the compacted changelog topic `name`, with as many partitions as `source` (its
    partition p holds the state of source partition p), if it does not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = len(await partition_ids(admin, source))
    finally:
        await admin.close()
    configs = {
        "cleanup.policy": "compact",
        "max.message.bytes": str(STATE_MAX_BYTES),
        "delete.retention.ms": str(TOMBSTONES_KEPT_MS),
    }
    spec = TopicSpec(name, key="table key", configs=configs)
    return await _create_missing(bootstrap, [spec], partitions, replication_factor)


async def _create_missing(
    bootstrap: str, specs: Iterable[TopicSpec], partitions: int, replication_factor: int
) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in specs if t.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        t.name,
                        num_partitions=t.partitions or partitions,
                        replication_factor=replication_factor,
                        topic_configs=t.configs,
                    )
                    for t in missing
                ]
            )
        return [t.name for t in missing]
    finally:
        await admin.close()


async def partition_ids(admin: AIOKafkaAdminClient, topic: str) -> list[int]:
    """The partitions of `topic` ([] when it does not exist)."""
    (described,) = await admin.describe_topics([topic])
    return sorted(p["partition"] for p in described["partitions"])


async def ensure_configured_topics(settings: Settings, bootstrap: str) -> list[str]:
    """`ensure_topics` with the configured partitions and replication."""
    return await ensure_topics(
        bootstrap, partitions=settings.partitions, replication_factor=settings.replication_factor
    )


async def ready_kafka(settings: Settings) -> str:
    """The configured Kafka's bootstrap address, once the project's topics exist there."""
    bootstrap = kafka_bootstrap(settings)
    await ensure_configured_topics(settings, bootstrap)
    return bootstrap
