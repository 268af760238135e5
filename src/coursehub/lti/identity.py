"""The person an LMS launch names, as a safe hub username.

Only the LMS's stable user id counts (LTI 1.1 `user_id`, LTI 1.3 `sub` scoped
by its issuer): display names, e-mails and custom parameters can be changed or
chosen by the person or a course author, so they never decide who logs in.
"""

from __future__ import annotations

import hashlib
import re

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
