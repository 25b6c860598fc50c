"""Where a worker's web server is: how the other workers reach it, and how the CLI finds the
live worker of a data directory. Kept apart from `streams.worker` so that a command that only
asks a worker something (`streams query`, `status`, `send`) does not import the web server.
"""

from __future__ import annotations

import socket
from pathlib import Path

from streams.settings import Settings

__all__ = ["find_worker_url", "worker_url", "worker_url_file"]


def worker_url(settings: Settings, port: int) -> str:
    """How the other workers reach this one's web server."""
    host = "127.0.0.1" if settings.web_host == "127.0.0.1" else socket.gethostname()
    return f"http://{host}:{port}"


def worker_url_file(settings: Settings) -> Path:
    """Where the live worker of a data directory records its URL, for the CLI to find it."""
    return settings.data_dir / "worker" / "url"


def find_worker_url(settings: Settings, given: str | None = None) -> str:
    """`given` (--url), else what the worker of this data directory recorded, else
    STREAMS_WEB_PORT on this host."""
    if given:
        return given.rstrip("/")
    try:
        return worker_url_file(settings).read_text().strip()
    except FileNotFoundError:
        return f"http://127.0.0.1:{settings.web_port}"
