from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from streams.routing import RETRY_AFTER_SECONDS, OwnerUnreachable, partition_for


def test_partition_for_matches_the_producers_default_partitioner() -> None:
    for key in ("L1", "ve9EPM428h8vShlRW1KT", "loc-ü", "x" * 40):
        for partitions in (1, 4, 12):
            expected = DefaultPartitioner()(key.encode(), list(range(partitions)), [])
            assert partition_for(key, partitions) == expected


def test_an_unreachable_owner_is_a_503_to_retry_with_the_reason() -> None:
    answer = OwnerUnreachable("the worker that holds this location (10.0.0.2:6066) does not answer")
    response = answer.answer()
    assert response.status == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    body = response.body
    assert isinstance(body, bytes)
    assert b"10.0.0.2:6066" in body and b"retry" in body
