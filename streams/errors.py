"""The one root of this project's errors, and where each kind lives.

    StreamsError
    ├── BadRecord          (events)            a record no projection can use: dead-lettered
    ├── MoneyError         (money)             an amount that is not a decimal amount
    ├── SignatureError     (ingress.signatures) a webhook whose signature does not verify: 401
    ├── KafkaUnavailable   (ingress.raw_log)   Kafka did not take a write: 503, retry
    ├── QueryError         (queries)           a query that cannot be answered as asked: 400
    ├── NotServing         (api)               no version of a projection answers here yet: 503
    ├── OwnerUnreachable   (routing)           the owner of a location does not answer: 503
    ├── ReplayError        (replay.versions)   a replay operation the versions do not allow
    ├── UnusableDocument   (backfill)          a legacy document that is not a webhook
    ├── BrokerError        (broker)            the local broker could not start
    ├── StaleCheckpoint    (runtime.changelog) a store the changelog cannot continue: restored anew
    ├── StateTooLarge      (runtime.state)     a table value its changelog cannot take: stop
    ├── GroupFenced        (runtime.fencing)   the group moved on without this worker
    ├── PartitionsLost     (runtime.transaction) this worker's commits are fenced: it reopens
    └── StopWorker         (runtime.loop)      the worker must stop without committing

Each also derives from the built-in exception it always was (ValueError, RuntimeError...), so
callers that caught those still do.
"""

from __future__ import annotations

__all__ = ["StreamsError"]


class StreamsError(Exception):
    """Every error this project raises on purpose."""
