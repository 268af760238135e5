"""The site file: what a person writes, checked before anything runs.

Loading is strict and reports every problem at once, each naming the field
and the fix, so that a wrong site file never starts or writes anything.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .names import course_id_problem, username_problem
from .sandbox import Limits, format_size, parse_size

# How people log in (auth.type), named once.
FIRST_USE, SHARED_PASSWORD, LTI11, LTI13 = "first-use", "shared-password", "lti11", "lti13"
AUTH_TYPES = (FIRST_USE, SHARED_PASSWORD, LTI11, LTI13)
LTI_TYPES = (LTI11, LTI13)
MIN_LTI_SECRET = 16
MIN_USER_PASSWORD = 8
MIN_ADMIN_PASSWORD = 32  # JupyterHub's own rule for shared admin passwords
# Courses an LMS launch may create (auth.course_creation): a term's start with a few
# instructors an hour passes; a leaked LTI 1.1 secret or a runaway LMS cannot make
# thousands of courses (each is folders, a gradebook and a grader server).
COURSES_PER_HOUR = 10  # per LMS (consumer key, or issuer and client id)
MAX_LAUNCH_COURSES = 200  # per installation, counting those that still exist

_NAME_LIST = {"type": "array", "items": {"type": "string"}}

# Environments with an image of their own on a Docker host (the POC's table).
IMAGE_ROLES = ("student", "instructor", "grader", "standard")
# The POC's image tags: {org}/notebook:learner|instructor|grader|standard.
IMAGE_TAGS = {
    "student": "learner",
    "instructor": "instructor",
    "grader": "grader",
    "standard": "standard",
}
DEFAULT_NETWORK = "jupyter-network"
# What the Docker host's images are built FROM (docker.base_images). Any Debian or
# Ubuntu image with Python 3 serves for the notebook and hub images, any with
# Node.js and npm for the proxy; a site with its own mirror or hardened bases names them.
BASE_IMAGE_KINDS = ("notebook", "hub", "proxy")
DEFAULT_BASE_IMAGES = {
    # Jupyter docker-stacks, pinned by date tag (a moving tag changes the images silently)
    "notebook": "quay.io/jupyter/minimal-notebook:2025-03-14",
    "hub": "python:3.12-slim-bookworm",
    "proxy": "node:20-bookworm-slim",
}

_DOCKER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "images": {
            "type": "object",
            "additionalProperties": False,
            "properties": {role: {"type": "string"} for role in IMAGE_ROLES},
        },
        "base_images": {
            "type": "object",
            "additionalProperties": False,
            "properties": {kind: {"type": "string"} for kind in BASE_IMAGE_KINDS},
        },
        "network": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "external": {"type": "boolean"}},
        },
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"memory": {"type": "string"}, "cpu": {"type": "number"}},
        },
    },
}

# A Docker image reference with a tag or a digest (an untagged name floats).
_IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})\Z"
)
_NETWORK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}\Z")  # \Z: `$` passes "x\n"
_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})\Z")
_MEMORY = re.compile(r"^[0-9]+(?:\.[0-9]+)?[KMGT]?\Z")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["org", "auth", "courses"],
    "properties": {
        "org": {"type": "string", "minLength": 1},
        "hub": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ip": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535 - 100},
                # URL path characters only: it goes into env files, shell and compose files
                "base_url": {"type": "string", "pattern": r"^/([A-Za-z0-9._~-]+/)*\Z"},
            },
        },
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"enum": list(AUTH_TYPES)},
                "min_password_length": {"type": "integer", "minimum": 1},
                "user_password": {"type": "string"},
                "admin_password": {"type": "string"},
                "consumer_key": {"type": "string"},
                "shared_secret": {"type": "string"},
                "issuer": {"type": "string"},
                "client_id": {"type": "string"},
                "jwks_url": {"type": "string"},
                "authorize_url": {"type": "string"},
                "token_url": {"type": "string"},
                "contexts": {"type": "object", "additionalProperties": {"type": "string"}},
                "deployment_ids": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "minLength": 1},
                },
                "course_creation": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "per_hour": {"type": "integer", "minimum": 0},
                        "max_courses": {"type": "integer", "minimum": 0},
                    },
                },
                # where grades may be sent (LTI 1.1: only these; LTI 1.3: also these)
                "outcome_hosts": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "minLength": 1},
                },
                "service_hosts": {"type": "array", "items": {"type": "string", "minLength": 1}},
            },
        },
        "admins": _NAME_LIST,
        "people": _NAME_LIST,
        "docker": _DOCKER_SCHEMA,
        # what a student's notebook may use while it is graded (coursehub.sandbox)
        "autograde": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cell_timeout": {"type": "integer", "minimum": 1, "maximum": 86400},
                "notebook_timeout": {"type": "integer", "minimum": 1, "maximum": 7 * 86400},
                "memory": {"type": "string"},
                "processes": {"type": "integer", "minimum": 8, "maximum": 100000},
                "disk": {"type": "string"},
            },
        },
        "courses": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "instructors": _NAME_LIST,
                    "students": _NAME_LIST,
                },
            },
        },
    },
}

# Which auth options belong to which auth type.
_AUTH_OPTIONS = {
    FIRST_USE: {"min_password_length"},
    SHARED_PASSWORD: {"user_password", "admin_password"},
    # LMS launches; key and secret may come from LTI_CONSUMER_KEY / LTI_SHARED_SECRET instead
    LTI11: {"consumer_key", "shared_secret", "contexts", "course_creation", "outcome_hosts"},
    LTI13: {
        "issuer",
        "client_id",
        "jwks_url",
        "authorize_url",
        "token_url",
        "contexts",
        "deployment_ids",
        "course_creation",
        "service_hosts",
    },
}
# the LTI options that are not plain strings (the Auth's fields of their own)
_LTI_STRUCTURED = (
    "contexts",
    "deployment_ids",
    "course_creation",
    "outcome_hosts",
    "service_hosts",
)
_LTI13_REQUIRED = ("issuer", "client_id", "jwks_url", "authorize_url")
_LTI13_URLS = ("issuer", "jwks_url", "authorize_url", "token_url")


class SiteError(ValueError):
    """A site file that cannot be used. `problems` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{source}: {len(problems)} problem(s) in the site file; nothing was started "
            f"or written:\n{lines}"
        )


