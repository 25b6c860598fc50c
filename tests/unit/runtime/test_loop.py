import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from streams.runtime import loop as loop_module
from streams.runtime.loop import Loop
from streams.runtime.ownership import Placement
from tests.unit.runtime.configs import task_config


def _loop(tmp_path: Path) -> Loop:
    return Loop(task_config(tmp_path), Placement("http://w1:6066"))


async def test_rounds_make_room_only_for_openings_begun_in_the_last_seconds(
    tmp_path: Path,
) -> None:
    loop = _loop(tmp_path)
    recent, slow, opened = (asyncio.get_running_loop().create_future() for _ in range(3))
    opened.set_result(None)
    now = time.monotonic()
    loop.opening = {0: recent, 1: slow, 2: opened}  # type: ignore[dict-item]
    loop._opening_since = {0: now, 1: now - loop_module.OPENING_TURNS_FOR_S - 1, 2: now}
    # 0 is under way and recent; 1 has taken too long to hold the others back; 2 is done.
    assert loop._recent_openings() == [recent]
    recent.set_result(None)
    assert loop._recent_openings() == []
    slow.cancel()


async def test_settling_waits_for_a_commit_a_round_started_before_it_resumed(
    tmp_path: Path,
) -> None:
    loop = _loop(tmp_path)
    first_done, second_done = (asyncio.get_running_loop().create_future() for _ in range(2))

    async def commit(done: asyncio.Future[None]) -> None:
        try:  # as `_commit_while_dirty`: a committer clears itself when it ends
            await done
        finally:
            loop.committer = None

    def round_meanwhile(_: object) -> None:  # a tick folded and its commit started at once
        loop.committer = asyncio.ensure_future(commit(second_done))

    loop.committer = asyncio.ensure_future(commit(first_done))
    loop.committer.add_done_callback(round_meanwhile)  # runs before the settling caller resumes
    settling = asyncio.ensure_future(loop._settle())
    await asyncio.sleep(0.01)
    first_done.set_result(None)
    await asyncio.sleep(0.01)
    assert not settling.done()  # the store must not close under the second commit
    second_done.set_result(None)
    await asyncio.wait_for(settling, 1)
    assert loop.committer is None


async def test_a_revocation_cancelled_while_an_opening_ends_is_cancelled_too(
    tmp_path: Path,
) -> None:
    loop = _loop(tmp_path)

    async def opening() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)  # closing its store takes a moment
            raise

    loop.opening = {0: asyncio.ensure_future(opening())}
    await asyncio.sleep(0)
    revoking = asyncio.ensure_future(loop.on_partitions_revoked([TopicPartition("raw", 0)]))
    await asyncio.sleep(0.01)
    revoking.cancel()  # the worker stopping: the callback must not carry on as if nothing was
    with pytest.raises(asyncio.CancelledError):
        await revoking


async def test_commits_failing_for_longer_than_the_patience_stop_the_worker(
    tmp_path: Path,
) -> None:
    loop = _loop(tmp_path)
    loop.patience = 300.0
    loop.stopping = True  # no producer restarted here: only the decision is tested
    now = [1000.0]
    loop.clock = lambda: now[0]
    refused = KafkaError("MessageSizeTooLargeError")
    for at in (1000.0, 1010.0, 1200.0, 1300.0):  # weather: reopen and try again
        now[0] = at
        loop._commit_failed(refused)
        assert loop.fatal is None
    now[0] = 1301.0  # failing since 1000, never more than 300 s apart
    loop._commit_failed(refused)
    assert isinstance(loop.fatal, loop_module.StopWorker)
    assert "every commit failed for 300s" in str(loop.fatal)


async def test_commit_failures_far_apart_are_weather_each_time(tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    loop.patience = 300.0
    loop.stopping = True
    now = [1000.0]
    loop.clock = lambda: now[0]
    for at in (1000.0, 1400.0, 1800.0):  # an idle worker's rare failures, hours of nothing between
        now[0] = at
        loop._commit_failed(KafkaError("NotLeaderForPartition"))
    assert loop.fatal is None
    for at in (2200.0, 2490.0, 2780.0, 3070.0):  # a quiet worker, a rolling broker restart
        now[0] = at
        loop._commit_failed(KafkaError("NotLeaderForPartition"))
    assert loop.fatal is None  # four failures in 870 s: weather still
