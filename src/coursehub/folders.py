"""Make the Plan's folders and files on disk, with their owners and modes.

Many of them sit inside folders that graders and students own (a course's
exchange, a student's inbound folder, the grader's course folder), so every
operation goes through coursehub.safefs: directory descriptors walked down from
`/`, no link followed where another account could have made it.
"""

from __future__ import annotations

import os

from .plan import File, Folder, Plan
from .safefs import UnsafePathError, ensure_folder
from .safefs import write_file as _write

__all__ = ["UnsafePathError", "apply_layout", "make_folder", "make_home", "write_file"]


def make_folder(folder: Folder) -> None:
    ensure_folder(folder.path, folder.uid, folder.gid, folder.mode)


def write_file(f: File) -> bool:
    """Write one planned file. Returns False when it exists and is the course's own."""
    return _write(f.path, f.content.encode(), f.uid, f.gid, f.mode, overwrite=f.overwrite)


def apply_layout(plan: Plan) -> None:
    """Make every folder of the Plan, outermost first, then its files."""
    # the data folder's own parents are the operator's choice (root's), made as usual
    os.makedirs(os.path.dirname(plan.paths.data_dir.rstrip("/")) or "/", exist_ok=True)
    for folder in plan.folders:
        make_folder(folder)
    for f in plan.files:
        write_file(f)


def make_home(plan: Plan, name: str) -> str:
    """Make a person's home before their server starts (they are not system users)."""
    folder = plan.home_folder(name)
    make_folder(folder)
    return folder.path
