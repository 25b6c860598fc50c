"""`streams replay start|status|promote|drop|compare`, and `streams replay-worker` (run by the
live workers)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from functools import partial

from streams import event_loop
from streams.broker import kafka_bootstrap
from streams.progress import Progress
from streams.replay.changelog import differences
from streams.replay.control import GroupLag, Position, read_versions, write_versions
from streams.replay.versions import LIVE_GROUP, ReplayError, Run, Versions, run_id, unit_id
from streams.runtime.changelog import read_changelog
from streams.settings import Settings
from streams.tables.projection import Projection
from streams.topics import ready_kafka

__all__ = ["add_commands", "caught_up"]

log = logging.getLogger(__name__)

DROP_TIMEOUT = 120.0  # seconds the workers get to stop a dropped version's replay workers
FOLLOW_INTERVAL = 0.2  # seconds between looks at the groups' offsets: a cheap admin request
IDLE_HINT = 30.0  # seconds without any worker running a replay before --wait says so


def caught_up(version: GroupLag, live: GroupLag) -> bool:
    """A version has caught up when it is no further behind the head of the log than the live
    worker is (all of it, when no live worker has committed anything)."""
    return version.behind <= (live.behind if live.started else 0)


def add_commands(sub: argparse._SubParsersAction, catalog: Sequence[Projection]) -> None:
    names = [p.name for p in catalog]
    by_name = {p.name: p for p in catalog}
    replay = sub.add_parser(
        "replay", help="compute projections anew from the whole log, as new versions"
    )
    actions = replay.add_subparsers(required=True, metavar="ACTION")

    start = actions.add_parser(
        "start", help="compute version N of projections from offset 0, beside the live ones"
    )
    start.add_argument("--projection", required=True, choices=[*names, "all"])
    start.add_argument("--version", type=int, required=True)
    start.add_argument(
        "--wait", action="store_true", help="show progress until it has caught up with the log"
    )
    start.add_argument("--verbose", action="store_true", help="progress per partition too")
    start.set_defaults(command=partial(_start, by_name))

    actions.add_parser(
        "status", help="every version of every projection: lag, and which serves queries"
    ).set_defaults(command=partial(_status, by_name))

    promote = actions.add_parser(
        "promote", help="make queries read version N of projections (all workers)"
    )
    drop = actions.add_parser(
        "drop", help="delete a retired version's state, changelogs and consumer group"
    )
    compare = actions.add_parser(
        "compare",
        help="compare version N with another (default 1) key for key (exit 1 if they differ)",
    )
    compare.add_argument("--against", type=int, default=1, help="the other version (default 1)")
    for action, command in ((promote, _promote), (drop, _drop), (compare, _compare)):
        action.add_argument(
            "--projection",
            required=True,
            choices=[*names, "all"],
            help="all: every projection that has the version",
        )
        action.add_argument("--version", type=int, required=True)
        action.set_defaults(command=partial(command, by_name))

    # No help: argparse lists a command only when it has one ("==SUPPRESS==" otherwise).
    worker = sub.add_parser("replay-worker")
    worker.add_argument("run")
    worker.add_argument("version", type=int)
    worker.add_argument("projections", nargs="+", choices=names)
    worker.add_argument("--web-port", type=int, required=True)
    worker.set_defaults(command=partial(_replay_worker, by_name))


def _start(catalog: dict[str, Projection], settings: Settings, args: argparse.Namespace) -> int:
    chosen = list(catalog.values()) if args.projection == "all" else [catalog[args.projection]]

    async def run() -> int:
        bootstrap = await ready_kafka(settings)
        recorded = await read_versions(bootstrap)
        # One run folds them all in one read of the log.
        names = tuple(p.name for p in chosen)
        run = Run(run_id(names, args.version, every=args.projection == "all"), args.version, names)
        # Check every projection before recording any, so a refusal changes nothing.
        updated = {
            p.name: recorded.get(p.name, Versions.initial(p)).start(p, args.version, run)
            for p in chosen
        }
        await write_versions(bootstrap, updated)
        listed = ", ".join(updated)
        print(f"version {args.version} of {listed}: recorded; every worker now computes it")
        if not args.wait:
            print("follow it with `streams replay status`")
            return 0
        seconds = await _follow(bootstrap, [run.id], verbose=args.verbose)
        print(f"version {args.version} of {listed} has caught up with the log ({seconds:.0f}s)")
        return 0

    return event_loop.run(run())


async def _follow(bootstrap: str, runs: list[str], *, verbose: bool) -> float:
    started = time.monotonic()
    async with Position(bootstrap) as position:
        progress = Progress("replay", total=0)
        hinted = False
        while True:
            head = await position.head()
            live = await position.lag(LIVE_GROUP, head)
            lags = [await position.lag(run, head) for run in runs]
            details = (
                [
                    f"{run} partition {partition}: {done:,}/{total:,}"
                    for run, lag in zip(runs, lags, strict=True)
                    for partition, (done, total) in sorted(lag.partitions.items())
                ]
                if verbose
                else None
            )
            progress.update(sum(lag.done for lag in lags), sum(lag.total for lag in lags), details)
            if all(caught_up(lag, live) for lag in lags):
                progress.finish()
                return time.monotonic() - started
            idle = not any(lag.members for lag in lags)
            if idle and not hinted and time.monotonic() - started > IDLE_HINT:
                hinted = True
                print(
                    "\nno worker is running this replay yet: is a worker (`streams worker` or "
                    "`make run`) up?",
                    file=sys.stderr,
                )
            await asyncio.sleep(FOLLOW_INTERVAL)


def _status(catalog: dict[str, Projection], settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        bootstrap = await ready_kafka(settings)
        recorded = await read_versions(bootstrap)
        print(
            f"{'projection':<14}{'version':>7}  {'serves':<7}{'state':<12}"
            f"{'done / total':>24}{'behind':>10}{'workers':>9}"
        )
        async with Position(bootstrap) as position:
            head = await position.head()
            live = await position.lag(LIVE_GROUP, head)
            for projection in catalog.values():
                versions = recorded.get(projection.name, Versions.initial(projection))
                for version in versions.all(projection):
                    group = versions.group(projection, version)
                    lag = await position.lag(group, head)
                    state = "live" if group == LIVE_GROUP else _state(lag, live)
                    serves = "yes" if versions.serving == version else "no"
                    print(
                        f"{projection.name:<14}{version:>7}  {serves:<7}{state:<12}"
                        f"{f'{lag.done:,} / {lag.total:,}':>24}{lag.behind:>10,}{lag.members:>9}"
                    )
        return 0

    return event_loop.run(run())


def _state(lag: GroupLag, live: GroupLag) -> str:
    if caught_up(lag, live):
        return "caught up"
    return "replaying" if lag.members or lag.started else "waiting"


def _having(
    catalog: dict[str, Projection], recorded: dict[str, Versions], version: int
) -> list[Projection]:
    """Every projection that has `version`."""
    return [
        p for p in catalog.values() if version in recorded.get(p.name, Versions.initial(p)).all(p)
    ]


def _chosen(
    catalog: dict[str, Projection], recorded: dict[str, Versions], name: str, version: int
) -> list[Projection]:
    """The named projection; for `all`, every projection that has `version`."""
    if name != "all":
        return [catalog[name]]
    chosen = _having(catalog, recorded, version)
    if not chosen:
        raise ReplayError(f"no projection has a version {version}")
    return chosen


def _promote(catalog: dict[str, Projection], settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        bootstrap = await ready_kafka(settings)
        recorded = await read_versions(bootstrap)
        chosen = _chosen(catalog, recorded, args.projection, args.version)
        # Check every projection before recording any, so a refusal changes nothing.
        promoted = {}
        async with Position(bootstrap) as position:
            head = await position.head()
            live = await position.lag(LIVE_GROUP, head)
            for projection in chosen:
                versions = recorded.get(projection.name, Versions.initial(projection))
                promoted[projection.name] = versions.promote(projection, args.version)
                lag = await position.lag(versions.group(projection, args.version), head)
                if not caught_up(lag, live):
                    raise ReplayError(
                        f"version {args.version} of {projection.name} has not caught up: it is "
                        f"{lag.behind:,} records behind the head of the log ({lag.done:,} of "
                        f"{lag.total:,} done); wait with `streams replay status` and promote "
                        "it then"
                    )
        await write_versions(bootstrap, promoted)
        for name in promoted:
            print(f"queries for {name} now read version {args.version}")
        return 0

    return event_loop.run(run())


def _drop(catalog: dict[str, Projection], settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        bootstrap = await ready_kafka(settings)
        recorded = await read_versions(bootstrap)
        version = args.version
        named = args.projection != "all"
        # Without the version, only the clean-up of an interrupted drop may be left to do.
        chosen = [
            p for p in _having(catalog, recorded, version) if not named or p.name == args.projection
        ]
        # Check every projection before recording any, so a refusal changes nothing.
        dropped = {}
        groups = set()
        for projection in chosen:
            versions = recorded.get(projection.name, Versions.initial(projection))
            dropped[projection.name] = versions.drop(projection, version)
            groups.add(versions.group(projection, version))
        if dropped:
            await write_versions(bootstrap, dropped)
            recorded.update(dropped)
        users: dict[str, list[str]] = {}  # run of this version -> the projections still in it
        for name, v in sorted(recorded.items()):
            if name in catalog and version in v.replays:
                users.setdefault(v.group(catalog[name], version), []).append(name)
        in_use = set(users)
        async with Position(bootstrap) as position:
            # Runs of this version nobody uses any more: those just dropped, and any a previous
            # drop was interrupted before deleting.
            leftover = {
                topic.removesuffix("-changelog")
                for topic in await position.topics("streams-")
                if topic.endswith(f"-v{version}-changelog")
                and (not named or topic == f"{unit_id(args.projection, version)}-changelog")
            }
            retired = sorted((groups | leftover) - in_use)
            if not dropped and not retired:
                raise ReplayError(f"{args.projection} has no version {version}")
            for group in retired:
                if not await position.wait_empty(group, DROP_TIMEOUT):
                    raise ReplayError(
                        f"workers still run {group} after {DROP_TIMEOUT:.0f}s; run the drop "
                        "again once they have stopped it"
                    )
                deleted = await position.delete(group, f"{group}-")
                print(
                    f"run {group} deleted: its consumer group and {len(deleted)} topics; "
                    "workers delete its local state"
                )
        for name in dropped:
            print(f"version {version} of {name} dropped")
        for group in sorted(groups & in_use):
            print(
                f"its run {group} goes on for {', '.join(users[group])}; its state goes when "
                "their versions are dropped"
            )
        return 0

    return event_loop.run(run())


def _compare(catalog: dict[str, Projection], settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        bootstrap = await ready_kafka(settings)
        recorded = await read_versions(bootstrap)
        a, b = args.against, args.version
        differ = False
        for projection in _chosen(catalog, recorded, args.projection, b):
            versions = recorded.get(projection.name, Versions.initial(projection))
            if a not in versions.all(projection):
                if args.projection != "all":
                    raise ReplayError(f"{projection.name} has no version {a}")
                print(f"{projection.name}: no version {a} to compare with")
                continue
            a_tables = await read_changelog(bootstrap, versions.group(projection, a))
            b_tables = await read_changelog(bootstrap, versions.group(projection, b))
            found: list[str] = []
            keys = 0
            for table in projection.tables:
                a_rows, b_rows = a_tables.get(table, {}), b_tables.get(table, {})
                keys += len(a_rows)
                found += differences(table, a_rows, b_rows)
            if found:
                differ = True
                print(f"versions {a} and {b} of {projection.name} differ:")
                for line in found:
                    print(f"  {line}")
            else:
                print(
                    f"versions {a} and {b} of {projection.name} are equal: "
                    f"{len(projection.tables)} tables, {keys:,} keys"
                )
        return 1 if differ else 0

    return event_loop.run(run())


def _replay_worker(
    catalog: dict[str, Projection], settings: Settings, args: argparse.Namespace
) -> int:
    from streams.replay.app import create_replay_worker
    from streams.worker import run_worker

    projections = [catalog[name] for name in args.projections]
    return run_worker(
        create_replay_worker(
            settings,
            kafka_bootstrap(settings),
            args.run,
            args.version,
            projections,
            args.web_port,
        )
    )
