"""The `streams` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from functools import partial

from streams import event_loop
from streams.backfill import LegacyLayout, backfill
from streams.broker import LocalKafka, kafka_bootstrap
from streams.dlq_cli import add_commands as add_dlq_commands
from streams.errors import StreamsError
from streams.ingest import ingest_lines, wait_consumed
from streams.ingress.raw_log import RawLog
from streams.local_ably import LocalAbly
from streams.mongo_sink.cli import add_commands as add_sink_commands
from streams.queries import KINDS
from streams.query_table import render_table
from streams.replay.cli import add_commands as add_replay_commands
from streams.replay.versions import LIVE_GROUP
from streams.send import add_commands as add_send_commands
from streams.settings import Secret, Settings
from streams.status import status
from streams.tables.projection import Projection
from streams.tables.registry import PROJECTIONS
from streams.topics import RAW_WEBHOOKS, TOPICS, ensure_configured_topics, ready_kafka
from streams.worker_url import find_worker_url, worker_url, worker_url_file

# What runs a worker or a server (aiohttp, the API) is imported by the commands that run one:
# a command that only asks something (`query`, `status`, `replay start`) starts in half the time.

__all__ = ["main"]

log = logging.getLogger("streams")


def main(argv: Sequence[str] | None = None, catalog: Sequence[Projection] = PROJECTIONS) -> int:
    """The `streams` command; a build that adds projections calls it with its own catalog."""
    parser = _parser(catalog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    for name in ("aiokafka.consumer.group_coordinator", "aiokafka.consumer.fetcher"):
        logging.getLogger(name).addFilter(_while_kafka_starts)
    try:
        settings = Settings.from_env()
        return int(args.command(settings, args) or 0)
    except BrokenPipeError:
        # The reader left (`streams replay status | head -1`): stop quietly, as `cat` would,
        # and keep the interpreter's last flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (StreamsError, TimeoutError, ValueError, OSError) as exc:
        print(f"streams: {exc}", file=sys.stderr)
        return 1


# Transient errors aiokafka logs and retries by itself while a broker elects coordinators and
# leaders (at every start of the embedded one): alarming lines for a normal start. Real trouble
# shows in the worker's own log and /healthz.
_STARTING_BROKER = ("GroupCoordinatorNotAvailableError", "NotLeaderForPartitionError")


def _while_kafka_starts(record: logging.LogRecord) -> bool:
    return not any(name in record.getMessage() for name in _STARTING_BROKER)


def _parser(catalog: Sequence[Projection]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streams", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser(
        "dev", help="start the embedded stack: a local Kafka broker and the worker (make run)"
    ).set_defaults(command=partial(_dev, catalog))
    sub.add_parser(
        "worker", help="run a worker against STREAMS_KAFKA_BOOTSTRAP (or the embedded broker)"
    ).set_defaults(command=partial(_worker, catalog))
    ingress = sub.add_parser(
        "ingress",
        help="serve only the ingress endpoints (webhooks, first-party events), beside workers",
    )
    ingress.add_argument("--port", type=int, help="default: STREAMS_WEB_PORT")
    ingress.set_defaults(command=_ingress)
    sub.add_parser(
        "topics", help="create the project's topics if missing and list them"
    ).set_defaults(command=_topics)

    ingest = sub.add_parser(
        "ingest",
        help="load webhook bodies from a JSONL file into the log",
        description="Load webhook bodies into the raw log: JSON Lines, one webhook body (a "
        "JSON object, as HighLevel sent it) per line; blank lines are ignored. Lines that are "
        "not a JSON object are reported and skipped, and the exit status is then 1.",
    )
    ingest.add_argument("file", help="the JSONL file; - reads standard input")
    ingest.add_argument(
        "--wait",
        action="store_true",
        help="return once every projection has consumed what was written",
    )
    ingest.add_argument(
        "--live",
        action="store_true",
        help="mark records live (notifications are sent) instead of import",
    )
    ingest.set_defaults(command=_ingest)

    backfill = sub.add_parser("backfill", help="load history from before the log")
    source = backfill.add_subparsers(required=True, metavar="SOURCE")
    mongo = source.add_parser("mongo", help="from the legacy MongoDB webhook store")
    mongo.add_argument("--uri", help="MongoDB URI (default: MONGODB_URI)")
    mongo.add_argument("--db", required=True)
    mongo.add_argument("--collection", required=True)
    mongo.add_argument("--since", help="only documents received on or after this date (YYYY-MM-DD)")
    mongo.add_argument("--dry-run", action="store_true", help="read and check, write nothing")
    mongo.add_argument("--batch-size", type=int, default=500)
    layout = LegacyLayout()
    for name in ("body", "type", "webhook_id", "received_at"):
        mongo.add_argument(
            f"--{name.replace('_', '-')}-field",
            dest=f"{name}_field",
            default=getattr(layout, name),
            help=f"the legacy document's field for the {name.replace('_', ' ')} "
            f"(default: {getattr(layout, name)})",
        )
    mongo.set_defaults(command=_backfill_mongo)

    query = sub.add_parser("query", help="ask a running worker about a location")
    query.add_argument("kind", choices=KINDS)
    query.add_argument("--location", required=True, help="the location id")
    query.add_argument("--from", dest="start", help="first date, YYYY-MM-DD")
    query.add_argument("--to", dest="end", help="last date, YYYY-MM-DD")
    query.add_argument("--contact", help="activity: one contact's, not the location's")
    query.add_argument("--json", action="store_true", help="print the API's JSON answer")
    query.add_argument(
        "--url",
        help="the worker's base URL (default: the one the worker of STREAMS_DATA_DIR recorded, "
        "else http://127.0.0.1:STREAMS_WEB_PORT)",
    )
    query.set_defaults(command=_query)
    add_replay_commands(sub, catalog)
    add_dlq_commands(sub)
    add_send_commands(sub)
    add_sink_commands(sub, catalog)
    overview = sub.add_parser(
        "status", help="the stack on one screen: broker, worker, lag, versions, dead letters"
    )
    overview.add_argument("--url", help="the worker's base URL (default: as `streams query`)")
    overview.set_defaults(command=partial(status, catalog))
    return parser


def _dev(catalog: Sequence[Projection], settings: Settings, args: argparse.Namespace) -> int:
    broker, ably = None, None
    if settings.local_ably and settings.ably_api_key is not None:
        raise ValueError("set ABLY_API_KEY or STREAMS_LOCAL_ABLY=1, not both")
    try:
        if settings.local_ably:
            ably = LocalAbly(settings.data_dir)
            url, key = ably.start()
            settings = replace(settings, ably_api_key=Secret(key), ably_endpoint=url)
            print(
                f"streams: local Ably stand-in on {url} (not Ably): what each channel's "
                f"subscribers would receive is at {url}/_standin/messages",
                flush=True,
            )
        if settings.embedded:
            broker = LocalKafka(settings.data_dir / "kafka", libs=settings.kafka_libs)
            broker.start()
            seconds = event_loop.run(broker.wait_ready())
            log.info("embedded Kafka ready at %s in %.1fs", broker.bootstrap, seconds)
        return _run_worker(settings, kafka_bootstrap(settings), catalog)
    finally:
        if broker is not None:
            broker.stop()
            log.info("embedded Kafka stopped")
        if ably is not None:
            ably.stop()


def _worker(catalog: Sequence[Projection], settings: Settings, args: argparse.Namespace) -> int:
    return _run_worker(settings, kafka_bootstrap(settings), catalog)


def _ingress(settings: Settings, args: argparse.Namespace) -> int:
    from streams.ingress.server import run_ingress

    bootstrap = kafka_bootstrap(settings)
    event_loop.run(ensure_configured_topics(settings, bootstrap))
    return run_ingress(settings, bootstrap, settings.web_port if args.port is None else args.port)


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    created = event_loop.run(ensure_configured_topics(settings, kafka_bootstrap(settings)))
    width = max(len(topic.name) for topic in TOPICS) + 2
    print(f"{'topic':<{width}}{'state':<9}key")
    for topic in TOPICS:
        state = "created" if topic.name in created else "exists"
        print(f"{topic.name:<{width}}{state:<9}{topic.key}")
    return 0


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        bootstrap = await ready_kafka(settings)
        async with RawLog(bootstrap) as raw_log:
            if args.file == "-":
                report = await ingest_lines(sys.stdin, raw_log, live=args.live)
            else:
                with open(args.file, encoding="utf-8", errors="replace") as lines:
                    report = await ingest_lines(lines, raw_log, live=args.live)
        print(
            f"{report.written} records written to {RAW_WEBHOOKS.name}, "
            f"{len(report.broken)} lines skipped (not a JSON object)"
        )
        for number, reason in report.broken[:20]:
            print(f"  line {number}: {reason}")
        if len(report.broken) > 20:
            print(f"  ... and {len(report.broken) - 20} more")
        if args.wait and report.written:
            seconds = await wait_consumed(bootstrap, LIVE_GROUP, report.last_offsets)
            print(f"every projection has consumed them ({seconds:.1f}s)")
        return 1 if report.broken else 0

    return event_loop.run(run())


def _query(settings: Settings, args: argparse.Namespace) -> int:
    given = (("from", args.start), ("to", args.end), ("contact", args.contact))
    params = {k: v for k, v in given if v}
    url = (
        f"{find_worker_url(settings, args.url)}/v1/locations/"
        f"{urllib.parse.quote(args.location, safe='')}/{args.kind}"
    )
    if params:
        url += "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url)
    if settings.api_token:
        request.add_header("Authorization", f"Bearer {settings.api_token.reveal()}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"streams: the worker answered {exc.code}: {exc.read().decode()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"streams: no worker answers at {url} ({exc.reason})", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2) if args.json else render_table(args.kind, answer))
    return 0


def _backfill_mongo(settings: Settings, args: argparse.Namespace) -> int:
    uri = args.uri or (settings.mongodb_uri.reveal() if settings.mongodb_uri else None)
    if not uri:
        raise ValueError("no MongoDB: pass --uri or set MONGODB_URI")
    layout = LegacyLayout(
        body=args.body_field,
        type=args.type_field,
        webhook_id=args.webhook_id_field,
        received_at=args.received_at_field,
    )
    since = date.fromisoformat(args.since) if args.since else None

    async def run() -> int:
        async with RawLog(await ready_kafka(settings)) as raw_log:
            report = await backfill(
                uri,
                args.db,
                args.collection,
                raw_log,
                checkpoint_dir=settings.data_dir / "backfill",
                layout=layout,
                since=since,
                batch_size=args.batch_size,
                dry_run=args.dry_run,
            )
        verb = "would be written" if args.dry_run else "written"
        print(
            f"{report.read} documents read: {report.written} {verb} to {RAW_WEBHOOKS.name}, "
            f"{report.already_in_log} already in the log, {report.unusable} unusable"
        )
        return 0

    return event_loop.run(run())


def _run_worker(settings: Settings, bootstrap: str, catalog: Sequence[Projection]) -> int:
    from streams.app import create_worker
    from streams.worker import run_worker

    event_loop.run(ensure_configured_topics(settings, bootstrap))
    worker = create_worker(settings, bootstrap, catalog)
    url = worker_url(settings, settings.web_port)
    # The CLI finds this worker from the data directory alone (`streams query`).
    path = worker_url_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(url + "\n")
    print(
        f"streams: worker on {url}\n"
        f"  webhooks  POST {url}/webhooks/ghl\n"
        f"  queries   GET  {url}/v1/locations/{{location_id}}/{{{','.join(KINDS)}}}\n"
        f"  health    GET  {url}/healthz    metrics  GET {url}/metrics\n"
        f"  Kafka     {bootstrap}",
        flush=True,
    )
    return run_worker(worker)


if __name__ == "__main__":
    sys.exit(main())
