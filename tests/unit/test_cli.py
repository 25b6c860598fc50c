"""The `streams` command's own behaviour, run as a user runs it (a subprocess), against a small
HTTP server standing in for a worker's query API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.cli import _parser, main
from streams.settings import REPO_ROOT
from streams.tables.registry import PROJECTIONS

STREAMS = str(REPO_ROOT / ".venv" / "bin" / "streams")
ANSWER = {"location_id": "loc-1", "days": [], "totals": {}}


@pytest.fixture
async def worker_api() -> AsyncIterator[str]:
    async def revenue(request: web.Request) -> web.Response:
        return web.json_response({**ANSWER, "location_id": request.match_info["location"]})

    app = web.Application()
    app.router.add_get("/v1/locations/{location}/revenue", revenue)
    async with TestServer(app) as server:
        yield str(server.make_url("")).rstrip("/")


async def streams(
    env: dict[str, str], *args: str, close_stdout: bool = False
) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    stdout: int = asyncio.subprocess.PIPE
    if close_stdout:  # a pipe whose reader has gone, as `| head -1` does after its line
        reader, stdout = os.pipe()
        os.close(reader)
    process = await asyncio.create_subprocess_exec(
        STREAMS, *args, env=clean | env, stdout=stdout, stderr=asyncio.subprocess.PIPE
    )
    if close_stdout:
        os.close(stdout)
    out, err = await process.communicate()
    return await process.wait(), (out or b"").decode(), err.decode()


def test_help_lists_only_the_commands_a_user_runs() -> None:
    shown = _parser(PROJECTIONS).format_help()
    assert "query" in shown and "replay" in shown
    assert "SUPPRESS" not in shown and "replay-worker" not in shown


async def test_query_finds_the_worker_its_data_directory_recorded(
    worker_api: str, tmp_path: Path
) -> None:
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "url").write_text(worker_api + "\n")
    env = {"STREAMS_DATA_DIR": str(tmp_path)}  # no STREAMS_WEB_PORT
    status, out, err = await streams(env, "query", "revenue", "--location", "loc-9", "--json")
    assert status == 0, err
    assert json.loads(out)["location_id"] == "loc-9"


async def test_query_takes_a_url(worker_api: str, tmp_path: Path) -> None:
    env = {"STREAMS_DATA_DIR": str(tmp_path)}
    args = ("query", "revenue", "--location", "loc-2", "--json", "--url", worker_api)
    status, out, err = await streams(env, *args)
    assert status == 0, err
    assert json.loads(out)["location_id"] == "loc-2"


async def test_a_reader_that_leaves_early_gets_no_broken_pipe_error(
    worker_api: str, tmp_path: Path
) -> None:
    env = {"STREAMS_DATA_DIR": str(tmp_path)}
    args = ("query", "revenue", "--location", "loc-3", "--json", "--url", worker_api)
    status, _, err = await streams(env, *args, close_stdout=True)
    assert "Broken pipe" not in err and "Traceback" not in err, err
    assert status == 141  # 128 + SIGPIPE, as `cat` would end


def test_the_sink_refuses_a_projection_without_read_models(capsys, monkeypatch) -> None:
    monkeypatch.setenv("STREAMS_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    status = main(["sink", "mongo", "--uri", "mongodb://127.0.0.1:1", "--projections", "tasks"])
    assert status == 1
    assert "no read model for tasks" in capsys.readouterr().err


def test_the_command_line_starts_without_the_web_server_or_the_api() -> None:
    # `streams query`, `status`, `replay start` only ask: aiohttp and the API (half the
    # command's start) are imported by the commands that run a worker or a server.
    check = "import sys, streams.cli; print(sorted(m for m in ('aiohttp', 'jwt', 'streams.api', 'streams.app') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
