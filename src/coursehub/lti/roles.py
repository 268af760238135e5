"""An LMS role as a coursehub course role.

LMS Instructor, TeachingAssistant and ContentDeveloper teach (instructor);
Learner learns (student); any other role (Mentor, Observer, an institution
role such as Administrator) gives no role in the course. Roles come only from
the launch's signed `roles` field or claim, never from a custom parameter.
Both LTI 1.1 forms (short names and `urn:lti:role:ims/lis/...` URNs) and LTI
1.3's full URNs are understood, with their sub-roles.
"""

from __future__ import annotations

from collections.abc import Iterable

INSTRUCTOR, STUDENT = "instructor", "student"

_TEACHING = frozenset({"Instructor", "TeachingAssistant", "ContentDeveloper"})
_LEARNING = frozenset({"Learner"})

# Context (course) roles only: institution roles say nothing about this course.
_LTI11_CONTEXT = "urn:lti:role:ims/lis/"
_LTI13_CONTEXT = "http://purl.imsglobal.org/vocab/lis/v2/membership"


def principal_role(role: str) -> str | None:
    """The context role a single LMS role names ('Instructor', 'Learner', ...), or None.

    'urn:lti:role:ims/lis/TeachingAssistant/TeachingAssistantSection' -> 'TeachingAssistant';
    'http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant'
    -> 'Instructor'; 'http://purl.imsglobal.org/vocab/lis/v2/membership#Learner'
    -> 'Learner'; 'urn:lti:instrole:ims/lis/Instructor' (an institution role) -> None.
    """
    role = role.strip()
    if role.startswith(_LTI11_CONTEXT):
        return role[len(_LTI11_CONTEXT) :].split("/", 1)[0] or None
    if role.startswith(_LTI13_CONTEXT + "#"):
        return role[len(_LTI13_CONTEXT) + 1 :] or None
    if role.startswith(_LTI13_CONTEXT + "/"):
        # a sub-role, membership/{Principal}#{SubRole}: its principal role decides
        return role[len(_LTI13_CONTEXT) + 1 :].partition("#")[0] or None
    if ":" in role or "/" in role:
        return None  # some other vocabulary (institution or system roles)
    return role or None


def lti11_roles(field: str | None) -> list[str]:
    """LTI 1.1's `roles` launch field: a comma-separated list."""
    return [r.strip() for r in (field or "").split(",") if r.strip()]


def course_role(roles: Iterable[str]) -> str | None:
    """'instructor', 'student' or None for a launch's roles (teaching wins over learning)."""
    principals = {principal_role(r) for r in roles if isinstance(r, str)}
    if principals & _TEACHING:
        return INSTRUCTOR
    if principals & _LEARNING:
        return STUDENT
    return None