@dataclass(frozen=True)
class Hub:
    ip: str = "127.0.0.1"
    port: int = 8000
    base_url: str = "/"


@dataclass(frozen=True)
class Auth:
    type: str
    min_password_length: int = 8
    user_password: str | None = field(default=None, repr=False)
    admin_password: str | None = field(default=None, repr=False)
    # LMS launches (lti11, lti13)
    consumer_key: str | None = None
    shared_secret: str | None = field(default=None, repr=False)
    issuer: str | None = None
    client_id: str | None = None
    jwks_url: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    contexts: tuple[tuple[str, str], ...] = ()  # LMS context id -> course id
    # LTI 1.3: the LMS deployments whose launches are accepted (none listed: all of the client)
    deployment_ids: tuple[str, ...] = ()
    # auth.course_creation: new courses from launches, per LMS an hour and in all
    courses_per_hour: int = COURSES_PER_HOUR
    max_launch_courses: int = MAX_LAUNCH_COURSES
    # LTI 1.1: the only hosts grades go to (None: any public https host)
    outcome_hosts: tuple[str, ...] | None = None
    # LTI 1.3: hosts grades may go to besides those of the platform's registration
    service_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Course:
    id: str
    title: str
    instructors: tuple[str, ...] = ()
    students: tuple[str, ...] = ()


@dataclass(frozen=True)
class Docker:
    """The optional `docker` section: how a Docker host runs the site (compose target)."""

    images: tuple[tuple[str, str], ...]  # (environment, image) for each of IMAGE_ROLES
    network: str = DEFAULT_NETWORK
    network_external: bool = True  # the POC's: made once, outside compose
    memory: str | None = None  # per person's server, Docker's units: "2G", "512M"
    cpu: float | None = None  # per person's server, in CPUs
    base_images: tuple[tuple[str, str], ...] = tuple(DEFAULT_BASE_IMAGES.items())

    def image(self, environment: str) -> str:
        return dict(self.images)[environment]

    def base_image(self, kind: str) -> str:
        """What the notebook, hub or proxy image is built FROM."""
        return dict(self.base_images)[kind]


def image_namespace(org: str) -> str:
    """The org's name as a Docker repository namespace: 'Example University' -> 'example-university'."""
    return re.sub(r"[^a-z0-9]+", "-", org.lower()).strip("-") or "coursehub"


