"""A minimal Faust app for the foundation test: one agent counts records per key into a table.

Run as `python counter_app.py BOOTSTRAP TOPIC DATADIR WEB_PORT`; `GET /counts` returns the table
once the worker has recovered it. Tests start, stop and restart it as a real worker process.
"""

from __future__ import annotations

import sys

import faust
from faust.web import Request, Response, View


def build(bootstrap: str, topic_name: str, datadir: str, web_port: int) -> faust.App:
    app = faust.App(
        "counter-test-" + topic_name,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=datadir,
        web_port=web_port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        topic_partitions=2,
        web_tables_enabled=False,
        autodiscover=False,
    )
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=2,
    )
    counts = app.Table("counts", default=int, partitions=2)
    recovered = {"done": False}

    async def on_recovered(sender: object = None, **kwargs: object) -> None:
        recovered["done"] = True

    app.on_rebalance_complete.connect(on_recovered)

    async def count(stream: faust.StreamT) -> None:
        async for key, _ in stream.items():
            counts[key.decode()] += 1

    app.agent(topic, name="count")(count)

    class Counts(View):
        async def get(self, request: Request) -> Response:
            if not recovered["done"]:
                return self.json({"status": "recovering"}, status=503)
            return self.json(dict(counts.items()))

    app.page("/counts")(Counts)
    return app


if __name__ == "__main__":
    bootstrap, topic_name, datadir, port = sys.argv[1:5]
    faust.Worker(
        build(bootstrap, topic_name, datadir, int(port)), loglevel="INFO"
    ).execute_from_commandline()
