"""derive(site) -> Plan: every decision coursehub makes, in one pure step.

Users, groups, roles and scopes, services and ports, uids and gids, folders
with owners and modes, the three nbgrader config layers and the extension set
per role are all decided here, with no I/O, so the security model is decided
once and tested once. Targets only render and run a Plan.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .ids import GRADER_PORT_OFFSET, Ids, allocate
from .names import grader_account
from .paths import LAYOUTS, LOCAL, SYSTEM, Paths, gradebook_file, layout_paths, receipts_file
from .sandbox import PROVISIONER_NAME, Limits, format_size
from .site import COURSES_PER_HOUR, FIRST_USE, LTI_TYPES, MAX_LAUNCH_COURSES, Site
from .site import Auth as SiteAuth

ROOT = 0
# nbgrader's autograde steps, with coursehub's Execute (limits are graded, not lost)
AUTOGRADE_STEPS = (
    "coursehub.grading.execute.LimitedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
)
SERVICE_NAME = "coursehub"  # the automation service coursehub itself uses
# coursehub's one scope of its own: load the Plan's new courses into the running hub
# (roles, groups, grader service) without a restart; only coursehub's token holds it
LOAD_COURSES_SCOPE = "custom:coursehub:load-courses"
LOAD_COURSES_PATH = "/coursehub/courses"  # under the hub's prefix (/hub/)

# SYSTEM runs each part in its own container on one network (the POC's names
# and ports): the hub answers at jupyterhub:8081, the proxy's API at proxy:8001
# and each course's grader service at {course}:8888.
SYSTEM_HUB_HOST, SYSTEM_HUB_PORT = "jupyterhub", 8081
SYSTEM_PROXY_HOST, SYSTEM_PROXY_API_PORT = "proxy", 8001
SYSTEM_GRADER_PORT = 8888
PROXY_ROUTES_PATH = "/api/routes"
HUB_HEALTH_PATH = "hub/health"  # under the base URL

# Environments a person's server can have, from the POC's extension table.
STUDENT, INSTRUCTOR, STANDARD, GRADER = "student", "instructor", "standard", "grader"

_SERVER_EXTENSIONS = {
    "assignment_list": "nbgrader.server_extensions.assignment_list",
    "course_list": "nbgrader.server_extensions.course_list",
    "formgrader": "nbgrader.server_extensions.formgrader",
    "validate_assignment": "nbgrader.server_extensions.validate_assignment",
    # the Assignments panel opens on the course of the last LMS launch (with assignment_list)
    "launched_course": "coursehub.launched_course",
}
# Server extensions no environment uses: off everywhere. jupyter_lsp (language servers; none
# is installed) runs `npm prefix -g` and scans for servers at every server start.
_UNUSED_SERVER_EXTENSIONS = ("jupyter_lsp",)
_LAB_PLUGINS = {
    "assignment_list": "@jupyter/nbgrader:assignment-list",
    "course_list": "@jupyter/nbgrader:course-list",
    "formgrader": "@jupyter/nbgrader:formgrader",
    "create_assignment": "@jupyter/nbgrader:create-assignment",
    "validate_assignment": "@jupyter/nbgrader:validate-assignment",
}
# Off in every environment: JupyterLab's news pop-up and update check (no server reaches
# the internet, and a student should not be asked about Jupyter's news).
_LAB_PLUGINS_OFF = ("@jupyterlab/apputils-extension:announcements",)
_LAB_APP_SETTINGS = {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}
# What each environment gets (anything not listed is off, on the server and in Lab).
EXTENSIONS: dict[str, frozenset[str]] = {
    STUDENT: frozenset({"assignment_list", "launched_course", "validate_assignment"}),
    INSTRUCTOR: frozenset(
        {"assignment_list", "launched_course", "course_list", "validate_assignment"}
    ),
    GRADER: frozenset({"create_assignment", "formgrader", "validate_assignment"}),
    STANDARD: frozenset(),
}


@dataclass(frozen=True)
class Account:
    """An OS identity a server runs as. Users are not system users: the uid is ours."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


@dataclass(frozen=True)
class Folder:
    path: str
    uid: int
    gid: int
    mode: int
    why: str


