"""A local Ably stand-in for `make run` with `STREAMS_LOCAL_ABLY=1`, so that the publisher and the
token endpoint can be tried without Ably's cloud.

It is `infra/ably-standin` (Go, standard library only; built on first use into the user's cache),
on a free local port, with an API key of its own kept in the data directory. The worker publishes
to it and mints tokens for it as it would for Ably; `GET {url}/_standin/messages` shows what
each channel's subscribers would have received. It is not Ably: see its README.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

from streams.errors import StreamsError
from streams.processes import die_with_parent
from streams.settings import REPO_ROOT

__all__ = ["LocalAbly", "standin_binary"]

BUILD = REPO_ROOT / "infra" / "ably-standin" / "build-image.sh"


class LocalAblyError(StreamsError, RuntimeError):
    """The stand-in could not be built or started; the message says why."""


def standin_binary() -> Path:
    """Build the stand-in if its sources changed (seconds when they did not); its path."""
    try:
        subprocess.run(
            ["bash", str(BUILD), "--binary-only"], check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as exc:
        raise LocalAblyError(
            f"building infra/ably-standin failed (it needs Go 1.22+):\n{exc.stderr[-2000:]}"
        ) from None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "streams" / "ably-standin" / "ably-standin"


class LocalAbly:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "ably-standin"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> tuple[str, str]:
        """Start it; (its base URL, the API key it takes)."""
        binary = standin_binary()
        self.root.mkdir(parents=True, exist_ok=True)
        key_file, address = self.root / "api-key", self.root / "address"
        if not key_file.exists():
            key_file.touch(mode=0o600)
            key_file.write_text(f"local.dev:{secrets.token_hex(16)}\n")
        key = key_file.read_text().strip()
        address.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", "--addr-file", str(address)],
            env={**os.environ, "ABLY_STANDIN_API_KEY": key},
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "standin.log").open("ab"),
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalAblyError(f"the Ably stand-in exited; see {self.root / 'standin.log'}")
            if address.exists() and address.read_text().strip():
                url = f"http://{address.read_text().strip()}"
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                        return url, key
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise LocalAblyError(f"the Ably stand-in did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
