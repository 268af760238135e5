"""What one LMS launch means for the site: who, which course, which role, where to land.

`decide` is pure (a launch and the Site in, a Decision out); `apply_to_site`
edits a site file's data for it with the roster's rules. The authenticators
in coursehub.hub.lti only verify the launch and carry these out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..roster import add_course, add_member, remove_member
from ..site import Site
from .courses import resolve_course, slug
from .identity import hashed_name, hub_name, identity_key
from .roles import INSTRUCTOR, STUDENT, course_role, lti11_roles


class LaunchRefused(Exception):
    """A verified launch that coursehub will not let in; the message is shown to the person."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Outcome:
    """Where a student's score for one assignment goes back.

    LTI 1.1 Basic Outcomes: the outcome service URL and the result sourcedid.
    LTI 1.3 Assignment and Grade Services: the context's line items URL, the
    LMS user id (`sub`) the score is for, and the link's own line item if the
    LMS made one.
    """

    service_url: str
    sourcedid: str
    lineitem: str = ""


@dataclass(frozen=True)
class Launch:
    """The verified facts of a launch that coursehub uses (nothing from custom_* decides
    identity or role)."""

    name: str
    role: str | None
    context_id: str
    context_label: str = ""
    context_title: str = ""
    issuer: str = ""  # consumer key (1.1) or issuer (1.3)
    assignment: str = ""  # the nbgrader assignment of the LMS link, when the link names one
    outcome: Outcome | None = field(default=None)
    identity: str = ""  # who the LMS person is (identity_key), whatever their hub name
    taken_name: str = ""  # their name when `name` is the site's for someone else


def lti11_launch(args: dict[str, str]) -> Launch:
    """The Launch of verified LTI 1.1 launch parameters."""
    outcome = None
    if args.get("lis_outcome_service_url") and args.get("lis_result_sourcedid"):
        outcome = Outcome(args["lis_outcome_service_url"], args["lis_result_sourcedid"])
    user_id, key = args.get("user_id", ""), "lti11:" + args.get("oauth_consumer_key", "")
    return Launch(
        name=hub_name(user_id),
        identity=identity_key(user_id, key) if user_id else "",
        taken_name=hashed_name(user_id, key),
        role=course_role(lti11_roles(args.get("roles"))),  # the signed field only
        context_id=args.get("context_id", ""),
        context_label=args.get("context_label", ""),
        context_title=args.get("context_title", ""),
        issuer=args.get("oauth_consumer_key", ""),
        # which assignment a link opens is course content, not a privilege: the
        # link's custom parameter 'assignment', else the link's title (the LMS's
        # assignment name, as Canvas sends it)
        assignment=slug(args.get("custom_assignment") or args.get("resource_link_title", ""), 64),
        outcome=outcome,
    )


LTI13_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"


def lti13_launch(claims: dict[str, Any]) -> Launch:
    """The Launch of a verified LTI 1.3 id_token's claims."""
    context = claims.get(LTI13_CLAIM + "context") or {}
    link = claims.get(LTI13_CLAIM + "resource_link") or {}
    custom = claims.get(LTI13_CLAIM + "custom") or {}
    ags = claims.get(AGS_CLAIM) or {}
    roles = claims.get(LTI13_CLAIM + "roles") or []
    sub = claims.get("sub", "")
    outcome = None
    if isinstance(ags, dict) and (ags.get("lineitems") or ags.get("lineitem")) and sub:
        outcome = Outcome(ags.get("lineitems") or "", sub, ags.get("lineitem") or "")
    custom_assignment = custom.get("assignment", "") if isinstance(custom, dict) else ""
    issuer = "lti13:" + str(claims.get("iss", ""))
    return Launch(
        name=hub_name(sub, issuer=claims.get("iss", "")),
        identity=identity_key(sub, issuer) if sub else "",
        taken_name=hashed_name(sub, issuer),
        role=course_role(roles if isinstance(roles, list) else []),  # the signed claim only
        context_id=str(context.get("id", "")),
        context_label=str(context.get("label", "")),
        context_title=str(context.get("title", "")),
        issuer=claims.get("iss", ""),
        assignment=slug(str(custom_assignment or link.get("title", "")), 64),
        outcome=outcome,
    )


@dataclass(frozen=True)
class Decision:
    name: str
    course_id: str
    course_title: str
    context_id: str
    role: str
    create_course: bool  # an instructor's first launch from an unknown context
    join: bool  # the site file does not have them in this course with this role yet


def decide(launch: Launch, site: Site) -> Decision:
    """What the launch does to the site, or LaunchRefused with a message for the person."""
    if launch.role is None:
        raise LaunchRefused(
            "Your role in this LMS course gives you no role in coursehub: Instructors, "
            "Teaching Assistants and Content Developers teach, Learners study. Ask your "
            "instructor if you think this is wrong."
        )
    ref = resolve_course(
        launch.context_id,
        launch.context_label,
        launch.context_title,
        pins=dict(site.auth.contexts),
        existing={c.id for c in site.courses},
    )
    if not ref.known:
        if launch.role != INSTRUCTOR:
            raise LaunchRefused(
                f"The course '{ref.title}' is not set up in coursehub yet. Your instructor "
                "sets it up by opening coursehub from this course once; then try again."
            )
        return Decision(
            launch.name, ref.course_id, ref.title, ref.context_id, INSTRUCTOR, True, True
        )
    course = site.course(ref.course_id)
    have = course.instructors if launch.role == INSTRUCTOR else course.students
    return Decision(
        launch.name, ref.course_id, course.title, ref.context_id, launch.role, False,
        launch.name not in have,
    )  # fmt: skip


def apply_to_site(data: Any, decision: Decision) -> None:
    """Edit the site file's data (ruamel's round-trip data) for a decision."""
    if decision.create_course:
        add_course(data, decision.course_id, decision.course_title, instructors=[decision.name])
        auth = data["auth"]
        if auth.get("contexts") is None:
            auth["contexts"] = {}
        auth["contexts"][decision.context_id] = decision.course_id  # its id never changes again
        return
    if not decision.join:
        return
    other = STUDENT if decision.role == INSTRUCTOR else INSTRUCTOR
    course = next(c for c in data["courses"] if c.get("id") == decision.course_id)
    if decision.name in (course.get(f"{other}s") or []):
        remove_member(data, decision.course_id, decision.name)  # the LMS changed their role
    add_member(data, decision.course_id, decision.name, decision.role)


def landing_path(base_url: str, decision: Decision) -> str:
    """Where the launch ends: instructors in the course's formgrader, students in their
    own server's Lab (started first if needed) with the Assignments panel open."""
    from ..plan import formgrader_path, service_prefix
    from ..workspaces import lab_landing

    if decision.role == INSTRUCTOR:
        return formgrader_path(service_prefix(base_url, decision.course_id))
    lab = lab_landing(base_url, decision.name)
    return f"{base_url}hub/spawn/{decision.name}?next={quote(lab, safe='')}"