@dataclass(frozen=True)
class File:
    path: str
    content: str
    uid: int
    gid: int
    mode: int
    overwrite: bool = True  # False: written once, then the course's own


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    scopes: tuple[str, ...]
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    services: tuple[str, ...] = ()

    def to_hub(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Person:
    name: str
    account: Account
    admin: bool
    courses: dict[str, str]  # course id -> "instructor" | "student"
    environment: str
    server_token_scopes: tuple[str, ...]
    config_dir: str  # the read-only Jupyter config folder of their environment


@dataclass(frozen=True)
class GraderService:
    """The course's shared grader notebook: a hub service named exactly as the course."""

    course_id: str
    title: str
    account: Account
    port: int
    url: str
    prefix: str
    course_root: str
    config_dir: str
    oauth_client_id: str
    instructors: tuple[str, ...]
    students: tuple[str, ...]

    @property
    def oauth_callback(self) -> str:
        return f"{self.prefix}oauth_callback"

    @property
    def formgrader_url(self) -> str:
        return formgrader_path(self.prefix)

    @property
    def health_url(self) -> str:
        """Where the grader server answers when it is ready (its own API, no token)."""
        return f"{self.url}{self.prefix}api"

    @property
    def gradebook(self) -> str:
        return gradebook_file(self.course_root)

    @property
    def receipts(self) -> str:
        return receipts_file(self.course_root)


@dataclass(frozen=True)
class PlanAuth:
    """The site's auth section as the hub and the grade sender read it. No secret is
    here: the LMS's key and secret, and shared passwords, live in the secrets folder."""

    type: str
    min_password_length: int = 8  # first-use
    # LMS launches: the LTI 1.3 platform's registration
    issuer: str = ""
    client_id: str = ""
    jwks_url: str = ""
    authorize_url: str = ""
    token_url: str = ""
    contexts: dict[str, str] = field(default_factory=dict)  # LMS context id -> course id
    deployment_ids: tuple[str, ...] = ()
    # read by the hub at each launch (auth.course_creation)
    courses_per_hour: int = COURSES_PER_HOUR
    max_launch_courses: int = MAX_LAUNCH_COURSES
    outcome_hosts: tuple[str, ...] | None = None  # LTI 1.1; None: any public https host
    service_hosts: tuple[str, ...] = ()  # LTI 1.3, besides the registration's hosts

    @property
    def is_lti(self) -> bool:
        return self.type in LTI_TYPES

    def read_at_start(self) -> PlanAuth:
        """What only a hub start takes in: the context -> course mapping and the
        accepted deployments are read at every launch instead."""
        return replace(self, contexts={}, deployment_ids=())

    def to_dict(self) -> dict[str, Any]:
        """As plan.json keeps it: only what the auth type uses, in the shape every
        coursehub version reads (a hub still running an older one reads it too)."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == FIRST_USE:
            out["min_password_length"] = self.min_password_length
        if not self.is_lti:
            return out
        for key in ("issuer", "client_id", "jwks_url", "authorize_url", "token_url"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["contexts"] = dict(self.contexts)
        if self.deployment_ids:
            out["deployment_ids"] = list(self.deployment_ids)
        out["course_creation"] = {
            "per_hour": self.courses_per_hour,
            "max_courses": self.max_launch_courses,
        }
        if self.outcome_hosts is not None:
            out["outcome_hosts"] = list(self.outcome_hosts)
        if self.service_hosts:
            out["service_hosts"] = list(self.service_hosts)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanAuth:
        data = dict(data)
        creation = data.pop("course_creation", None) or {}  # plan.json before PlanAuth
        if "per_hour" in creation:
            data["courses_per_hour"] = creation["per_hour"]
        if "max_courses" in creation:
            data["max_launch_courses"] = creation["max_courses"]
        for key in ("deployment_ids", "service_hosts"):
            data[key] = tuple(data.get(key) or ())
        if data.get("outcome_hosts") is not None:
            data["outcome_hosts"] = tuple(data["outcome_hosts"])
        data["contexts"] = dict(data.get("contexts") or {})
        return cls(**data)


def plan_auth(a: SiteAuth) -> PlanAuth:
    """The Plan's auth section from the site's (what the hub needs; no secret)."""
    if a.type == FIRST_USE:
        return PlanAuth(a.type, min_password_length=a.min_password_length)
    if a.type not in LTI_TYPES:
        return PlanAuth(a.type)
    return PlanAuth(
        a.type,
        issuer=a.issuer or "",
        client_id=a.client_id or "",
        jwks_url=a.jwks_url or "",
        authorize_url=a.authorize_url or "",
        token_url=a.token_url or "",
        contexts=dict(a.contexts),
        deployment_ids=tuple(a.deployment_ids),
        courses_per_hour=a.courses_per_hour,
        max_launch_courses=a.max_launch_courses,
        outcome_hosts=None if a.outcome_hosts is None else tuple(a.outcome_hosts),
        service_hosts=tuple(a.service_hosts),
    )


@dataclass(frozen=True)
class Ports:
    public: int
    proxy_api: int
    hub: int


@dataclass(frozen=True)
class Layout:
    """Which layout a Plan was derived with; plan.json without it means LOCAL."""

    kind: str = LOCAL
    root: str = ""  # SYSTEM only: the prefix of every path ("/" on a host)


@dataclass(frozen=True)
class Plan:
    org: str
    ip: str
    base_url: str
    isolated: bool  # True: every account has its own uid (coursehub runs as root)
    ports: Ports
    paths: Paths
    auth: PlanAuth
    admins: tuple[str, ...]
    people: dict[str, Person]
    courses: dict[str, GraderService]
    groups: dict[str, tuple[str, ...]]
    roles: tuple[Role, ...]
    folders: tuple[Folder, ...]
    files: tuple[File, ...]
    extensions: dict[str, dict[str, Any]]
    ids: Ids = field(default_factory=Ids)
    layout: Layout = field(default_factory=Layout)
    autograde: Limits = field(default_factory=Limits)  # what grading a notebook may use

    @property
    def base_dir(self) -> str:
        """What derive() took as data_dir: the data folder, or the system layout's root."""
        return self.layout.root if self.layout.kind == SYSTEM else self.paths.data_dir

    @property
    def hub_url(self) -> str:
        host = SYSTEM_HUB_HOST if self.layout.kind == SYSTEM else "127.0.0.1"
        return f"http://{host}:{self.ports.hub}{self.base_url}"

    @property
    def public_url(self) -> str:
        host = "127.0.0.1" if self.ip in ("", "0.0.0.0") else self.ip
        return f"http://{host}:{self.ports.public}{self.base_url}"

    @property
    def hub_api_url(self) -> str:
        return f"{self.hub_url}hub/api"

    @property
    def proxy_api_url(self) -> str:
        host = SYSTEM_PROXY_HOST if self.layout.kind == SYSTEM else "127.0.0.1"
        return f"http://{host}:{self.ports.proxy_api}"

    # Where each process says it is ready (the same on every target).
    @property
    def proxy_health_url(self) -> str:
        """The proxy's routes: its API wants the token, so any answer means it listens."""
        return f"{self.proxy_api_url}{PROXY_ROUTES_PATH}"

    @property
    def hub_health_url(self) -> str:
        return f"{self.hub_url}{HUB_HEALTH_PATH}"

    @property
    def public_health_url(self) -> str:
        """The hub's health through the proxy: both answer, and the proxy routes the hub."""
        return f"{self.public_url}{HUB_HEALTH_PATH}"

    @property
    def load_courses_url(self) -> str:
        """Where coursehub asks the running hub to load new courses (coursehub.hub.live)."""
        return f"{self.hub_url}hub{LOAD_COURSES_PATH}"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "auth": self.auth.to_dict()}, indent=1, sort_keys=True)

    def port_purposes(self) -> dict[int, str]:
        """Every port the installation uses, with what it is for."""
        ports = {
            self.ports.public: "the public address (hub.port)",
            self.ports.proxy_api: "the proxy's API (hub.port + 1)",
            self.ports.hub: "the hub (hub.port + 2)",
        }
        for cid, g in self.courses.items():
            ports[g.port] = f"the grader server of {cid}"
        return ports

    def home_folder(self, name: str) -> Folder:
        """A person's home, made before their server starts (they are not system users)."""
        a = self.people[name].account
        return Folder(a.home, a.uid, a.gid, 0o700, f"home of {name}: nobody else may read it")

    def passwd_file(self, account: str) -> str:
        """The passwd file a server of `account` resolves uids with (nss_wrapper).

        Each account has its own, readable by that account alone: a person's names
        them and the graders of their courses, a grader's names its course's members
        (collect looks up who owns each submission). Nobody reads the whole roster
        (not isolated, every server shares one uid: the file maps it to its name, as
        nbgrader files a submission under the name its uid resolves to).
        """
        return self.paths.nss_passwd(account)

    def group_file(self, account: str) -> str:
        """The group file of `account`'s servers: its own groups, with itself the only
        member of each (a group's member list would be the course's roster)."""
        return self.paths.nss_group(account)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)

        def account(a: dict[str, Any]) -> Account:
            return Account(**{**a, "groups": tuple(a["groups"])})

        return cls(
            org=data["org"],
            ip=data["ip"],
            base_url=data["base_url"],
            isolated=data["isolated"],
            ports=Ports(**data["ports"]),
            paths=Paths(**data["paths"]),
            auth=PlanAuth.from_dict(data["auth"]),
            admins=tuple(data["admins"]),
            people={
                n: Person(
                    **{
                        **p,
                        "account": account(p["account"]),
                        "server_token_scopes": tuple(p["server_token_scopes"]),
                    }
                )
                for n, p in data["people"].items()
            },
            courses={
                c: GraderService(
                    **{
                        **g,
                        "account": account(g["account"]),
                        "instructors": tuple(g["instructors"]),
                        "students": tuple(g["students"]),
                    }
                )
                for c, g in data["courses"].items()
            },
            groups={k: tuple(v) for k, v in data["groups"].items()},
            roles=tuple(
                Role(**{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()})
                for r in data["roles"]
            ),
            folders=tuple(Folder(**f) for f in data["folders"]),
            files=tuple(File(**f) for f in data["files"]),
            extensions=data["extensions"],
            ids=Ids(**data["ids"]),
            layout=Layout(**data.get("layout", {})),
            autograde=Limits(**data.get("autograde", {})),
        )

    # Names the hub and the targets share.
    def grader_env(self, course_id: str) -> dict[str, str]:
        """The grader server's environment, without its token (that is a secret)."""
        g = self.courses[course_id]
        return {
            "JUPYTERHUB_SERVICE_NAME": course_id,
            "JUPYTERHUB_CLIENT_ID": g.oauth_client_id,
            "JUPYTERHUB_USER": g.account.name,
            "JUPYTERHUB_API_URL": self.hub_api_url,
            "JUPYTERHUB_BASE_URL": self.base_url,
            "JUPYTERHUB_HOST": "",
            "JUPYTERHUB_SERVICE_PREFIX": g.prefix,
            "JUPYTERHUB_SERVICE_URL": g.url,
            "JUPYTERHUB_OAUTH_CALLBACK_URL": g.oauth_callback,
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps([f"access:services!service={course_id}"]),
            "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": json.dumps([]),
            "JUPYTER_CONFIG_DIR": g.config_dir,
            "JUPYTER_CONFIG_PATH": self.paths.jupyter_config,
            # every kernel of the grader comes through coursehub's provisioner: the ones that
            # run a student's notebook for nbgrader run in the grading sandbox
            "JUPYTER_DEFAULT_PROVISIONER_NAME": PROVISIONER_NAME,
        }


