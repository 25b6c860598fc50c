from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from streams.routing import partition_for


def test_partition_for_matches_the_producers_default_partitioner() -> None:
    for key in ("L1", "ve9EPM428h8vShlRW1KT", "loc-ü", "x" * 40):
        for partitions in (1, 4, 12):
            expected = DefaultPartitioner()(key.encode(), list(range(partitions)), [])
            assert partition_for(key, partitions) == expected
