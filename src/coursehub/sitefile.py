"""Change a site file safely: keep its comments, check the result, write atomically.

The old file is kept beside it as FILE.bak. A change that would make the site
invalid raises SiteError and leaves the file as it was.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from .safefs import replace_in_folder
from .site import Site, SiteError, parse_site


def _yaml() -> YAML:
    y = YAML()  # round-trip: comments and key order survive
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


class SiteFileError(RuntimeError):
    """The site file cannot be rewritten safely; says why and what to do."""


def _open_nofollow(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise SiteFileError(
                f"{path} is a symbolic link: coursehub rewrites the site file in place and "
                "never through a link; give --site the file itself"
            ) from None
        raise


def read_raw(path: str | Path) -> Any:
    fd = _open_nofollow(Path(path))
    with os.fdopen(fd, encoding="utf-8") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SiteFileError(f"{path} is not a regular file")
        return _yaml().load(f)


def holds_secret(site: Site) -> bool:
    a = site.auth
    return bool(a.shared_secret or a.user_password or a.admin_password)


def write_site_text(
    path: str | Path, text: str, mode: int, owner: tuple[int, int] | None, backup: bool
) -> None:
    """Write the site file atomically in its folder: a new file (O_EXCL, no link
    followed) given `mode` and `owner`, renamed over the name; with `backup`, the old
    file is first copied to FILE.bak the same way. Nothing is written through a link."""
    path = Path(path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if backup:
            fd = _open_nofollow(path)
            with os.fdopen(fd, "rb") as f:
                old = f.read()
            replace_in_folder(dir_fd, f"{path.name}.bak", old, mode, owner)
        replace_in_folder(dir_fd, path.name, text.encode("utf-8"), mode, owner)
    finally:
        os.close(dir_fd)


def _plain(data: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists, for checking."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def change_site(path: str | Path, change: Callable[[Any], None]) -> Site:
    """Apply `change` to the site file's data, check it, and write it back atomically."""
    path = Path(path)
    data = read_raw(path)
    st = os.lstat(path)
    change(data)
    site = parse_site(_plain(data), str(path))  # SiteError: nothing is written
    out = io.StringIO()
    _yaml().dump(data, out)
    # its mode and owner kept; once it holds a secret, nobody else may read it
    mode = stat.S_IMODE(st.st_mode) & (0o600 if holds_secret(site) else 0o7777)
    write_site_text(path, out.getvalue(), mode, (st.st_uid, st.st_gid), backup=True)
    return site


__all__ = ["SiteError", "SiteFileError", "change_site", "read_raw", "write_site_text"]
