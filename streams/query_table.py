"""The readable form of query answers, for `streams query` without `--json`."""

from __future__ import annotations

from typing import Any

__all__ = ["render_table"]


def render_table(kind: str, answer: dict[str, Any]) -> str:
    period = f"{answer.get('from') or 'start'} .. {answer.get('to') or 'now'}"
    if kind == "revenue":
        lines = [
            f"Revenue for {answer['location_id']} ({period})",
            f"{'date':<12}{'currency':<10}amount",
        ]
        lines += [f"{d['date']:<12}{d['currency']:<10}{d['amount']:>12}" for d in answer["days"]]
        lines += [f"{'total':<12}{c:<10}{a:>12}" for c, a in answer["totals"].items()]
    elif kind == "leads":
        lines = [f"Leads for {answer['location_id']} ({period})", f"{'date':<12}count"]
        lines += [f"{d['date']:<12}{d['count']:>5}" for d in answer["days"]]
        lines.append(f"{'total':<12}{answer['total']:>5}")
    elif kind == "pipeline":
        lines = [
            f"Pipeline for {answer['location_id']}: {answer['open_count']} open, "
            f"{answer['open_value']}",
            f"{'pipeline':<24}{'stage':<38}{'open':>6}{'value':>14}",
        ]
        lines += [
            f"{s['pipeline_id']:<24}{s['stage_id']:<38}{s['open_count']:>6}{s['open_value']:>14}"
            for s in answer["stages"]
        ]
        lines.append(f"Won ({period}): {answer['won_total']}")
        lines += [f"  {d['date']:<12}{d['value']:>14}" for d in answer["won"]]
    elif kind == "unread":
        lines = [f"Unread for {answer['location_id']}: {answer['total']}", "by conversation:"]
        lines += [f"  {c:<30}{n:>5}" for c, n in answer["conversations"].items()]
        if answer["users"]:
            lines.append("by user:")
            lines += [f"  {u:<30}{n:>5}" for u, n in answer["users"].items()]
    elif kind == "appointments":
        lines = [
            f"Upcoming appointments for {answer['location_id']}: {answer['total']}",
            f"{'user':<24}{'start':<22}{'status':<12}title",
        ]
        lines += [
            f"{user:<24}{a['start_time']:<22}{a['status'] or '':<12}{a['title'] or ''}"
            for user, booked in answer["users"].items()
            for a in booked
        ]
    elif kind == "tasks":
        lines = [
            f"Open tasks for {answer['location_id']}: {answer['total']}",
            f"{'assignee':<24}{'due':<26}title",
        ]
        rows = [*answer["assignees"].items(), ("(unassigned)", answer["unassigned"])]
        lines += [
            f"{who:<24}{t['due_date'] or '':<26}{t['title'] or ''}"
            for who, tasks in rows
            for t in tasks
        ]
    elif kind == "email_stats":
        lines = [
            f"Email events for {answer['location_id']} ({period})",
            f"{'date':<12}{'event':<14}count",
        ]
        lines += [f"{d['date']:<12}{d['event']:<14}{d['count']:>5}" for d in answer["days"]]
        lines += [f"{'total':<12}{e:<14}{n:>5}" for e, n in answer["totals"].items()]
    elif kind == "quotes":
        lines = [
            f"Quotes for {answer['location_id']}: {answer['total']}, {answer['signed']} signed",
            f"{'quote':<24}{'views':>6}{'downloads':>10}  {'last viewed':<22}signed",
        ]
        lines += [
            f"{q['quote_id']:<24}{q['views']:>6}{q['downloads']:>10}  "
            f"{q['last_viewed_at'] or '':<22}{q['signed_at'] or ''}"
            for q in answer["quotes"]
        ]
    elif kind == "activity":
        whose = f"contact {answer['contact_id']} of " if answer["contact_id"] else ""
        lines = [
            f"Recent activity of {whose}{answer['location_id']}",
            f"{'at':<26}{'kind':<24}{'contact':<24}title",
        ]
        lines += [
            f"{e['at']:<26}{e['kind']:<24}{e['contact_id'] or '':<24}{e['title'] or ''}"
            for e in answer["entries"]
        ]
    else:  # registry: one location's entry
        lines = [f"Registry entry of {answer['location_id']}"]
        lines += [
            f"  {k:<16}{'' if v is None else v}" for k, v in answer.items() if k != "location_id"
        ]
    return "\n".join(lines)
