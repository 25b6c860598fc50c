"""`streams dlq list|show|retry`: inspect and re-drive the dead letters (see `streams.dlq`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from streams import dlq, event_loop
from streams.settings import Settings
from streams.topics import DLQ, ready_kafka

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    dead = sub.add_parser("dlq", help=f"inspect and re-drive the dead letters on {DLQ.name}")
    commands = dead.add_subparsers(required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="dead letters, oldest first, with their state")
    listing.add_argument("--pending", action="store_true", help="only those not re-driven yet")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    show = commands.add_parser("show", help="one dead letter: reason, headers, body")
    show.add_argument("at", type=dlq.parse_coordinates, metavar="PARTITION:OFFSET")
    retry = commands.add_parser(
        "retry", help="append selected dead letters to their source topic again, once each"
    )
    retry.add_argument("at", nargs="*", type=dlq.parse_coordinates, metavar="PARTITION:OFFSET")
    retry.add_argument("--all", action="store_true", help="every dead letter not re-driven yet")
    retry.add_argument("--again", action="store_true", help="also those re-driven before")
    retry.add_argument("--dry-run", action="store_true", help="say what would be re-driven")
    for parser in (listing, retry):
        parser.add_argument("--family", help="only this family's (payments, ..., publisher)")
        parser.add_argument("--error", help="only those whose error contains this text")
    listing.set_defaults(command=_dlq_list)
    show.set_defaults(command=_dlq_show)
    retry.set_defaults(command=_dlq_retry)


def _dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    ledger = event_loop.run(_read_dlq(settings))
    chosen = dlq.Selection(family=args.family, error=args.error)
    rows = [
        {**letter.summary(), "state": ledger.state(letter)}
        for letter in ledger.letters
        if chosen.matches(letter) and not (args.pending and letter.coordinates in ledger.redriven)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'dlq':>9}  {'family':<13} {'type':<24} {'state':<12} error")
    for row in rows:
        print(
            f"{row['dlq']:>9}  {row['family']:<13} {row['event_type'] or '-':<24} "
            f"{row['state']:<12.12} {row['error'][:70]}"
        )
    print(f"{len(rows)} dead letters")
    return 0


def _dlq_show(settings: Settings, args: argparse.Namespace) -> int:
    ledger = event_loop.run(_read_dlq(settings))
    found = [letter for letter in ledger.letters if letter.coordinates == args.at]
    if not found:
        print(f"streams: no dead letter at {args.at[0]}:{args.at[1]}", file=sys.stderr)
        return 1
    print(dlq.show(found[0], ledger.state(found[0])))
    return 0


def _dlq_retry(settings: Settings, args: argparse.Namespace) -> int:
    chosen = dlq.Selection(frozenset(args.at), args.family, args.error, args.all)
    if chosen.empty:
        raise ValueError("say which dead letters: PARTITION:OFFSET ..., --family, --error or --all")

    async def run() -> int:
        bootstrap = await ready_kafka(settings)
        ledger = await dlq.read_ledger(bootstrap)
        todo, skipped = dlq.select(ledger, chosen, again=args.again)
        for letter in skipped:
            print(f"{letter.partition}:{letter.offset} skipped: {ledger.state(letter)}")
        if args.dry_run:
            for letter in todo:
                print(f"{letter.partition}:{letter.offset} would be re-driven ({letter.family})")
            return 0
        for letter, copy in await dlq.redrive(bootstrap, todo):
            print(f"{letter.partition}:{letter.offset} re-driven to {copy}")
        print(f"{len(todo)} re-driven, {len(skipped)} already re-driven before")
        return 0

    return event_loop.run(run())


async def _read_dlq(settings: Settings) -> dlq.Ledger:
    return await dlq.read_ledger(await ready_kafka(settings))
