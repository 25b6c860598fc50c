"""Signed webhooks from a terminal, as HighLevel sends them, for trying a stack out.

`streams dev-key` writes a local Ed25519 key pair into the data directory; a worker started with
`GHL_WEBHOOK_ED25519_PUBLIC_KEY` naming its public half accepts webhooks signed with it.
`streams send FILE|-` signs each webhook of FILE (a JSON object, an array of them, or one per
line) with the private half, as HighLevel signs (`X-GHL-Signature`: base64 of the Ed25519
signature of the exact body bytes), and POSTs it to the worker's `/webhooks/ghl`.
`docs/samples/webhooks.jsonl` holds a realistic set for every webhook family.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.codec import dumps, loads
from streams.settings import Settings
from streams.worker_url import find_worker_url

__all__ = ["add_commands", "dev_key_paths", "read_webhooks", "signature"]

SEND_TIMEOUT = 30.0


def dev_key_paths(settings: Settings) -> tuple[Path, Path]:
    """(private key, public key) of the data directory's development key pair."""
    return settings.data_dir / "dev-key.pem", settings.data_dir / "dev-key.pub.pem"


def signature(key: Ed25519PrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body)).decode()


def read_webhooks(text: str) -> list[bytes]:
    """The webhook bodies in `text`: one JSON object, an array of them, or JSON Lines (each
    line's exact bytes). Raises ValueError naming what is not a JSON object."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = loads(stripped)
    except ValueError:
        whole = None  # JSON Lines
    if isinstance(whole, dict):
        return [stripped.encode()]
    if isinstance(whole, list):
        if not all(isinstance(item, dict) for item in whole):
            raise ValueError("the array holds something other than JSON objects")
        return [dumps(item) for item in whole]
    bodies = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            body = loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number} is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError(f"line {number} is not a JSON object")
        bodies.append(line.strip().encode())
    return bodies


def add_commands(sub: argparse._SubParsersAction) -> None:
    dev_key = sub.add_parser(
        "dev-key", help="make a local key pair to sign webhooks with (for `streams send`)"
    )
    dev_key.add_argument("--force", action="store_true", help="replace an existing key pair")
    dev_key.set_defaults(command=_dev_key)

    send = sub.add_parser("send", help="sign webhooks as HighLevel does and POST them to a worker")
    send.add_argument(
        "file", help="a JSON object, an array of them, or one per line; - reads standard input"
    )
    send.add_argument("--url", help="the worker's base URL (default: as `streams query`)")
    send.add_argument("--key", type=Path, help="private key PEM (default: `streams dev-key`'s)")
    send.set_defaults(command=_send)


def _dev_key(settings: Settings, args: argparse.Namespace) -> int:
    private, public = dev_key_paths(settings)
    if private.exists() and not args.force:
        print(f"{private} exists already (--force replaces it)")
    else:
        key = Ed25519PrivateKey.generate()
        private.parent.mkdir(parents=True, exist_ok=True)
        private.touch(mode=0o600)
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        print(f"wrote {private} (private, for `streams send`) and {public}")
    print("start the worker with this, and it accepts webhooks signed with the key:")
    print(f"  export GHL_WEBHOOK_ED25519_PUBLIC_KEY={public.resolve()}")
    return 0


def _send(settings: Settings, args: argparse.Namespace) -> int:
    key_path = args.key or dev_key_paths(settings)[0]
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ValueError(f"no key at {key_path}: run `streams dev-key` first") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{key_path} is not an Ed25519 private key")
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    url = f"{find_worker_url(settings, args.url)}/webhooks/ghl"
    failed = 0
    for body in read_webhooks(text):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-GHL-Signature": signature(key, body)},
        )
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        except urllib.error.URLError as exc:
            raise OSError(f"no worker answers at {url} ({exc.reason})") from None
        failed += status != 200
        payload = loads(body)
        kind = payload.get("type") or ("invoice" if "amountPaid" in payload else "?")
        print(f"{status} {kind} {payload.get('webhookId', '')}: {_short(answer)}")
    return 1 if failed else 0


def _short(answer: bytes) -> str:
    try:
        return json.dumps(loads(answer), separators=(", ", ": "))
    except ValueError:
        return answer.decode(errors="replace")[:200]
