from __future__ import annotations

from streams.ingest import IngestReport, parse_lines


def test_lines_that_are_not_json_objects_are_counted_not_kept() -> None:
    report = IngestReport()
    kept = parse_lines(
        ['{"type":"ContactCreate","id":"a"}\n', "\n", "not json\n", "[1,2]\n", '{"type":"X"}'],
        report,
    )
    assert [item.payload["type"] for item in kept] == ["ContactCreate", "X"]
    assert kept[0].body == b'{"type":"ContactCreate","id":"a"}'  # the exact bytes, unchanged
    assert [number for number, _ in report.broken] == [3, 4]