def default_images(org: str) -> dict[str, str]:
    """The POC's images: {org}/notebook:learner|instructor|grader|standard."""
    ns = image_namespace(org)
    return {role: f"{ns}/notebook:{IMAGE_TAGS[role]}" for role in IMAGE_ROLES}


@dataclass(frozen=True)
class Site:
    org: str
    auth: Auth
    hub: Hub = Hub()
    admins: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    courses: tuple[Course, ...] = ()
    docker: Docker | None = None  # None: no docker section, the defaults apply
    autograde: Limits = Limits()

    def docker_settings(self) -> Docker:
        """The docker section, with the POC's defaults for whatever it leaves out."""
        if self.docker is not None:
            return self.docker
        return Docker(images=tuple(default_images(self.org).items()))

    @property
    def everyone(self) -> tuple[str, ...]:
        """Everyone who may log in: admins, people and every course's members, without
        repeats, in the order the site file first names them."""
        members = (n for c in self.courses for n in (*c.instructors, *c.students))
        return tuple(dict.fromkeys((*self.admins, *self.people, *members)))

    def course(self, course_id: str) -> Course:
        for course in self.courses:
            if course.id == course_id:
                return course
        raise KeyError(course_id)


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _schema_problem(error: Any) -> str:  # a jsonschema.ValidationError
    where = _path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hints = []
        for key in extra:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return (
            f"{where}: unknown key {', '.join(hints)}; allowed keys here are {', '.join(allowed)}"
        )
    if error.validator == "required":
        return f"{where}: {error.message}; add it"
    if error.validator == "type":
        want = error.validator_value
        return f"{where}: must be {'an' if want in ('array', 'integer', 'object') else 'a'} {want}, got {type(error.instance).__name__} {error.instance!r}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    if error.validator == "pattern" and where.endswith("base_url"):
        return (
            f"{where}: {error.instance!r} must start and end with '/' and use only letters, "
            "digits, '.', '_', '~' and '-' between them, for example '/' or '/hub-prefix/'"
        )
    if error.validator in ("minimum", "maximum"):
        return f"{where}: {error.instance!r} is out of range ({error.message})"
    return f"{where}: {error.message}"


