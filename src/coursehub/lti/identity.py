"""The person an LMS launch names, as a safe hub username.

Only the LMS's stable user id counts (LTI 1.1 `user_id`, LTI 1.3 `sub` scoped
by its issuer): display names, e-mails and custom parameters can be changed or
chosen by the person or a course author, so they never decide who logs in.

A name from the LMS never takes over a name the site file has for someone else:
coursehub remembers which LMS person each launch-made name belongs to
(`LmsPeople`), and a launch whose plain name is the site's for anyone else (an
admin, a person written by hand, another LMS's user) gets the hashed form of
its id instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from pathlib import Path

from ..names import MAX_USERNAME, username_problem

_UNSAFE = re.compile(r"[^a-z0-9]+")
_HASH_CHARS = 12
_READABLE_CHARS = MAX_USERNAME - _HASH_CHARS - 1  # "{readable}-{hash}" fits


class LaunchIdentityError(ValueError):
    """The launch names nobody usable."""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:_HASH_CHARS]


def hub_name(user_id: str, issuer: str = "") -> str:
    """The hub username for the LMS user `user_id` (from `issuer`, LTI 1.3 only).

    An LTI 1.1 id that is already a safe username is kept as it is (Moodle's
    "42", Canvas's opaque hex ids), so that the site file stays readable. Any
    other id, and every LTI 1.3 `sub` (only unique within its issuer), becomes
    a readable part plus a hash of the exact id (and issuer), so two different
    ids never share a name, whatever their case or punctuation.
    """
    if not isinstance(user_id, str) or not user_id.strip():
        raise LaunchIdentityError(
            "the launch has no user id (LTI 1.1 'user_id', LTI 1.3 'sub'); "
            "the LMS must send its user id to this tool (check the tool's privacy settings)"
        )
    if not issuer and username_problem(user_id) is None:
        return user_id
    readable = _UNSAFE.sub("-", user_id.lower()).strip("-")[:_READABLE_CHARS].strip("-")
    digest = _digest(issuer, user_id)
    name = f"{readable}-{digest}" if readable else f"lti-{digest}"
    if username_problem(name) is not None:  # e.g. a readable part like "grader-..." or "root"
        name = f"lti-{digest}"
    return name


def identity_key(user_id: str, issuer: str) -> str:
    """Who an LMS person is, whatever their hub name: a digest of the LMS (consumer key
    or issuer) and its user id (no LMS id is stored in the clear)."""
    return hashlib.sha256(f"{issuer}\0{user_id}".encode()).hexdigest()


def hashed_name(user_id: str, issuer: str) -> str:
    """The name of an LMS person whose plain name is taken: 'lti-' and a hash."""
    return f"lti-{_digest('taken', issuer, user_id)}"


ANY_LMS = "*"  # a name made by launches before coursehub remembered whose it was


class NameTakenError(ValueError):
    """Both names an LMS person could have belong to someone else."""


def own_name(
    plain: str,
    key: str,
    alternative: str,
    site_names: Collection[str],
    admins: Collection[str],
    owners: dict[str, str],
) -> str:
    """The hub name of the LMS person `key`: `plain` unless the site has it for someone
    else (an admin always is someone else), then `alternative`."""

    def theirs(name: str) -> bool:
        if name in admins:
            return False
        owner = owners.get(name)
        if owner is not None:
            return owner in (key, ANY_LMS)
        return name not in site_names  # a name nobody has yet

    if theirs(plain):
        return plain
    if theirs(alternative):
        return alternative
    raise NameTakenError(
        f"the LMS's user id for you makes the name {plain!r}, which belongs to someone else "
        "here; ask the hub's operator"
    )


class LmsPeople:
    """Which LMS person each launch-made hub name belongs to (JSON, 0600, in the state
    folder): {name: identity_key}."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def owners(self) -> dict[str, str] | None:
        """The record, or None before the first launch was recorded."""
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None

    def owners_or_seed(self, course_members: Collection[str], admins: Collection[str]):
        """The record; before there is one, every course member the site has (but no
        admin) counts as a name earlier launches made (coursehub did not record them)."""
        found = self.owners()
        if found is not None:
            return found
        return {name: ANY_LMS for name in course_members if name not in admins}

    def claim(self, name: str, key: str, seed: dict[str, str]) -> None:
        from ..secrets import write_private

        owners = self.owners()
        owners = dict(seed) if owners is None else owners
        if owners.get(name) == key:
            return
        owners[name] = key
        write_private(self.path, json.dumps(owners, indent=1, sort_keys=True) + "\n")
