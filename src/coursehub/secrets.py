"""Secrets: generated once, stored mode 0600 in the data folder, reused after.

Nothing here prints a secret. The store is one JSON file that only the account
running coursehub can read; the hub's cookie secret also gets the file
JupyterHub itself expects.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import stat
from pathlib import Path

SECRETS_FILE = "secrets.json"
COOKIE_SECRET_FILE = "jupyterhub_cookie_secret"  # noqa: S105 - a file name


class SecretFileError(RuntimeError):
    pass


def write_private(path: Path, content: str | bytes, mode: int = 0o600) -> None:
    """Write a file atomically, with its mode (by default readable only by its owner) from
    the first byte."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def private_file(path: str | Path) -> Path:
    """Make `path` exist with mode 0600 (before SQLite opens it: SQLite keeps the mode
    of an existing file, and a new one would get the umask's)."""
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretFileError(
            f"{path} has mode {mode:o}: others can read it. Run 'chmod 600 {path}' "
            "and rotate the secrets in it if anyone else may have read them."
        )


def secret_names(course_ids: list[str]) -> list[str]:
    """Every secret an installation needs for these courses."""
    return [
        "cookie_secret",
        "crypt_key",
        "proxy_auth_token",
        "automation_token",
        *(f"service_token:{c}" for c in course_ids),
    ]


def ensure_secrets(secrets_dir: str | Path, course_ids: list[str]) -> dict[str, str]:
    """Load the secrets, generating the missing ones. Existing ones never change."""
    secrets_dir = Path(secrets_dir)
    path = secrets_dir / SECRETS_FILE
    current: dict[str, str] = {}
    if path.exists():
        _check_private(path)
        current = json.loads(path.read_text())
    missing = [n for n in secret_names(course_ids) if n not in current]
    if missing:
        for name in missing:
            current[name] = _random.token_hex(32)
        write_private(path, json.dumps(current, indent=1, sort_keys=True) + "\n")
    cookie = secrets_dir / COOKIE_SECRET_FILE
    if not cookie.exists() or cookie.read_text().strip() != current["cookie_secret"]:
        write_private(cookie, current["cookie_secret"] + "\n")
    _check_private(cookie)
    return current


def load_secrets(secrets_dir: str | Path) -> dict[str, str]:
    path = Path(secrets_dir) / SECRETS_FILE
    _check_private(path)
    return json.loads(path.read_text())


def store_shared_passwords(secrets_dir: str | Path, passwords: dict[str, str | None]) -> None:
    """The demo's shared passwords, for the hub only (they live in the site file too)."""
    write_private(Path(secrets_dir) / "shared_passwords.json", json.dumps(passwords) + "\n")


def load_shared_passwords(secrets_dir: str | Path) -> dict[str, str | None]:
    path = Path(secrets_dir) / "shared_passwords.json"
    _check_private(path)
    return json.loads(path.read_text())
