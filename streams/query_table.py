"""The readable form of query answers, for `streams query` without `--json`."""

from __future__ import annotations

import json
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
    elif kind != "unread":
        return json.dumps(answer, indent=2)  # appointments, tasks, email_stats: nested lists
    else:
        lines = [f"Unread for {answer['location_id']}: {answer['total']}", "by conversation:"]
        lines += [f"  {c:<30}{n:>5}" for c, n in answer["conversations"].items()]
        lines.append("by user:")
        lines += [f"  {u:<30}{n:>5}" for u, n in answer["users"].items()]
    return "\n".join(lines)