def _check_unique(names: Iterable[str], where: str, problems: list[str]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        key = name.lower()
        if key in seen:
            if seen[key] == name:
                problems.append(f"{where}: {name!r} is listed twice; list it once")
            else:
                problems.append(
                    f"{where}: {seen[key]!r} and {name!r} differ only in case; "
                    "usernames are case-insensitive, keep one"
                )
        else:
            seen[key] = name


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    """The strings of a list (the schema reports anything else)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def parse_site(data: Any, source: str = "site file") -> Site:
    """Check raw site data (as loaded from YAML) and turn it into a Site."""
    _check_is_mapping(data, source)
    problems = _schema_problems(data)
    # Go on with what is well-formed, so that one run reports every problem.
    auth_data = _mapping(data.get("auth"))
    auth_type = _auth_type(auth_data, problems)
    admins, people = _people_lists(data, problems)
    raw_courses = data.get("courses") if isinstance(data.get("courses"), list) else []
    courses = [
        _course(f"courses[{ci}]", _mapping(raw), problems) for ci, raw in enumerate(raw_courses)
    ]
    _check_course_ids_unique([c.id for c in courses], problems)
    if auth_type == SHARED_PASSWORD:
        _shared_passwords(auth_data, admins, problems)
    if auth_type in LTI_TYPES:
        _lti_auth(auth_type, auth_data, problems)
    docker = _docker(data.get("docker"), data.get("org"), problems)
    autograde = _autograde(data.get("autograde"), problems)
    _check_free_text(data, raw_courses, problems)
    _check_hub_ip(_mapping(data.get("hub")), problems)

    if problems:
        raise SiteError(source, problems)

    return Site(
        org=data["org"],
        hub=_hub(data.get("hub", {})),
        auth=_auth(auth_type, auth_data),
        admins=tuple(admins),
        people=tuple(people),
        courses=tuple(courses),
        docker=docker,
        autograde=autograde,
    )


def _check_is_mapping(data: Any, source: str) -> None:
    """Nothing else can be checked in a file that is empty or not a mapping of keys."""
    if data is None:
        raise SiteError(source, ["the file is empty; run 'coursehub init' for a starter file"])
    if not isinstance(data, dict):
        raise SiteError(
            source, [f"(top level): must be a mapping of keys, got {type(data).__name__}"]
        )


def _schema_problems(data: dict[str, Any]) -> list[str]:
    """What the schema finds wrong in the shape, in the order of the fields' paths."""
    import jsonschema  # here, not at the top: importing it costs about 2 s (see plan loading)

    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [
        _schema_problem(e)
        for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]


# ---- auth


def _auth_type(auth_data: dict[str, Any], problems: list[str]) -> str | None:
    """The auth type when it is a known one; the options of another type are refused."""
    auth_type = auth_data.get("type") if auth_data.get("type") in AUTH_TYPES else None
    if auth_type:
        for key in sorted(set(auth_data) - {"type"} - _AUTH_OPTIONS[auth_type]):
            owner = next((t for t, opts in _AUTH_OPTIONS.items() if key in opts), None)
            if owner:
                problems.append(
                    f"auth.{key}: belongs to auth type {owner!r}, not {auth_type!r}; remove it"
                )
    return auth_type


def _shared_passwords(auth_data: dict[str, Any], admins: list[str], problems: list[str]) -> None:
    """Check the shared-password auth's passwords (admins need a long one of their own)."""
    user_pw = (
        auth_data.get("user_password") if isinstance(auth_data.get("user_password"), str) else ""
    )
    admin_pw = (
        auth_data.get("admin_password") if isinstance(auth_data.get("admin_password"), str) else ""
    )
    if not user_pw:
        problems.append(
            "auth.user_password: required for auth type 'shared-password'; add it "
            f"(at least {MIN_USER_PASSWORD} characters)"
        )
    elif len(user_pw) < MIN_USER_PASSWORD:
        problems.append(f"auth.user_password: must be at least {MIN_USER_PASSWORD} characters long")
    if admins:
        if not admin_pw or len(admin_pw) < MIN_ADMIN_PASSWORD:
            problems.append(
                f"auth.admin_password: with admins listed it must be set and at least "
                f"{MIN_ADMIN_PASSWORD} characters long (JupyterHub's rule for admins)"
            )
        elif admin_pw == user_pw:
            problems.append("auth.admin_password: must differ from auth.user_password")


def _auth(auth_type: str | None, auth_data: dict[str, Any]) -> Auth:
    """The Auth of a checked auth section (its type is then one of AUTH_TYPES)."""
    creation = _mapping(auth_data.get("course_creation"))
    return Auth(
        type=auth_type,
        min_password_length=auth_data.get("min_password_length", 8),
        user_password=auth_data.get("user_password"),
        admin_password=auth_data.get("admin_password"),
        **{
            k: auth_data.get(k)
            for k in _AUTH_OPTIONS[LTI13] | {"consumer_key", "shared_secret"}
            if k not in _LTI_STRUCTURED
        },
        contexts=tuple(_mapping(auth_data.get("contexts")).items()),
        deployment_ids=tuple(auth_data.get("deployment_ids") or ()),
        courses_per_hour=creation.get("per_hour", COURSES_PER_HOUR),
        max_launch_courses=creation.get("max_courses", MAX_LAUNCH_COURSES),
        outcome_hosts=(
            tuple(host_entry(h) for h in auth_data["outcome_hosts"])
            if auth_data.get("outcome_hosts")
            else None
        ),
        service_hosts=tuple(host_entry(h) for h in auth_data.get("service_hosts") or ()),
    )


# ---- people, admins and courses


def _check_names(names: list[str], where: str, problems: list[str]) -> None:
    """Each name must be a safe username, listed once (case-insensitively)."""
    for i, name in enumerate(names):
        if problem := username_problem(name):
            problems.append(f"{where}[{i}]: {name!r} {problem}")
    _check_unique(names, where, problems)


def _people_lists(data: dict[str, Any], problems: list[str]) -> tuple[list[str], list[str]]:
    """The admins and people lists (their strings; the schema reports anything else)."""
    admins = _strings(data.get("admins"))
    people = _strings(data.get("people"))
    for where, names in (("admins", admins), ("people", people)):
        _check_names(names, where, problems)
    return admins, people


def _course(where: str, raw: dict[str, Any], problems: list[str]) -> Course:
    """One course of the courses list: a safe id, safe members, nobody in both roles."""
    cid = raw.get("id") if isinstance(raw.get("id"), str) else ""
    if cid and (problem := course_id_problem(cid)):
        problems.append(f"{where}.id: {cid!r} {problem}")
    instructors = _strings(raw.get("instructors"))
    students = _strings(raw.get("students"))
    for role, names in (("instructors", instructors), ("students", students)):
        _check_names(names, f"{where}.{role}", problems)
    for name in sorted(set(instructors) & set(students)):
        problems.append(
            f"{where}: {name!r} is both instructor and student of {cid!r}; keep one role"
        )
    return Course(
        id=cid,
        title=raw.get("title") if isinstance(raw.get("title"), str) and raw["title"] else cid,
        instructors=tuple(instructors),
        students=tuple(students),
    )


def _check_course_ids_unique(course_ids: list[str], problems: list[str]) -> None:
    """A course id names folders, groups and a service: two may not differ only in case."""
    for i, cid in enumerate(course_ids):
        if cid and cid.lower() in {c.lower() for c in course_ids[:i]}:
            first = next(j for j, c in enumerate(course_ids) if c.lower() == cid.lower())
            problems.append(
                f"courses[{i}].id: {cid!r} is already the id of courses[{first}]; "
                "use another id for one of them"
            )


# ---- hub, and free text


def _check_free_text(data: dict[str, Any], raw_courses: list[Any], problems: list[str]) -> None:
    """Free text that reaches generated files (Python, shell, env files, systemd) and pages."""
    hub_raw = _mapping(data.get("hub"))
    texts = [("org", data.get("org")), ("hub.base_url", hub_raw.get("base_url"))]
    texts += [(f"courses[{i}].title", _mapping(c).get("title")) for i, c in enumerate(raw_courses)]
    for where, text in texts:
        if problem := control_character_problem(text):
            problems.append(f"{where}: {problem}")


def _check_hub_ip(hub_raw: dict[str, Any], problems: list[str]) -> None:
    """hub.ip goes into the hub's URL and the compose file's ports: an address or a name."""
    ip = hub_raw.get("ip")
    if isinstance(ip, str) and ip and not _is_address(ip):
        problems.append(
            f"hub.ip: {ip!r} is not an address; write an IP address or a host name, "
            "for example '127.0.0.1' or '0.0.0.0'"
        )


def _hub(hub_data: dict[str, Any]) -> Hub:
    """The Hub of a checked hub section, with the defaults for what it leaves out."""
    return Hub(
        ip=hub_data.get("ip", Hub.ip),
        port=hub_data.get("port", Hub.port),
        base_url=hub_data.get("base_url", Hub.base_url),
    )


def _autograde(raw: Any, problems: list[str]) -> Limits:
    """The autograde section's limits (the schema checks its shape and the numbers)."""
    raw = _mapping(raw)
    sizes: dict[str, int] = {}
    for key, smallest in (("memory", 256 << 20), ("disk", 1 << 20)):
        text = raw.get(key)
        if not isinstance(text, str):
            continue
        try:
            sizes[key] = parse_size(text)
        except ValueError:
            sizes[key] = -1
        if sizes[key] < smallest:
            problems.append(
                f"autograde.{key}: {text!r} is not a size of at least {format_size(smallest)}; "
                f"write a number with K, M or G, for example {format_size(getattr(Limits, key))!r}"
            )
    numbers = {
        k: raw[k]
        for k in ("cell_timeout", "notebook_timeout", "processes")
        if isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool)
    }
    limits = Limits(**numbers, **{k: v for k, v in sizes.items() if v > 0})
    if limits.cell_timeout > limits.notebook_timeout:
        problems.append(
            f"autograde.cell_timeout: {limits.cell_timeout} s is longer than the whole "
            f"notebook's autograde.notebook_timeout ({limits.notebook_timeout} s); make it shorter"
        )
    return limits


