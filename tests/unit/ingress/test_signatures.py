from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from streams.ingress.signatures import SignatureError, Verifier

ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(public_key: object) -> str:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


VERIFIER = Verifier.from_pem(pem(ED_KEY.public_key()), pem(RSA_KEY.public_key()))
BODY = b'{"type":"ContactCreate","locationId":"L1","id":"c1"}'


def ed_sign(body: bytes) -> str:
    return base64.b64encode(ED_KEY.sign(body)).decode()


def rsa_sign(body: bytes) -> str:
    return base64.b64encode(RSA_KEY.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def test_ed25519_over_the_exact_bytes() -> None:
    assert VERIFIER.verify(BODY, {"X-GHL-Signature": ed_sign(BODY)}) == "ed25519"
    with pytest.raises(SignatureError, match="does not match"):
        VERIFIER.verify(BODY + b" ", {"X-GHL-Signature": ed_sign(BODY)})


def test_legacy_rsa_only_when_ed25519_is_absent() -> None:
    assert VERIFIER.verify(BODY, {"X-WH-Signature": rsa_sign(BODY)}) == "rsa"
    # A present, failing Ed25519 signature never falls back to a valid RSA one.
    with pytest.raises(SignatureError, match="X-GHL-Signature"):
        VERIFIER.verify(
            BODY, {"X-GHL-Signature": ed_sign(b"other"), "X-WH-Signature": rsa_sign(BODY)}
        )
    assert (
        VERIFIER.verify(BODY, {"X-GHL-Signature": "N/A", "X-WH-Signature": rsa_sign(BODY)}) == "rsa"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-GHL-Signature": "N/A"},
        {"X-GHL-Signature": "!!notbase64"},
        {"X-WH-Signature": base64.b64encode(b"short").decode()},
        {"X-GHL-Signature": base64.b64encode(b"short").decode()},  # not 64 bytes
        {"X-GHL-Signature": base64.b64encode(bytes(64)).decode()},
        {"X-GHL-Signature": base64.b64encode(ED_KEY.sign(BODY) + b"\0").decode()},
    ],
)
def test_missing_or_malformed_signatures_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        VERIFIER.verify(BODY, headers)


def test_highlevel_keys_are_the_default() -> None:
    default = Verifier.from_pem(None, None)
    with pytest.raises(SignatureError):
        default.verify(BODY, {"X-GHL-Signature": ed_sign(BODY)})  # our test key is not theirs
