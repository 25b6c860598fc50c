"""Apache Kafka as local processes, from the jars `make kafka` puts in infra/kafka/libs.

`LocalKafka(root)` runs one combined broker+controller node; `LocalKafka(root, nodes=3)` a
three-node cluster on one host (replication 3, min ISR 2). The free ports taken on first start and
the cluster id are recorded in `root/kafka.json`, so a restart reuses them and the CLI, given the
same data directory, finds its own broker (`recorded_bootstrap`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

from aiokafka.admin import AIOKafkaAdminClient

from streams.errors import StreamsError
from streams.processes import die_with_parent
from streams.settings import REPO_ROOT, Settings

__all__ = ["BrokerError", "LocalKafka", "brokers_answering", "recorded_bootstrap"]

TEMPLATE = REPO_ROOT / "infra" / "kafka" / "server.properties.template"
STATE_FILE = "kafka.json"


class BrokerError(StreamsError, RuntimeError):
    """The local broker could not be started; the message carries the tail of its log."""


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int
    controller_port: int


def recorded_bootstrap(root: Path) -> str | None:
    """The bootstrap address of the broker last started under `root`, if any."""
    try:
        state = json.loads((root / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    return ",".join(f"127.0.0.1:{n['port']}" for n in state["nodes"])


class LocalKafka:
    def __init__(self, root: Path, *, libs: Path, nodes: int = 1, heap: str = "512m") -> None:
        if nodes not in (1, 3):
            raise ValueError("a local Kafka is one node or a three-node cluster")
        self.root = root
        self.libs = libs
        self.heap = heap
        self.cluster_id, self.nodes = self._load_or_create_layout(nodes)
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Format any unformatted node and start every node that is not running."""
        for node in self.nodes:
            self.start_node(node.node_id)

    def start_node(self, node_id: int) -> None:
        if node_id in self._processes and self._processes[node_id].poll() is None:
            return
        node = self._node(node_id)
        config = self._write_config(node)
        if not (self._log_dir(node) / "meta.properties").exists():
            self._java(
                # `--cluster-id=` form: a random id may begin with "-", which would read as an option.
                [
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={self.cluster_id}",
                    "-c",
                    str(config),
                ],
                wait=True,
                log=self._node_dir(node) / "format.log",
            )
        self._processes[node_id] = self._java(
            [
                f"-Xms{self.heap}",
                f"-Xmx{self.heap}",
                "-XX:+UseG1GC",
                f"-Dkafka.logs.dir={self._node_dir(node) / 'logs'}",
                "kafka.Kafka",
                str(config),
            ],
            log=self._node_dir(node) / "broker.log",
        )

    def stop_node(self, node_id: int, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop one node: SIGTERM (a clean shutdown), or SIGKILL with `kill=True`."""
        process = self._processes.pop(node_id, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            # A node can stall in shutdown once the quorum is gone.
            process.kill()
            process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node_id in list(self._processes):
            process = self._processes[node_id]
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    async def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait until every running node answers a metadata request; return the seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        expected = len(self._processes)
        while True:
            self._raise_if_exited()
            if await self._brokers_up() >= expected:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"Kafka did not answer within {timeout:.0f}s\n{self._log_tails()}"
                )
            await asyncio.sleep(0.5)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    async def _brokers_up(self) -> int:
        running = [n for n in self.nodes if n.node_id in self._processes]
        if not any(_port_open(n.port) for n in running):
            return 0
        return await brokers_answering(",".join(f"127.0.0.1:{n.port}" for n in running))

    def _raise_if_exited(self) -> None:
        for node_id, process in self._processes.items():
            if process.poll() is not None:
                node = self._node(node_id)
                raise BrokerError(
                    f"Kafka node {node_id} exited with code {process.returncode}\n"
                    + _tail(self._node_dir(node) / "broker.log")
                )

    def _log_tails(self) -> str:
        return "\n".join(_tail(self._node_dir(n) / "broker.log") for n in self.nodes)

    def _load_or_create_layout(self, count: int) -> tuple[str, list[Node]]:
        state_file = self.root / STATE_FILE
        if state_file.exists():
            state = json.loads(state_file.read_text())
            nodes = [Node(**n) for n in state["nodes"]]
            if len(nodes) == count:
                return state["cluster_id"], nodes
            raise BrokerError(f"{state_file} describes {len(nodes)} nodes, not {count}")
        ports = _free_ports(2 * count)
        nodes = [Node(i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(count)]
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.root.mkdir(parents=True, exist_ok=True)
        state_file.write_text(
            json.dumps({"cluster_id": cluster_id, "nodes": [n.__dict__ for n in nodes]}, indent=2)
        )
        return cluster_id, nodes

    def _node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    def _node_dir(self, node: Node) -> Path:
        return self.root / f"node-{node.node_id}"

    def _log_dir(self, node: Node) -> Path:
        return self._node_dir(node) / "data"

    def _write_config(self, node: Node) -> Path:
        replication = len(self.nodes)
        text = Template(TEMPLATE.read_text()).substitute(
            NODE_ID=node.node_id,
            QUORUM_VOTERS=",".join(
                f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes
            ),
            LISTEN_HOST="127.0.0.1",
            ADVERTISED_HOST="127.0.0.1",
            PORT=node.port,
            CONTROLLER_PORT=node.controller_port,
            LOG_DIR=self._log_dir(node),
            REPLICATION=replication,
            MIN_ISR=min(2, replication),
        )
        path = self._node_dir(node) / "server.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def _java(self, args: list[str], *, log: Path, wait: bool = False) -> subprocess.Popen[bytes]:
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"no Kafka jars in {self.libs}: run `make kafka` first")
        java = Path(os.environ["JAVA_HOME"], "bin", "java") if "JAVA_HOME" in os.environ else None
        command = [
            str(java) if java else (shutil.which("java") or "java"),
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-cp",
            f"{self.libs}/*",
            *args,
        ]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session keeps Ctrl-C away from the broker (we stop it after the worker);
                # the parent-death signal stops it if we die without cleaning up.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        if wait and process.wait() != 0:
            raise BrokerError(f"{' '.join(args[:2])} failed\n{_tail(log)}")
        return process


async def brokers_answering(bootstrap: str) -> int:
    """How many brokers the cluster at `bootstrap` reports; 0 while it does not answer."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster["brokers"])
    except Exception:
        return 0
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return f"--- {path} ---\n" + "\n".join(
            path.read_text(errors="replace").splitlines()[-lines:]
        )
    except FileNotFoundError:
        return f"--- {path}: no log ---"


def kafka_bootstrap(settings: Settings) -> str:
    """Where the configured Kafka is: STREAMS_KAFKA_BOOTSTRAP, or the embedded broker of
    STREAMS_DATA_DIR."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    recorded = recorded_bootstrap(settings.data_dir / "kafka")
    if recorded is None:
        raise BrokerError(
            f"no Kafka: set STREAMS_KAFKA_BOOTSTRAP, or start the embedded stack "
            f"(`make run` / `streams dev`) with STREAMS_DATA_DIR={settings.data_dir}"
        )
    return recorded