def proxy_args(plan: Plan, *, ip: str, port: int, api_ip: str, hub_host: str) -> tuple[str, ...]:
    """configurable-http-proxy's arguments (after its command), for every target: the
    hub is its default target and its error page."""
    hub = f"http://{hub_host}:{plan.ports.hub}"
    return (
        "--ip", ip,
        "--port", str(port),
        "--api-ip", api_ip,
        "--api-port", str(plan.ports.proxy_api),
        "--default-target", hub,
        "--error-target", f"{hub}{plan.base_url}hub/error",
        "--log-level", "warn",
    )  # fmt: skip


def grader_server_args(g: GraderService, ip: str, port: int) -> tuple[str, ...]:
    """Arguments of a course's grader server (after `jupyterhub-singleuser`), for every target."""
    return (
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={g.account.home}",
        "--SingleUserNotebookApp.default_url=/lab",
        # The formgrader shows inside this server's own Lab; allow framing by itself only.
        """--ServerApp.tornado_settings={"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}""",
    )


def service_prefix(base_url: str, course_id: str) -> str:
    """The URL prefix of a course's grader service (the hub's services/{course}/)."""
    return f"{base_url}services/{course_id}/"


def formgrader_path(prefix: str) -> str:
    """The formgrader of the grader service at `prefix`."""
    return f"{prefix}formgrader"


