"""What the runtime's unit tests share: a task configuration that reaches no Kafka."""

from __future__ import annotations

from pathlib import Path

from streams.runtime.task import TaskConfig


def task_config(data_dir: Path, tables: tuple[str, ...] = ()) -> TaskConfig:
    return TaskConfig(
        bootstrap="localhost:1",
        group="g",
        source_topic="raw",
        changelog_topic="g-changelog",
        derived_topic="derived",
        dead_letter_topic="dead",
        data_dir=data_dir,
        tables=tables,
        families=(),
        live=False,
        label="test",
    )