def autograde_to_data(limits: Limits) -> dict[str, Any]:
    """The autograde section, only what differs from the defaults."""
    out: dict[str, Any] = {}
    for key, value in asdict(limits).items():
        if value != getattr(Limits, key):
            out[key] = format_size(value) if key in ("memory", "disk") else value
    return out


def _is_address(text: str) -> bool:
    """An IP address or a host name: it goes into the hub's URL and the compose file's ports."""
    import ipaddress

    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(_HOST_NAME.match(text))


def control_character_problem(text: object) -> str | None:
    """Why free text (an org, a title) cannot be used, or None: a control character or a
    line break, which would end a line, a comment or a value in the files coursehub
    writes from it and which no name or title needs."""
    if not isinstance(text, str):
        return None  # the schema reports the type
    bad = sorted({ch for ch in text if unicodedata.category(ch) in ("Cc", "Zl", "Zp")})
    if not bad:
        return None
    shown = ", ".join(repr(ch) for ch in bad)
    return (
        f"has a control character or line break ({shown}); write it on one line, "
        "with spaces instead of tabs"
    )


def _lti_auth(auth_type: str, auth: dict[str, Any], problems: list[str]) -> None:
    """Check an LMS auth section's values (the schema checks its shape)."""
    from urllib.parse import urlsplit

    if auth_type == LTI11:
        secret = auth.get("shared_secret")
        if isinstance(secret, str) and len(secret) < MIN_LTI_SECRET:
            problems.append(
                f"auth.shared_secret: must be at least {MIN_LTI_SECRET} characters long; "
                "generate one, for example with 'openssl rand -hex 32'"
            )
    else:
        for key in _LTI13_REQUIRED:
            if not auth.get(key):
                problems.append(
                    f"auth.{key}: required for auth type 'lti13'; copy it from the LMS's "
                    "registration of coursehub"
                )
        for key in _LTI13_URLS:
            url = auth.get(key)
            if not isinstance(url, str) or not url:
                continue
            parts = urlsplit(url)
            local = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if parts.scheme != "https" and not (parts.scheme == "http" and local):
                problems.append(
                    f"auth.{key}: {url!r} must be an https:// URL (http:// only on loopback)"
                )
    for context, course in _mapping(auth.get("contexts")).items():
        if isinstance(course, str) and (problem := course_id_problem(course)):
            problems.append(f"auth.contexts.{context}: course id {course!r} {problem}")
    for key in ("outcome_hosts", "service_hosts"):
        for i, entry in enumerate(_strings(auth.get(key))):
            try:
                host_entry(entry)
            except ValueError as err:
                problems.append(f"auth.{key}[{i}]: {entry!r} {err}")