def formgrade_group(course_id: str) -> str:
    return f"formgrade-{course_id}"


def nbgrader_group(course_id: str) -> str:
    return f"nbgrader-{course_id}"


def _environment(roles: set[str]) -> str:
    if INSTRUCTOR in roles:
        return INSTRUCTOR
    if STUDENT in roles:
        return STUDENT
    return STANDARD


def extension_settings(environment: str) -> dict[str, Any]:
    """Server extensions on/off and Lab plugins disabled for one environment."""
    wanted = EXTENSIONS[environment]
    return {
        "jpserver_extensions": {
            **{mod: key in wanted for key, mod in _SERVER_EXTENSIONS.items()},
            **dict.fromkeys(_UNUSED_SERVER_EXTENSIONS, False),
        },
        "disabled_lab_plugins": sorted(
            [*(p for key, p in _LAB_PLUGINS.items() if key not in wanted), *_LAB_PLUGINS_OFF]
        ),
    }


def server_config_json(settings: dict[str, Any]) -> str:
    """jupyter_server_config.json of one environment: nbgrader's server extensions on/off,
    and Lab's news and update check off."""
    body = {
        "ServerApp": {"jpserver_extensions": settings["jpserver_extensions"]},
        "LabApp": dict(_LAB_APP_SETTINGS),
    }
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def page_config_json(settings: dict[str, Any]) -> str:
    """labconfig/page_config.json of one environment: the Lab plugins it must not load."""
    disabled = {p: True for p in settings["disabled_lab_plugins"]}
    return json.dumps({"disabledExtensions": disabled}, indent=2, sort_keys=True) + "\n"


def _comment_text(text: str) -> str:
    """Text from the site file or an LMS, for a comment in generated Python: its repr, one
    line whatever it holds (a line break in it would end the comment and start code)."""
    return repr(text)


def _nbgrader_layer1(plan_paths: Paths, titles: dict[str, str]) -> str:
    title_lines = "".join(
        f"#   {cid}: {_comment_text(title)}\n" for cid, title in sorted(titles.items())
    )
    return (
        "# nbgrader, layer 1 of 3: read by every server (people and graders).\n"
        "# Written by coursehub from the site file; edits are replaced on the next 'up'.\n"
        "# It names no course: each person sees the courses of their hub groups.\n"
        f"# Courses on this hub:\n{title_lines}"
        "c = get_config()  # noqa: F821\n"
        "c.Authenticator.plugin_class = 'nbgrader.auth.JupyterHubAuthPlugin'\n"
        f"c.Exchange.root = {plan_paths.exchange!r}\n"
        "c.Exchange.path_includes_course = True\n"
        "c.ExchangeFactory.exchange = 'coursehub.exchange.CourseExchange'\n"
        "c.ExchangeFactory.fetch_assignment = 'coursehub.exchange.CourseFetchAssignment'\n"
        "c.ExchangeFactory.fetch_feedback = 'coursehub.exchange.CourseFetchFeedback'\n"
        "c.ExchangeFactory.release_assignment = 'coursehub.exchange.CourseReleaseAssignment'\n"
        "c.ExchangeFactory.release_feedback = 'coursehub.exchange.CourseReleaseFeedback'\n"
        "c.ExchangeFactory.list = 'coursehub.exchange.CourseList'\n"
        "c.ExchangeFactory.submit = 'coursehub.exchange.CourseSubmit'\n"
        "c.ExchangeFactory.collect = 'coursehub.exchange.CourseCollect'\n"
    )


