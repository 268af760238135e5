"""coursehub's own key for LTI 1.3: an RSA key made once, kept 0600 in the secrets folder.

The LMS knows coursehub by the public half, which the hub serves as a JSON Web
Key Set (GET /hub/lti13/jwks). The private half signs the JWT assertion with
which coursehub asks the LMS's token endpoint for an access token to send
grades (LTI Advantage's client-credentials grant).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..secrets import _check_private, write_private

TOOL_KEY_FILE = "lti13-tool-key.pem"
KEY_BITS = 2048
ALGORITHM = "RS256"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds


class ToolKeyError(RuntimeError):
    pass


def new_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def ensure_tool_key(secrets_dir: str | Path) -> Path:
    """The tool key's file, made now if missing; an existing key never changes (the LMS
    has its public half)."""
    path = Path(secrets_dir) / TOOL_KEY_FILE
    if not path.exists():
        write_private(path, new_private_key_pem())
    _check_private(path)
    return path


def load_tool_key(secrets_dir: str | Path) -> str:
    path = Path(secrets_dir) / TOOL_KEY_FILE
    if not path.exists():
        raise ToolKeyError(f"no LTI 1.3 tool key at {path}; 'coursehub up' makes it")
    _check_private(path)
    return path.read_text()


def key_id(public_jwk: dict[str, Any]) -> str:
    """The key's RFC 7638 thumbprint: the same key always has the same kid."""
    import base64
    import hashlib

    canonical = json.dumps(
        {k: public_jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(private_pem: str) -> dict[str, Any]:
    """The public half of the key as a JWK, with its kid, use and alg."""
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.pop("key_ops", None)  # 'use' says it (RFC 7517 4.3: not both)
    jwk["kid"] = key_id(jwk)
    jwk.update({"use": "sig", "alg": ALGORITHM})
    return jwk


def public_jwks(private_pem: str) -> dict[str, Any]:
    """The JSON Web Key Set the LMS reads to check coursehub's signatures."""
    return {"keys": [public_jwk(private_pem)]}


def client_assertion(
    private_pem: str,
    client_id: str,
    token_url: str,
    now: float | None = None,
    jti: str | None = None,
) -> str:
    """The signed JWT that authenticates coursehub at the LMS's token endpoint
    (IMS Security Framework, 4.1: iss and sub are the client id, aud the token URL)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        "jti": jti or uuid.uuid4().hex,
    }
    kid = public_jwk(private_pem)["kid"]
    return jwt.encode(claims, private_pem, algorithm=ALGORITHM, headers={"kid": kid})