def host_entry(text: str) -> str:
    """A host of auth.outcome_hosts or auth.service_hosts, normalised: a host name or an
    IP address in lower case, with ':PORT' when the entry has one ('[v6]:PORT' for IPv6).
    Raises ValueError saying what to write instead."""
    host, port = split_host_entry(text)
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def split_host_entry(text: str) -> tuple[str, int | None]:
    """(host, port or None: any port) of a host entry; see host_entry."""
    import ipaddress

    hint = (
        "is not a host; write only its name or address, with ':PORT' to allow one port "
        "only, for example 'lms.example.edu', 'lms.example.edu:8443' or '10.0.0.5'"
    )
    entry = text.strip().lower()
    if not entry or any(c in entry for c in "/@?#*\\ \t") or "://" in entry:
        raise ValueError(hint + " (not a URL, no wildcards)")
    port: str | None = None
    if entry.startswith("["):  # [IPv6] or [IPv6]:PORT
        host, bracket, rest = entry[1:].partition("]")
        if not bracket:
            raise ValueError(hint)
        if rest:
            if not rest.startswith(":"):
                raise ValueError(hint)
            port = rest[1:]
    elif entry.count(":") > 1:  # a bare IPv6 address
        host = entry
    else:
        host, _, port = entry.partition(":")
        port = port if ":" in entry else None
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"has no port number after ':'; {hint}")
    host = host.rstrip(".")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if ":" in host or not _HOST_NAME.match(host) or ".." in host:
            raise ValueError(hint) from None
    return host, int(port) if port is not None else None


def _image_names(
    raw: dict, key: str, defaults: dict[str, str], problems: list[str]
) -> dict[str, str]:
    """docker.images or docker.base_images over their defaults; a name without a tag
    is a problem naming the field (unknown keys are the schema's)."""
    names = dict(defaults)
    for which, image in _mapping(raw.get(key)).items():
        if not isinstance(image, str) or which not in defaults:
            continue  # reported by the schema
        if not _IMAGE.match(image):
            problems.append(
                f"docker.{key}.{which}: {image!r} is not an image name with a tag; "
                f"write it as REPOSITORY:TAG, for example {defaults[which]!r}"
            )
        names[which] = image
    return names


