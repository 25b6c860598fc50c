from streams.tables.positions import already_folded, record_folded


def test_a_record_at_or_below_the_recorded_position_was_folded_already() -> None:
    table: dict[str, int] = {}
    assert not already_folded(table, "payments", 2, 0)
    record_folded(table, "payments", 2, 41)
    assert already_folded(table, "payments", 2, 41)
    assert already_folded(table, "payments", 2, 7)
    assert not already_folded(table, "payments", 2, 42)
    # Each family and partition has its own position.
    assert not already_folded(table, "contacts", 2, 7)
    assert not already_folded(table, "payments", 1, 7)
