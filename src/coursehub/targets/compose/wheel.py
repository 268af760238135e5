"""A wheel of the running coursehub, for the images to install.

Built from the installed package itself (its modules, its metadata and entry
points), so the images run exactly the coursehub that rendered them, without
a build backend or a network. The bytes do not depend on when it is built:
rendering again gives the same file.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import io
import zipfile
from pathlib import Path

import coursehub

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record: the same bytes every time


def wheel_name(version: str | None = None) -> str:
    return f"coursehub-{version or metadata.version('coursehub')}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def package_files(package_dir: Path | None = None) -> dict[str, bytes]:
    """The package's files by their path in a wheel (coursehub/...), without caches."""
    package_dir = package_dir or Path(coursehub.__file__).parent
    files: dict[str, bytes] = {}
    for path in sorted(package_dir.rglob("*")):
        rel = path.relative_to(package_dir)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files[f"coursehub/{rel.as_posix()}"] = path.read_bytes()
    return files


def build_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of a wheel of the installed coursehub."""
    dist = metadata.distribution("coursehub")
    info = f"coursehub-{dist.version}.dist-info"
    files = package_files()
    files[f"{info}/METADATA"] = (dist.read_text("METADATA") or "").encode()
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        files[f"{info}/entry_points.txt"] = entry_points.encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: coursehub render compose\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    return wheel_name(dist.version), buffer.getvalue()
