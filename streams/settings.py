"""The one settings object, read once from the environment. Nothing else reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REPO_ROOT", "Secret", "Settings", "comma_separated"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def comma_separated(text: str | None) -> tuple[str, ...]:
    """`a, b,` -> ("a", "b")."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


class Secret:
    """A value that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str | None
    """`STREAMS_KAFKA_BOOTSTRAP`; None means the embedded broker recorded in `data_dir`."""
    data_dir: Path
    web_port: int
    webhook_max_bytes: int
    partitions: int
    replication_factor: int
    api_token: Secret | None
    app_jwt_secret: Secret | None
    ably_api_key: Secret | None
    ably_endpoint: str | None
    ghl_ed25519_public_key: str | None
    ghl_rsa_public_key: str | None
    mongodb_uri: Secret | None
    kafka_libs: Path
    reminder_lead_seconds: int = 15 * 60
    """`STREAMS_REMINDER_LEAD_SECONDS`: how long before an appointment its reminder is sent."""
    ably_channel_rate: int = 50
    """`STREAMS_ABLY_CHANNEL_RATE`: messages a second the publisher sends on one channel at most
    (Ably's per-channel limit: 50 unless Ably raised it for the account)."""
    local_ably: bool = False
    """`STREAMS_LOCAL_ABLY=1`: `streams dev` (make run) runs a local Ably stand-in and uses it."""
    mongo_sink_uri: Secret | None = None
    """`STREAMS_MONGO_SINK_URI`: when set, the worker keeps the MongoDB read models current."""
    mongo_sink_database: str = "streams"
    """`STREAMS_MONGO_SINK_DB`: the database of the read models."""
    mongo_sink_projections: tuple[str, ...] = ()
    """`STREAMS_MONGO_SINK_PROJECTIONS` (comma-separated): the read models' projections; empty:
    every projection that has read models."""
    leave_group_on_stop: bool = False
    """`STREAMS_LEAVE_GROUP_ON_STOP=1`: a worker stopped (a signal, not a fault) leaves the
    consumer group, so its partitions move at once (a data directory that does not outlive the
    worker, a scale-down); unset, it stays a member until its session times out (10 s), and a
    restart on its data directory takes them back with no rebalance."""

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def web_host(self) -> str:
        # Without a bearer token the API must not be reachable from other machines.
        return "0.0.0.0" if self.api_token else "127.0.0.1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def secret(name: str) -> Secret | None:
            value = text(name)
            return Secret(value) if value else None

        def integer(name: str, default: int) -> int:
            raw = text(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {raw!r}") from None

        def flag(name: str) -> bool:
            raw = (text(name) or "0").lower()
            if raw not in ("0", "1", "true", "false", "yes", "no"):
                raise ValueError(f"{name} must be 1 or 0, got {raw!r}")
            return raw in ("1", "true", "yes")

        def pem(name: str) -> str | None:
            """A PEM key, given as its text or as the path of a file holding it."""
            raw = text(name)
            if raw is None or raw.lstrip().startswith("-----BEGIN"):
                return raw
            try:
                return Path(raw).expanduser().read_text().strip()
            except OSError as exc:
                raise ValueError(f"{name} is neither PEM text nor a readable file: {exc}") from None

        reminder_lead = integer("STREAMS_REMINDER_LEAD_SECONDS", 15 * 60)
        if reminder_lead < 0:
            raise ValueError(f"STREAMS_REMINDER_LEAD_SECONDS must be >= 0, got {reminder_lead}")
        channel_rate = integer("STREAMS_ABLY_CHANNEL_RATE", 50)
        if channel_rate < 1:
            raise ValueError(f"STREAMS_ABLY_CHANNEL_RATE must be >= 1, got {channel_rate}")
        bootstrap = text("STREAMS_KAFKA_BOOTSTRAP")
        embedded = bootstrap is None
        return cls(
            kafka_bootstrap=bootstrap,
            data_dir=Path(text("STREAMS_DATA_DIR") or ".data").resolve(),
            web_port=integer("STREAMS_WEB_PORT", 6066),
            webhook_max_bytes=integer("STREAMS_WEBHOOK_MAX_BYTES", 1024 * 1024),
            # Production clusters get 12 partitions and 3 replicas; the embedded dev broker fewer.
            partitions=integer("STREAMS_PARTITIONS", 4 if embedded else 12),
            replication_factor=integer("STREAMS_REPLICATION_FACTOR", 1 if embedded else 3),
            api_token=secret("STREAMS_API_TOKEN"),
            app_jwt_secret=secret("STREAMS_APP_JWT_SECRET"),
            ably_api_key=secret("ABLY_API_KEY"),
            ably_channel_rate=channel_rate,
            local_ably=flag("STREAMS_LOCAL_ABLY"),
            ably_endpoint=text("ABLY_ENDPOINT"),
            ghl_ed25519_public_key=pem("GHL_WEBHOOK_ED25519_PUBLIC_KEY"),
            ghl_rsa_public_key=pem("GHL_WEBHOOK_RSA_PUBLIC_KEY"),
            mongodb_uri=secret("MONGODB_URI"),
            kafka_libs=Path(text("STREAMS_KAFKA_LIBS") or REPO_ROOT / "infra" / "kafka" / "libs"),
            reminder_lead_seconds=reminder_lead,
            mongo_sink_uri=secret("STREAMS_MONGO_SINK_URI"),
            mongo_sink_database=text("STREAMS_MONGO_SINK_DB") or "streams",
            mongo_sink_projections=comma_separated(text("STREAMS_MONGO_SINK_PROJECTIONS")),
            leave_group_on_stop=flag("STREAMS_LEAVE_GROUP_ON_STOP"),
        )