def _nbgrader_layer2(g: GraderService, grader_home: str, limits: Limits) -> str:
    return (
        f"# nbgrader, layer 2 of 3: the grader account of course {g.course_id!r}.\n"
        "# Written by coursehub; edits are replaced on the next 'up'.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {g.course_root!r}\n"
        f"c.CourseDirectory.course_id = {g.course_id!r}\n"
        f"c.NbGrader.logfile = {grader_home + '/.nbgrader.log'!r}\n"
        "# Grading: students' notebooks run in coursehub's sandbox, with the site file's\n"
        "# autograde limits; a notebook a limit stops is graded with the reason shown.\n"
        f"c.Autograde.autograde_preprocessors = {list(AUTOGRADE_STEPS)!r}\n"
        f"c.Execute.timeout = {limits.cell_timeout!r}\n"
        f"c.GradingProvisioner.notebook_timeout = {limits.notebook_timeout!r}\n"
        f"c.GradingProvisioner.memory_limit = {format_size(limits.memory)!r}\n"
        f"c.GradingProvisioner.process_limit = {limits.processes!r}\n"
        f"c.GradingProvisioner.disk_limit = {format_size(limits.disk)!r}\n"
    )


def _nbgrader_layer3(g: GraderService) -> str:
    return (
        f"# nbgrader, layer 3 of 3: how course {g.course_id!r} ({_comment_text(g.title)}) is "
        "built and graded.\n"
        "# Written once by coursehub; this file is the course's own: edit it freely.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {g.course_id!r}\n"
        "# c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}\n"
        "# c.ClearSolutions.text_stub = 'YOUR ANSWER HERE'\n"
    )


def _passwd(accounts: list[Account]) -> str:
    return "".join(f"{a.name}:x:{a.uid}:{a.gid}:{a.name}:{a.home}:/bin/bash\n" for a in accounts)


def _nss_view(
    a: Account,
    people: dict[str, Person],
    courses: dict[str, GraderService],
    course_gid: dict[str, int],
    by_name: dict[str, Account],
) -> tuple[list[Account], dict[str, tuple[int, list[str]]]]:
    """Whom `a`'s servers may resolve: a person, themselves and the graders of their
    courses; a grader, its course's members. Course groups list `a` alone."""
    if a.name in people:
        course_ids = sorted(people[a.name].courses)
        known = [a, *(courses[c].account for c in course_ids if c in courses)]
    else:
        g = next(g for g in courses.values() if g.account.name == a.name)
        course_ids = [g.course_id]
        members = [*g.instructors, *g.students]
        known = [a, *(by_name[n] for n in dict.fromkeys(members) if n in by_name)]
    return known, {f"course-{c}": (course_gid[c], [a.name]) for c in course_ids}


def _group(accounts: list[Account], course_groups: dict[str, tuple[int, list[str]]]) -> str:
    lines = [f"{a.name}:x:{a.gid}:\n" for a in accounts]
    lines += [
        f"{name}:x:{gid}:{','.join(members)}\n" for name, (gid, members) in course_groups.items()
    ]
    return "".join(lines)


@dataclass(frozen=True)
class _Derivation:
    """What every step of derive() reads: the site and the choices its arguments made."""

    site: Site
    paths: Paths
    ids: Ids
    isolated: bool
    owner: tuple[int, int]  # (uid, gid) coursehub runs as
    system: bool  # the SYSTEM layout (the POC's places, one container per part)
    course_gid: dict[str, int]  # course id -> the gid of its members

    @property
    def root(self) -> tuple[int, int]:
        """(uid, gid) of coursehub's own folders and files: root when isolated."""
        return (ROOT, ROOT) if self.isolated else self.owner

    def account(self, name: str, uid: int, groups: tuple[int, ...], home: str) -> Account:
        # Not isolated, every server really runs as coursehub's own account.
        if not self.isolated:
            return Account(name, self.owner[0], self.owner[1], (), home)
        return Account(name, uid, uid, groups, home)


def derive(
    site: Site,
    data_dir: str,
    *,
    isolated: bool,
    ids: Ids | None = None,
    owner: tuple[int, int] = (0, 0),
    layout: str = LOCAL,
) -> Plan:
    """Turn a checked site into a Plan. Pure: reads and writes nothing.

    data_dir must be absolute: the data folder (LOCAL layout), or the root
    prefix of the POC's places (SYSTEM layout, "/" on a host). isolated=True
    gives every account its own uid (coursehub runs as root); otherwise every
    folder belongs to `owner` (uid, gid), the account coursehub runs as.
    """
    if not data_dir.startswith("/"):
        raise ValueError("data_dir must be an absolute path")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    paths = layout_paths(data_dir, layout)
    system = layout == SYSTEM
    ids = allocate(list(site.everyone), [c.id for c in site.courses], ids or Ids())
    d = _Derivation(
        site=site,
        paths=paths,
        ids=ids,
        isolated=isolated,
        owner=owner,
        system=system,
        course_gid={c.id: ids.course_gid(c.id) for c in site.courses},
    )
    courses = _grader_services(d)
    people = _people(d)
    extensions = {env: extension_settings(env) for env in EXTENSIONS}
    return Plan(
        org=site.org,
        ip=site.hub.ip,
        base_url=site.hub.base_url,
        isolated=isolated,
        ports=_ports(site, system),
        paths=paths,
        auth=plan_auth(site.auth),
        admins=site.admins,
        people=people,
        courses=courses,
        groups=_hub_groups(site),
        roles=_roles(site),
        folders=_folders(d, courses, people),
        files=_files(d, courses, people, extensions),
        extensions=extensions,
        ids=ids,
        autograde=site.autograde,
        layout=Layout(SYSTEM, data_dir.rstrip("/") or "/") if system else Layout(),
    )


