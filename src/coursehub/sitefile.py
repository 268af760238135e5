"""Change a site file safely: keep its comments, check the result, write atomically.

The old file is kept beside it as FILE.bak. A change that would make the site
invalid raises SiteError and leaves the file as it was.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from .site import Site, SiteError, parse_site


def _yaml() -> YAML:
    y = YAML()  # round-trip: comments and key order survive
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def read_raw(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return _yaml().load(f)


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
    change(data)
    site = parse_site(_plain(data), str(path))  # SiteError: nothing is written
    out = io.StringIO()
    _yaml().dump(data, out)
    text = out.getvalue()
    shutil.copy2(path, path.with_name(path.name + ".bak"))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return site


__all__ = ["SiteError", "change_site", "read_raw"]
