"""Start a process as one of the Plan's accounts, which are not system users.

The uid and groups are set directly (no passwd lookup), and nss_wrapper makes
the uid resolve to the account's name inside the process, so nbgrader files
submissions under the right student without touching /etc/passwd.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from .plan import Account

_NSS_WRAPPER_GLOBS = (
    "/usr/lib/*-linux-gnu/libnss_wrapper.so",
    "/usr/lib64/libnss_wrapper.so",
    "/usr/lib/libnss_wrapper.so",
)


def find_nss_wrapper() -> str | None:
    for pattern in _NSS_WRAPPER_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def demote(account: Account | None, cwd: str | None = None) -> Callable[[], None]:
    """A preexec_fn: reset inherited signal dispositions, then drop to `account`.

    With account None the process keeps coursehub's own uid (no isolation).
    """

    def preexec() -> None:
        # A parent started from a non-interactive shell may ignore SIGINT, and
        # children inherit that: then a graceful stop never arrives.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        if account is not None:
            os.setgroups(list(account.groups))
            os.setgid(account.gid)
            os.setuid(account.uid)
        os.umask(0o022)
        if cwd:
            os.chdir(cwd)

    return preexec


# Run as the account: makes the folders and writes each file without following a
# link it may have put there (the files arrive on stdin, never on a command line).
_WRITE = """
import json, os, sys
for folder, mode, name, content in json.load(sys.stdin):
    os.makedirs(folder, mode=mode, exist_ok=True)
    tmp = os.path.join(folder, "." + name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.replace(tmp, os.path.join(folder, name))
"""


def write_files_as(
    account: Account, files: list[tuple[str, int, str, str]], cwd: str, what: str
) -> None:
    """Write (folder, folder mode, name, content) files as `account`: root never writes
    into a folder that account controls, the account does, with its own rights."""
    isolated = os.geteuid() == 0 and account.uid != os.geteuid()
    # the system's Python (stdlib only): coursehub's own environment may not be
    # readable by the account's uid
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    proc = subprocess.run(  # noqa: S603 - fixed script
        [python, "-I", "-c", _WRITE],
        input=json.dumps(files),
        preexec_fn=demote(account if isolated else None, cwd=cwd),  # noqa: PLW1509
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": account.home},
        start_new_session=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not write {what} as {account.name}: {proc.stderr[-300:]}")