def _ports(site: Site, system: bool) -> Ports:
    """SYSTEM: the POC's fixed ports, one container each; LOCAL: the three after hub.port."""
    if system:
        return Ports(public=site.hub.port, proxy_api=SYSTEM_PROXY_API_PORT, hub=SYSTEM_HUB_PORT)
    return Ports(public=site.hub.port, proxy_api=site.hub.port + 1, hub=site.hub.port + 2)


# ---- courses: one grader service each


def _grader_services(d: _Derivation) -> dict[str, GraderService]:
    """Grader services, one per course."""
    site, paths, system = d.site, d.paths, d.system
    courses: dict[str, GraderService] = {}
    for c in site.courses:
        slot = d.ids.courses[c.id]
        gname = grader_account(c.id)
        uid = d.ids.grader_uid(c.id)
        # the POC's grader home is /home/grader-{course}; locally, graders/{course}
        home = f"{paths.graders}/{gname if system else c.id}"
        port = SYSTEM_GRADER_PORT if system else site.hub.port + GRADER_PORT_OFFSET + slot
        host = c.id if system else "127.0.0.1"  # SYSTEM: the compose service named as the course
        courses[c.id] = GraderService(
            course_id=c.id,
            title=c.title,
            account=d.account(gname, uid, (d.course_gid[c.id],), home),
            port=port,
            url=f"http://{host}:{port}",
            prefix=service_prefix(site.hub.base_url, c.id),
            course_root=f"{home}/{c.id}",
            config_dir=f"{home}/.jupyter",
            oauth_client_id=f"service-{c.id}",
            instructors=c.instructors,
            students=c.students,
        )
    return courses


# ---- people


def _course_memberships(site: Site) -> dict[str, dict[str, str]]:
    """Roles of each person per course: name -> course id -> "instructor" | "student"."""
    memberships: dict[str, dict[str, str]] = {name: {} for name in site.everyone}
    for c in site.courses:
        for name in c.instructors:
            memberships[name][c.id] = INSTRUCTOR
        for name in c.students:
            memberships[name][c.id] = STUDENT
    return memberships


def _server_token_scopes(roles: dict[str, str]) -> tuple[str, ...]:
    """What a person's server token may do: their own things, and find their graders."""
    scopes = ["users:activity!user", "access:servers!server", "read:users:groups!user"]
    for cid, role in sorted(roles.items()):
        if role == INSTRUCTOR:
            # the course list finds the grader service by name and reads its prefix
            scopes += [f"list:services!service={cid}", f"read:services!service={cid}"]
    return tuple(scopes)


def _people(d: _Derivation) -> dict[str, Person]:
    """Everyone who may log in, with their account, courses and environment."""
    site, paths = d.site, d.paths
    memberships = _course_memberships(site)
    people: dict[str, Person] = {}
    for name in site.everyone:
        uid = d.ids.people[name]
        roles = memberships[name]
        env = _environment(set(roles.values()))
        people[name] = Person(
            name=name,
            account=d.account(
                name, uid, tuple(d.course_gid[c] for c in sorted(roles)), f"{paths.homes}/{name}"
            ),
            admin=name in site.admins,
            courses=dict(sorted(roles.items())),
            environment=env,
            server_token_scopes=_server_token_scopes(roles),
            config_dir=f"{paths.jupyter_config}/roles/{env}",
        )
    return people


# ---- groups and roles (RBAC)


def _hub_groups(site: Site) -> dict[str, tuple[str, ...]]:
    """Hub groups, as nbgrader's JupyterHubAuthPlugin reads them."""
    groups: dict[str, tuple[str, ...]] = {}
    for c in site.courses:
        groups[nbgrader_group(c.id)] = tuple(c.students)
        groups[formgrade_group(c.id)] = (*c.instructors, grader_account(c.id))
    return groups


def _roles(site: Site) -> tuple[Role, ...]:
    """RBAC: the fewest scopes that work. No admin token, no 'inherit'."""
    roles: list[Role] = [
        Role(
            name="user",
            description="What every person may do with their own account and server",
            scopes=("self",),
        ),
        _automation_role(site),
    ]
    for c in site.courses:
        roles += _course_roles(c.id)
    return tuple(roles)


def _automation_role(site: Site) -> Role:
    """coursehub's own token: reads status, changes rosters, loads new courses."""
    return Role(
        name="coursehub-automation",
        description=(
            "coursehub's own token: status and doctor read users, servers and services; "
            "roster changes create hub users and set course group membership; "
            "new courses are loaded into the running hub"
        ),
        scopes=(
            LOAD_COURSES_SCOPE,
            "list:users",
            "read:servers",
            "list:services",
            "read:services",
            "admin:users",
            *(
                f"groups!group={group(c.id)}"
                for c in site.courses
                for group in (nbgrader_group, formgrade_group)
            ),
        ),
        services=(SERVICE_NAME,),
    )


def _course_roles(course_id: str) -> list[Role]:
    """A course's two roles: its instructors' (use the grader) and its grader service's."""
    cid = course_id
    return [
        Role(
            name=f"instructor-{cid}",
            description=f"Instructors of {cid}: use its grader service and find it in the course list",
            scopes=(
                f"access:services!service={cid}",
                f"list:services!service={cid}",
                f"read:services!service={cid}",
            ),
            groups=(formgrade_group(cid),),
        ),
        Role(
            name=f"grader-{cid}",
            description=f"The grader service of {cid}: read its own groups, manage its student group",
            scopes=(
                f"read:users:groups!user={grader_account(cid)}",
                f"list:groups!group={nbgrader_group(cid)}",
                f"groups!group={nbgrader_group(cid)}",
            ),
            services=(cid,),
        ),
    ]


