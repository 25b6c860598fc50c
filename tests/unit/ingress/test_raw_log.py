from __future__ import annotations

import socket
import time

import pytest

from streams.ingress.raw_log import KafkaUnavailable, RawLog


async def test_an_unreachable_kafka_is_reported_in_bounded_time() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    raw_log = RawLog(f"127.0.0.1:{port}", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match="cannot reach Kafka"):
        await raw_log.append(b"{}", {}, source="live", signature="trusted")
    assert time.monotonic() - started < 10
    await raw_log.stop()
