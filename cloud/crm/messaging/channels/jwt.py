"""Compact JWTs signed with `cryptography`: RS256 (Google service-account assertions) and ES256
(APNs provider tokens, raw r||s signatures as JWS requires, not DER)."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """An RSA or EC private key from PEM (PKCS#8 or traditional); ValueError otherwise."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("expected an RSA or EC private key")
    return key


def sign(header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
    """`header.claims.signature` with RS256 for an RSA key, ES256 for a P-256 key."""
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    ).encode()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        raise TypeError("expected an RSA or EC private key")
    return signing_input.decode() + "." + b64url(signature)


def verify(token: str, public_key: Any) -> dict[str, Any] | None:
    """The claims when `token` is validly signed by `public_key` (RS256/ES256), else None."""
    try:
        head, body, sig = token.split(".")
        signing_input, signature = f"{head}.{body}".encode(), unb64url(sig)
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                return None
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            return None
        claims = json.loads(unb64url(body))
    except (ValueError, InvalidSignature):
        return None
    return claims if isinstance(claims, dict) else None