# ---- folders, outermost first so each can be made in order


def _folders(
    d: _Derivation, courses: dict[str, GraderService], people: dict[str, Person]
) -> tuple[Folder, ...]:
    folders = _installation_folders(d) + _environment_folders(d)
    feedback_roots: set[str] = (
        set()
    )  # a student's feedback root comes once, with their first course
    for g in courses.values():
        folders += _course_folders(d, g)
        for student in g.students:
            folders += _student_folders(d, g, student, people[student].account, feedback_roots)
    return tuple(folders)


def _installation_folders(d: _Derivation) -> list[Folder]:
    """The installation's own folders, coursehub's (root's when isolated)."""
    paths = d.paths
    ru, rg = d.root
    return [
        Folder(
            paths.data_dir, ru, rg, 0o755, "the data folder; every server's uid must traverse it"
        ),
        Folder(paths.secrets, ru, rg, 0o700, "generated secrets, coursehub only"),
        Folder(paths.state, ru, rg, 0o700, "hub database, passwords, plan"),
        Folder(paths.logs, ru, rg, 0o700, "logs of every process"),
        Folder(paths.run, ru, rg, 0o700, "pid files"),
        Folder(paths.etc, ru, rg, 0o755, "configuration every server reads"),
        # its files run in the hub: nobody but coursehub's owner may write (or read) them
        Folder(paths.hub_config_d, ru, rg, 0o700, "the operator's own hub configuration"),
        # SYSTEM: nbgrader layer 1 sits in /etc/jupyterhub itself, as in the POC
        *(
            []
            if paths.jupyter_config == paths.etc
            else [Folder(paths.jupyter_config, ru, rg, 0o755, "nbgrader layer 1 for every server")]
        ),
        Folder(f"{paths.jupyter_config}/roles", ru, rg, 0o755, "Jupyter config per environment"),
        Folder(
            f"{paths.etc}/nss",
            ru,
            rg,
            0o711 if d.isolated else 0o755,
            "a passwd and a group file per account: traverse only, nobody lists the names",
        ),
        Folder(paths.homes, ru, rg, 0o711, "homes: traverse only, nobody lists the names"),
        # SYSTEM: grader homes are in the host's /home, which is not coursehub's to change
        *(
            []
            if d.system
            else [Folder(paths.graders, ru, rg, 0o711, "grader homes: traverse only")]
        ),
        Folder(paths.exchange, ru, rg, 0o711, "nbgrader exchange root: traverse only"),
        Folder(f"{paths.exchange}/.feedback", ru, rg, 0o711, "feedback, one folder per student"),
    ]


def _environment_folders(d: _Derivation) -> list[Folder]:
    """The read-only Jupyter config folder of each person's environment."""
    ru, rg = d.root
    folders: list[Folder] = []
    for env in (STUDENT, INSTRUCTOR, STANDARD):
        cdir = f"{d.paths.jupyter_config}/roles/{env}"
        folders.append(Folder(cdir, ru, rg, 0o755, f"{env} environment config"))
        folders.append(Folder(f"{cdir}/labconfig", ru, rg, 0o755, "Lab plugins"))
    return folders


def _course_folders(d: _Derivation, g: GraderService) -> list[Folder]:
    """A course's grader home, config and course folder, and its exchange."""
    ru, rg = d.root
    a = g.account
    gu, gg = a.uid, a.gid
    cg = d.course_gid[g.course_id] if d.isolated else d.owner[1]
    ex = f"{d.paths.exchange}/{g.course_id}"
    return [
        Folder(a.home, gu, gg, 0o700, f"home of {a.name}: no student may read it"),
        Folder(g.config_dir, ru, rg, 0o755, f"config of {a.name}, owned by coursehub"),
        Folder(f"{g.config_dir}/labconfig", ru, rg, 0o755, "Lab plugins of the grader"),
        Folder(g.course_root, gu, gg, 0o700, f"course folder of {g.course_id}: sources, gradebook"),
        Folder(ex, gu, cg, 0o710, "course exchange: members traverse, only the grader lists"),
        Folder(
            f"{ex}/outbound", gu, cg, 0o750, "released assignments: members read, grader writes"
        ),
        Folder(f"{ex}/inbound", gu, cg, 0o710, "submissions: one folder per student, unlistable"),
        Folder(f"{ex}/feedback", gu, cg, 0o710, "feedback: members fetch by its hashed name"),
    ]


