"""The LMS's shared secret (LTI 1.1): from the site file or the environment, kept 0600.

As in the POC, LTI_CONSUMER_KEY and LTI_SHARED_SECRET may carry them instead of
the site file; whichever gives them, they are stored in the installation's
secrets folder for the hub and never printed. Everything that runs later (the
hub, an apply started by a launch, `coursehub member add` from another shell,
a reboot) finds them there: the variables are only needed at the first `up`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..secrets import _check_private, write_private
from ..site import LTI11, Site

CREDENTIALS_FILE = "lti.json"
ENV_KEY, ENV_SECRET = "LTI_CONSUMER_KEY", "LTI_SHARED_SECRET"


class CredentialsError(RuntimeError):
    pass


def lti11_credentials(
    site: Site, environ: Mapping[str, str] = os.environ, secrets_dir: str | Path | None = None
) -> tuple[str, str]:
    """(consumer key, shared secret): the site file's, else the environment's, else
    those stored at an earlier `up` in `secrets_dir`."""
    stored = _stored(secrets_dir)
    key = site.auth.consumer_key or environ.get(ENV_KEY, "") or stored.get("consumer_key", "")
    secret = (
        site.auth.shared_secret or environ.get(ENV_SECRET, "") or stored.get("shared_secret", "")
    )
    missing = [
        what
        for what, value in (
            (f"auth.consumer_key (or {ENV_KEY})", key),
            (f"auth.shared_secret (or {ENV_SECRET})", secret),
        )
        if not value
    ]
    if missing:
        raise CredentialsError(
            f"auth type 'lti11' needs {' and '.join(missing)}: set them in the site file or "
            "in the environment of 'coursehub up'; the LMS's registration of coursehub uses "
            "the same two values"
        )
    return key, secret


def store_lti_credentials(
    site: Site, secrets_dir: str | Path, environ: Mapping[str, str] = os.environ
) -> None:
    """Store what the hub needs to check launches (LTI 1.1 only; 1.3 uses public keys)."""
    if site.auth.type != LTI11:
        return
    key, secret = lti11_credentials(site, environ, secrets_dir)
    write_private(
        Path(secrets_dir) / CREDENTIALS_FILE,
        json.dumps({"consumer_key": key, "shared_secret": secret}) + "\n",
    )


def _stored(secrets_dir: str | Path | None) -> dict[str, str]:
    if secrets_dir is None:
        return {}
    path = Path(secrets_dir) / CREDENTIALS_FILE
    if not path.exists():
        return {}
    _check_private(path)
    return json.loads(path.read_text())


def load_lti_credentials(
    secrets_dir: str | Path, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The stored credentials; on a Docker host the hub's own environment (env.jhub)."""
    stored = _stored(secrets_dir)
    if stored:
        return stored
    path = Path(secrets_dir) / CREDENTIALS_FILE
    if environ.get(ENV_KEY) and environ.get(ENV_SECRET):
        return {"consumer_key": environ[ENV_KEY], "shared_secret": environ[ENV_SECRET]}
    raise CredentialsError(
        f"no LTI 1.1 credentials: {path} is missing and {ENV_KEY}/{ENV_SECRET} are not set"
    )