def _docker(raw: Any, org: Any, problems: list[str]) -> Docker | None:
    """Check the docker section's values (the schema checks its shape)."""
    if raw is None:
        return None
    raw = _mapping(raw)
    images = _image_names(
        raw, "images", default_images(org if isinstance(org, str) else ""), problems
    )
    bases = _image_names(raw, "base_images", DEFAULT_BASE_IMAGES, problems)
    network = _mapping(raw.get("network"))
    name = network.get("name", DEFAULT_NETWORK)
    if isinstance(name, str) and not _NETWORK.match(name):
        problems.append(
            f"docker.network.name: {name!r} is not a Docker network name; use letters, digits, "
            f"'_', '.' and '-' (at most 63), for example {DEFAULT_NETWORK!r}"
        )
    limits = _mapping(raw.get("limits"))
    memory = limits.get("memory")
    if isinstance(memory, str) and (not _MEMORY.match(memory) or float(memory.rstrip("KMGT")) == 0):
        problems.append(
            f"docker.limits.memory: {memory!r} is not a size; write a number with K, M, G or T, "
            "for example '2G' or '512M'"
        )
    cpu = limits.get("cpu")
    if isinstance(cpu, bool) or (isinstance(cpu, int | float) and cpu <= 0):
        problems.append(
            f"docker.limits.cpu: {cpu!r} is not a number of CPUs; must be more than 0, "
            "for example 1 or 0.5"
        )
    return Docker(
        images=tuple(images.items()),
        network=name if isinstance(name, str) else DEFAULT_NETWORK,
        network_external=network.get("external", True) is not False,
        memory=memory if isinstance(memory, str) else None,
        cpu=float(cpu) if isinstance(cpu, int | float) and not isinstance(cpu, bool) else None,
        base_images=tuple(bases.items()),
    )


def load_site(path: str | Path) -> Site:
    """Read and check a site file. Raises SiteError with every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SiteError(
            str(path), ["no such file; run 'coursehub init' to write a starter site file"]
        ) from None
    except OSError as err:
        raise SiteError(str(path), [f"cannot read it: {err.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SiteError(
            str(path), [f"{where}not valid YAML ({getattr(err, 'problem', err)})"]
        ) from None
    return parse_site(data, str(path))


def site_to_data(site: Site) -> dict[str, Any]:
    """The site as plain data, in the site file's own shape (for writing it back)."""
    auth: dict[str, Any] = {"type": site.auth.type}
    if site.auth.type == FIRST_USE:
        auth["min_password_length"] = site.auth.min_password_length
    elif site.auth.type in LTI_TYPES:
        for key in sorted(_AUTH_OPTIONS[site.auth.type] - set(_LTI_STRUCTURED)):
            if getattr(site.auth, key) is not None:
                auth[key] = getattr(site.auth, key)
        if site.auth.deployment_ids:
            auth["deployment_ids"] = list(site.auth.deployment_ids)
        if site.auth.contexts:
            auth["contexts"] = dict(site.auth.contexts)
        creation = (site.auth.courses_per_hour, site.auth.max_launch_courses)
        if creation != (COURSES_PER_HOUR, MAX_LAUNCH_COURSES):
            auth["course_creation"] = {"per_hour": creation[0], "max_courses": creation[1]}
        if site.auth.outcome_hosts is not None:
            auth["outcome_hosts"] = list(site.auth.outcome_hosts)
        if site.auth.service_hosts:
            auth["service_hosts"] = list(site.auth.service_hosts)
    else:
        auth["user_password"] = site.auth.user_password
        if site.auth.admin_password:
            auth["admin_password"] = site.auth.admin_password
    data: dict[str, Any] = {
        "org": site.org,
        "hub": {"ip": site.hub.ip, "port": site.hub.port, "base_url": site.hub.base_url},
        "auth": auth,
        "admins": list(site.admins),
        "people": list(site.people),
        "courses": [
            {
                "id": c.id,
                "title": c.title,
                "instructors": list(c.instructors),
                "students": list(c.students),
            }
            for c in site.courses
        ],
    }
    if autograde := autograde_to_data(site.autograde):
        data["autograde"] = autograde
    if site.docker is not None:
        d = site.docker
        limits = {k: v for k, v in (("memory", d.memory), ("cpu", d.cpu)) if v is not None}
        data["docker"] = {
            "images": dict(d.images),
            "base_images": dict(d.base_images),
            "network": {"name": d.network, "external": d.network_external},
            **({"limits": limits} if limits else {}),
        }
    return data