def _student_folders(
    d: _Derivation, g: GraderService, student: str, sa: Account, feedback_roots: set[str]
) -> list[Folder]:
    """A student's feedback folders and submission folder in one course."""
    ru, rg = d.root
    gu, gg = g.account.uid, g.account.gid
    fb = f"{d.paths.exchange}/.feedback/{student}"
    folders: list[Folder] = []
    if fb not in feedback_roots:
        feedback_roots.add(fb)
        folders.append(Folder(fb, ru, rg, 0o711, f"feedback of {student}, per course"))
    folders += [
        Folder(f"{fb}/{g.course_id}", gu, sa.gid, 0o710, f"{student}'s feedback in {g.course_id}"),
        Folder(
            f"{fb}/{g.course_id}/feedback",
            gu,
            sa.gid,
            0o750,
            f"feedback for {student}: the grader writes, only {student} reads",
        ),
    ]
    # the student writes, the grader's group reads (setgid keeps new files in it)
    folders.append(
        Folder(
            f"{d.paths.exchange}/{g.course_id}/inbound/{student}",
            sa.uid,
            gg,
            0o2750,
            f"submissions of {student}: theirs and the grader's only",
        )
    )
    return folders


# ---- files: nss files, nbgrader layers, environment configs


def _files(
    d: _Derivation,
    courses: dict[str, GraderService],
    people: dict[str, Person],
    extensions: dict[str, dict[str, Any]],
) -> tuple[File, ...]:
    accounts = [p.account for p in people.values()] + [g.account for g in courses.values()]
    files = _roster_files(d, accounts)
    files += _nss_files(d, accounts, courses, people)
    files += _environment_files(d, extensions)
    for g in courses.values():
        files += _grader_files(d, g, extensions[GRADER])
    return tuple(files)


def _roster_files(d: _Derivation, accounts: list[Account]) -> list[File]:
    """nbgrader's layer 1 for every server, and the whole roster for the operator."""
    site, paths = d.site, d.paths
    ru, rg = d.root
    all_course_groups = {
        f"course-{c.id}": (d.course_gid[c.id], [grader_account(c.id), *c.instructors, *c.students])
        for c in site.courses
    }
    return [
        File(
            paths.nbgrader_layer1,
            _nbgrader_layer1(paths, {c.id: c.title for c in site.courses}),
            ru,
            rg,
            0o644,
        ),
        # the whole roster, for the operator only (servers read their own files below)
        File(paths.passwd, _passwd(accounts), ru, rg, 0o600),
        File(paths.group, _group(accounts, all_course_groups), ru, rg, 0o600),
    ]


def _nss_files(
    d: _Derivation,
    accounts: list[Account],
    courses: dict[str, GraderService],
    people: dict[str, Person],
) -> list[File]:
    """A passwd and a group file per account, naming only whom its servers resolve."""
    ru, rg = d.root
    files: list[File] = []
    by_name = {a.name: a for a in accounts}
    for a in accounts:
        known, groups_of = _nss_view(a, people, courses, d.course_gid, by_name)
        # readable by the account alone (its own group); not isolated, all is one uid
        mode, gid = (0o640, a.gid) if d.isolated else (0o644, rg)
        files += [
            File(d.paths.nss_passwd(a.name), _passwd(known), ru, gid, mode),
            File(d.paths.nss_group(a.name), _group(known, groups_of), ru, gid, mode),
        ]
    return files


# jupyter_core writes 'migrated' into a config folder it finds without one;
# these folders are read-only for the servers, so coursehub writes it.
_MIGRATED = "coursehub: nothing to migrate\n"


def _environment_files(d: _Derivation, extensions: dict[str, dict[str, Any]]) -> list[File]:
    """Each person's environment: server extensions, Lab plugins, and 'migrated'."""
    ru, rg = d.root
    files: list[File] = []
    for env in (STUDENT, INSTRUCTOR, STANDARD):
        cdir = f"{d.paths.jupyter_config}/roles/{env}"
        server, page = server_config_json(extensions[env]), page_config_json(extensions[env])
        files.append(File(f"{cdir}/jupyter_server_config.json", server, ru, rg, 0o644))
        files.append(File(f"{cdir}/labconfig/page_config.json", page, ru, rg, 0o644))
        files.append(File(f"{cdir}/migrated", _MIGRATED, ru, rg, 0o644))
    return files


def _grader_files(d: _Derivation, g: GraderService, settings: dict[str, Any]) -> list[File]:
    """A grader's environment and nbgrader's layers 2 (coursehub's) and 3 (the course's)."""
    ru, rg = d.root
    gu, gg = g.account.uid, g.account.gid
    return [
        File(
            f"{g.config_dir}/jupyter_server_config.json",
            server_config_json(settings),
            ru,
            rg,
            0o644,
        ),
        File(
            f"{g.config_dir}/labconfig/page_config.json", page_config_json(settings), ru, rg, 0o644
        ),
        File(
            f"{g.config_dir}/nbgrader_config.py",
            _nbgrader_layer2(g, g.account.home, d.site.autograde),
            ru,
            rg,
            0o644,
        ),
        File(f"{g.config_dir}/migrated", _MIGRATED, ru, rg, 0o644),
        File(
            f"{g.course_root}/nbgrader_config.py",
            _nbgrader_layer3(g),
            gu,
            gg,
            0o644,
            overwrite=False,
        ),
    ]


# ---- auth


_plans: dict[str, tuple[float, Plan]] = {}


def load_plan(path: str) -> Plan:
    """The Plan at `path`, read again only when the file changed (the hub reads it often)."""
    mtime = os.stat(path).st_mtime
    cached = _plans.get(path)
    if cached is None or cached[0] != mtime:
        with open(path) as f:
            cached = (mtime, Plan.from_json(f.read()))
        _plans[path] = cached
    return cached[1]
