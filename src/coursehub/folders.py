"""Make the Plan's folders and files on disk, with their owners and modes."""

from __future__ import annotations

import os
from pathlib import Path

from .plan import File, Folder, Plan
from .secrets import write_private


def make_folder(folder: Folder) -> None:
    path = Path(folder.path)
    path.mkdir(mode=0o700, exist_ok=True)  # no wider than 0700 before the chown below
    st = path.lstat()
    if path.is_symlink() or not path.is_dir():
        raise RuntimeError(f"{path} should be a folder, and is not; move it away")
    if (st.st_uid, st.st_gid) != (folder.uid, folder.gid):
        os.chown(path, folder.uid, folder.gid)
    os.chmod(path, folder.mode)


def write_file(f: File) -> bool:
    """Write one planned file. Returns False when it exists and is the course's own."""
    path = Path(f.path)
    if path.exists() and not f.overwrite:
        return False
    if path.exists() and path.read_text() == f.content:
        os.chown(path, f.uid, f.gid)
        os.chmod(path, f.mode)
        return True
    write_private(path, f.content, mode=0o600)
    os.chown(path, f.uid, f.gid)
    os.chmod(path, f.mode)
    return True


def apply_layout(plan: Plan) -> None:
    """Make every folder of the Plan, outermost first, then its files."""
    Path(plan.paths.data_dir).parent.mkdir(parents=True, exist_ok=True)
    for folder in plan.folders:
        make_folder(folder)
    for f in plan.files:
        write_file(f)


def make_home(plan: Plan, name: str) -> str:
    """Make a person's home before their server starts (they are not system users)."""
    folder = plan.home_folder(name)
    make_folder(folder)
    return folder.path
