"""Render a site into a compose folder on disk: the only code here that writes.

Everything is checked and rendered in memory first, so a bad site file or a
bad --out writes nothing. Then each file is written atomically (a temporary
file renamed over it). What an earlier render wrote is recorded by hash in
.coursehub-render.json: a file whose content is still what coursehub wrote is
brought up to date, a file someone changed (or that coursehub never wrote) is
kept unless --force. Secrets are read back from the env files, never made anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...ids import Ids
from ...plan import SYSTEM, layout_paths
from ...secrets import write_private
from ...site import load_site
from .envfiles import (
    ENV_JHUB,
    ENV_SERVICE,
    parse_env_file,
    secrets_from_env_files,
)
from .render import MANIFEST, ComposeInput, Rendered, compose_input
from .versions import pinned_closure
from .wheel import build_wheel

_ROOT = re.compile(r"^/[A-Za-z0-9._/-]*\Z")


class OutputError(ValueError):
    """--out cannot hold a compose folder; says what to do."""


@dataclass
class Outcome:
    out: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # changed by someone: not replaced
    removed: list[str] = field(default_factory=list)  # rendered before, not any more
    left: list[str] = field(default_factory=list)  # not rendered any more, but changed


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_out(out: Path) -> None:
    if out.is_symlink() and not out.exists():
        raise OutputError(f"--out {out} is a broken symbolic link; give a folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder; give a folder (made if missing)")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"--out {out}: {parent} is a file, not a folder")
            break


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def previous_secrets(out: Path) -> dict[str, str]:
    """The secrets of an earlier render into `out` (none when it is new)."""
    jhub = parse_env_file(_read(out / ENV_JHUB) or "")
    services = {}
    prefix = ENV_SERVICE.format(course="")
    if out.is_dir():
        for path in out.glob(prefix + "*"):
            services[path.name[len(prefix) :]] = parse_env_file(_read(path) or "")
    return secrets_from_env_files(jhub, services)


def previous_ids(out: Path, root: str) -> Ids:
    """Ids already given: the host's (it owns files with them), else the last render's."""
    ids_file = layout_paths(root, SYSTEM).ids_file
    on_host = Path(ids_file)
    rendered = out / "files" / ids_file.lstrip("/").removeprefix(root.strip("/")).lstrip("/")
    for path in (on_host, rendered):
        text = _read(path)
        if text:
            return Ids.from_json(text)
    return Ids()


def prepare_input(site_file: str, out: Path, root: str) -> ComposeInput:
    """Check and derive everything; raises SiteError, OutputError, ComposeError, ValueError."""
    site = load_site(site_file)
    check_out(out)
    if not root.startswith("/"):
        raise OutputError(f"--root {root} must be an absolute path, for example / (the default)")
    if not _ROOT.match(root):
        # it goes into passwd lines, volume specs (src:dst:ro), Dockerfiles and scripts
        raise OutputError(
            f"--root {root!r} may only use letters, digits, '/', '.', '_' and '-'; "
            "choose a plain path, for example /srv/coursehub-root"
        )
    return compose_input(
        site,
        root,
        ids=previous_ids(out, root),
        secrets=previous_secrets(out),
        pins=pinned_closure(),
        wheel=build_wheel(),
        site_file=site_file,
    )


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write a file whole or not at all, with its mode from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, data, mode)


def write_folder(out: Path, files: dict[str, Rendered], force: bool = False) -> Outcome:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    try:
        recorded: dict[str, str] = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        recorded = {}
    outcome = Outcome(out)
    manifest: dict[str, str] = {}
    for name, rendered in sorted(files.items()):
        path = out / name
        current = path.read_bytes() if path.is_file() else None
        if current == rendered.content:
            outcome.unchanged.append(name)
            manifest[name] = _sha(current)
            if rendered.secret:
                os.chmod(path, rendered.mode)  # never wider than 0600, even if kept
            continue
        ours = current is not None and recorded.get(name) == _sha(current)
        if current is None or ours or force:
            if path.is_symlink() or (path.exists() and not path.is_file()):
                path.unlink() if path.is_symlink() else None
            write_atomic(path, rendered.content, rendered.mode)
            outcome.written.append(name)
            manifest[name] = _sha(rendered.content)
        else:
            outcome.kept.append(name)
            if name in recorded:
                manifest[name] = recorded[name]
            if rendered.secret:
                os.chmod(path, rendered.mode)
    for name in sorted(set(recorded) - set(files)):
        path = out / name
        if not path.is_file():
            continue
        if _sha(path.read_bytes()) == recorded[name] or force:
            path.unlink()
            outcome.removed.append(name)
        else:
            outcome.left.append(name)
    write_atomic(
        manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(), 0o644
    )
    return outcome
