"""coursehub doctor: check an installation, running or stopped, for every known trap.

Each check is a small function that returns Problems, each naming what is wrong
and how to fix it. The comparisons (a folder's stat against the Plan, a token's
scopes against its roles, versions) are pure helpers, tested without a hub.

What doctor expects comes from the Plan, derived again with this coursehub from
the inputs recorded in ``state/plan.json`` (people, courses, ports), or from a
site file when one is given. ``plan.json`` is what the hub and the spawner run
with, so a plan.json that differs from what coursehub derives (edited by hand,
or written by an older coursehub with other modes or scopes) is a problem of its
own, and every other check holds the installation to the derived Plan.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ids import Ids
from .plan import LOCAL, SERVICE_NAME, File, Folder, Plan, derive
from .plandiff import plan_differences
from .ports import port_in_use
from .secrets import COOKIE_SECRET_FILE, SECRETS_FILE, secret_names
from .site import Auth, Course, Hub, Site, SiteError, load_site

REUP = "stop it ('coursehub down') and run 'coursehub up --site FILE' again"
WALK_DEPTH = 6  # how deep under the data folder to look for world-writable folders

# Scopes the hub grants a service's API token beyond what its roles give.
# Measured on JupyterHub 6.1 (GET /hub/api/user with each token of a fresh
# installation): none. A service token's scopes are exactly the expansion of
# its roles' scopes (expand_scopes below), so nothing needs ignoring. A scope
# found here later would be the hub's own doing, not a role's; list it with why
# it is harmless.
IMPLICIT_SERVICE_SCOPES: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Problem:
    check: str
    what: str
    fix: str


# ---------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class Seen:
    """What lstat says about a path."""

    uid: int
    gid: int
    mode: int  # permission bits, with setuid/setgid/sticky
    kind: str  # "folder", "file", "symlink" or "other"


def seen(path: str | Path) -> Seen | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(st.st_mode):
        kind = "folder"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    return Seen(st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), kind)


class Names:
    """uid and gid -> account and group names of a Plan, for messages."""

    def __init__(self, plan: Plan):
        self.users: dict[int, str] = {0: "root"}
        self.groups: dict[int, str] = {0: "root"}
        if plan.isolated:
            for p in plan.people.values():
                self.users[p.account.uid] = p.name
                self.groups[p.account.gid] = p.name
            for cid, g in plan.courses.items():
                self.users[g.account.uid] = g.account.name
                self.groups[g.account.gid] = g.account.name
                if cid in plan.ids.courses:
                    self.groups[plan.ids.course_gid(cid)] = f"course-{cid}"

    def owner(self, uid: int, gid: int) -> str:
        return f"{self.users.get(uid, str(uid))}:{self.groups.get(gid, str(gid))}"


def _chmod(found: int, planned: int) -> str:
    # GNU chmod keeps a folder's setuid/setgid bits for a plain octal mode;
    # an extra leading zero clears them.
    text = f"{planned:o}"
    if found & ~planned & (stat.S_ISUID | stat.S_ISGID):
        text = f"0{planned:04o}"
    return text


def _widening(found: int, planned: int) -> str:
    """What a folder's mode lets its group or everyone do that the planned mode does not."""
    said = []
    for who, r, w, x in (
        ("its group", stat.S_IRGRP, stat.S_IWGRP, stat.S_IXGRP),
        ("everyone", stat.S_IROTH, stat.S_IWOTH, stat.S_IXOTH),
    ):
        can = [
            verb
            for bit, verb in ((r, "list"), (w, "write into"), (x, "enter"))
            if found & bit and not planned & bit
        ]
        if can:
            said.append(f"{who} may {' and '.join(can)} it")
    return ", ".join(said)


def creator_of(plan: Plan, path: str) -> str:
    """Who makes a planned folder when it is missing, and with what result."""
    p = plan.paths
    for cid, g in plan.courses.items():
        ex = f"{p.exchange}/{cid}"
        grader = g.account.name
        if path == ex:
            return (
                f"nbgrader, as {grader}, cannot make it in the exchange root (root's) and "
                f"release fails; made by hand it gets the wrong owner and nbgrader's open modes"
            )
        if path in (f"{ex}/outbound", f"{ex}/inbound", f"{ex}/feedback"):
            return (
                f"nbgrader's release, as {grader}, would make it with its own default mode "
                "(outbound 0755, inbound 2733: writable by everyone) and the grader's private "
                f"group instead of course-{cid}, so students could not fetch"
            )
        if path.startswith(f"{ex}/inbound/"):
            student = path.rsplit("/", 1)[1]
            return f"nobody makes it: {student}'s submissions to {cid} fail"
        if path.startswith(f"{p.exchange}/.feedback/") and path.endswith(f"/{cid}/feedback"):
            return "nobody makes it: nbgrader's release_feedback skips this student"
        if path == g.account.home:
            return f"the grader server of {cid} cannot start without it (its working folder)"
        if path == g.course_root:
            return f"nbgrader, as {grader}, would make it with its default mode (0755)"
        if path.startswith(g.config_dir):
            return (
                f"the grader server of {cid} would run without its configuration "
                "(no formgrader, no course id)"
            )
    if path.startswith(f"{p.exchange}/.feedback/"):
        return "nobody makes it: feedback cannot reach this student"
    if path == p.homes:
        return "the spawner cannot make people's homes, and their servers fail to start"
    if path.startswith(p.jupyter_config):
        return "servers would run without their role's configuration (extensions not limited)"
    if path in (p.logs, p.run):
        return "the supervisor makes it again, owned by root, mode 0700"
    return "whatever needs it fails, or makes it itself with its own owner and mode"


def compare_folder(
    folder: Folder, found: Seen | None, names: Names, creator: str, restorer: str = ""
) -> list[Problem]:
    """One planned folder against what is on disk. `restorer`: what else puts it right."""
    restorer = restorer or f"{REUP}, which restores it"
    path = folder.path
    planned_owner = names.owner(folder.uid, folder.gid)
    install = f"install -d -o {folder.uid} -g {folder.gid} -m {folder.mode:04o} {path}"
    if found is None:
        return [
            Problem(
                "folders",
                f"{path} is missing ({folder.why}); {creator}",
                f"{install}  (or {REUP}: it makes every planned folder)",
            )
        ]
    if found.kind != "folder":
        return [
            Problem(
                "folders",
                f"{path} is a {found.kind}, not a folder ({folder.why})",
                f"move it away, then {install}",
            )
        ]
    wrong_owner = (found.uid, found.gid) != (folder.uid, folder.gid)
    wrong_mode = found.mode != folder.mode
    if not (wrong_owner or wrong_mode):
        return []
    parts, fixes = [], []
    if wrong_owner:
        parts.append(f"is owned by {names.owner(found.uid, found.gid)} instead of {planned_owner}")
        fixes.append(f"chown {folder.uid}:{folder.gid} {path}")
    if wrong_mode:
        wider = _widening(found.mode, folder.mode)
        parts.append(
            f"has mode {found.mode:o} instead of {folder.mode:o}" + (f" ({wider})" if wider else "")
        )
        fixes.append(f"chmod {_chmod(found.mode, folder.mode)} {path}")
    return [
        Problem(
            "folders",
            f"{path} {' and '.join(parts)}; planned as: {folder.why}",
            " && ".join(fixes) + f"  (or {restorer})",
        )
    ]


def compare_file(f: File, found: Seen | None, names: Names) -> list[Problem]:
    """One planned file's owner and mode against what is on disk (its content is
    rewritten by every 'up', or is the course's own)."""
    if found is None:
        return [Problem("files", f"{f.path} is missing", f"{REUP}: it writes every planned file")]
    if found.kind != "file":
        return [
            Problem(
                "files", f"{f.path} is a {found.kind}, not a file", f"move it away, then {REUP}"
            )
        ]
    parts, fixes = [], []
    if (found.uid, found.gid) != (f.uid, f.gid):
        parts.append(
            f"is owned by {names.owner(found.uid, found.gid)} instead of {names.owner(f.uid, f.gid)}"
        )
        fixes.append(f"chown {f.uid}:{f.gid} {f.path}")
    if found.mode != f.mode:
        wider = found.mode & ~f.mode & 0o022
        parts.append(
            f"has mode {found.mode:o} instead of {f.mode:o}"
            + (" (others may change what every server reads)" if wider else "")
        )
        fixes.append(f"chmod {f.mode:o} {f.path}")
    if not parts:
        return []
    return [Problem("files", f"{f.path} {' and '.join(parts)}", " && ".join(fixes))]


def exposed(found: Seen) -> bool:
    """Can a uid outside the Plan's accounts read this, or enter it if a folder?"""
    if found.kind == "folder":
        return bool(found.mode & (stat.S_IROTH | stat.S_IXOTH))
    return bool(found.mode & stat.S_IROTH)


def check_secret_file(path: str, found: Seen, owner_uid: int) -> list[Problem]:
    problems = []
    if found.kind != "file":
        return [
            Problem(
                "secrets",
                f"{path} is a {found.kind}: the secrets folder holds files only",
                f"move it out of {Path(path).parent}",
            )
        ]
    if found.mode != 0o600:
        problems.append(
            Problem(
                "secrets",
                f"{path} has mode {found.mode:o} instead of 600"
                + (": others can read it" if found.mode & 0o077 else ""),
                f"chmod 600 {path}, and if anyone else may have read it, treat its secrets "
                "as leaked (remove them from the file and run 'coursehub up' again)",
            )
        )
    if found.uid != owner_uid:
        problems.append(
            Problem(
                "secrets",
                f"{path} is owned by uid {found.uid} instead of uid {owner_uid}",
                f"chown {owner_uid} {path}",
            )
        )
    return problems


def missing_secrets(stored: dict[str, Any], course_ids: Iterable[str]) -> list[str]:
    return [n for n in secret_names(list(course_ids)) if not stored.get(n)]


def compare_versions(
    ours: dict[str, str], theirs: dict[str, str | None], user_env: str
) -> list[Problem]:
    """Packages of the hub's environment against the servers' environment."""
    problems = []
    for package, version in ours.items():
        found = theirs.get(package)
        if found == version:
            continue
        what = (
            f"{package} is missing from the servers' environment {user_env}"
            if found is None
            else f"{package} is {found} in the servers' environment {user_env} "
            f"and {version} in the hub's"
        )
        problems.append(
            Problem(
                "versions",
                what + ": servers and hub must run the same version",
                "run 'make setup', which installs the locked versions in both",
            )
        )
    return problems


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Scopes with everything they include, as the hub itself expands them."""
    from jupyterhub.scopes import define_custom_scopes
    from jupyterhub.scopes import expand_scopes as hub_expand

    from .hub.config import CUSTOM_SCOPES

    define_custom_scopes(CUSTOM_SCOPES)  # as the hub does at start (same definition: a no-op)
    return frozenset(hub_expand(set(scopes)))


def planned_scopes(plan: Plan, service: str) -> frozenset[str]:
    """Every scope the Plan's roles give a service (not expanded)."""
    return frozenset(s for r in plan.roles if service in r.services for s in r.scopes)


def _base(scope: str) -> str:
    return scope.split("!", 1)[0]


def compare_scopes(
    service: str, observed: Iterable[str], planned: frozenset[str], roles: str
) -> list[Problem]:
    """A token's expanded scopes against the expanded scopes of its planned roles."""
    observed = set(observed) - IMPLICIT_SERVICE_SCOPES
    # The hub drops a filtered scope ('read:users:groups!user=u') that an unfiltered
    # one it also holds ('read:users:groups') already covers: compare by coverage.
    extra = sorted(s for s in observed - planned if _base(s) not in planned)
    lacking = sorted(s for s in planned - observed if _base(s) not in observed)
    problems = []
    fix = (
        "the hub takes its roles from state/plan.json when it starts: "
        f"{REUP}, which rewrites plan.json and the hub's roles"
    )
    if extra:
        problems.append(
            Problem(
                "tokens",
                f"the token of service {service!r} has scopes beyond its planned roles "
                f"({roles}): {', '.join(extra)}",
                fix,
            )
        )
    if lacking:
        problems.append(
            Problem(
                "tokens",
                f"the token of service {service!r} lacks scopes of its planned roles "
                f"({roles}): {', '.join(lacking)}",
                fix,
            )
        )
    return problems


def compare_services(plan: Plan, services: dict[str, dict[str, Any]]) -> list[Problem]:
    """The hub's services (GET /services) against the Plan: one per course, named as it."""
    problems = []
    fix = f"the hub takes its services from the Plan when it starts: {REUP}"
    for cid, g in plan.courses.items():
        s = services.get(cid)
        if s is None:
            problems.append(
                Problem(
                    "services",
                    f"the hub has no service named {cid!r}: nbgrader's course list finds a "
                    "course's grader by a service named exactly as the course",
                    fix,
                )
            )
            continue
        if s.get("url") != g.url:
            problems.append(
                Problem(
                    "services",
                    f"service {cid!r} points at {s.get('url')!r}, not at its grader server {g.url}",
                    fix,
                )
            )
        if s.get("prefix") not in (None, g.prefix):
            problems.append(
                Problem(
                    "services",
                    f"service {cid!r} has prefix {s.get('prefix')!r}, not {g.prefix}",
                    fix,
                )
            )
    for name in sorted(set(services) - set(plan.courses) - {SERVICE_NAME}):
        problems.append(
            Problem(
                "services",
                f"the hub has a service {name!r} that is neither a course of this installation "
                f"nor coursehub's own ({SERVICE_NAME!r}): nothing planned it, so its token "
                "and roles are unaccounted for",
                "remove it from the hub's configuration (or DELETE /hub/api/services/"
                f"{name} if it was added at run time), then {REUP}",
            )
        )
    return problems


def _auth_from_plan(auth: dict[str, Any]) -> Auth:
    """The auth section as far as the Plan records it: everything but secrets, which
    the Plan never holds (the LMS's key and secret live in the secrets folder)."""
    structured = ("contexts", "deployment_ids", "course_creation", "outcome_hosts", "service_hosts")
    fields = {k: v for k, v in auth.items() if k not in structured}
    creation = auth.get("course_creation") or {}
    hosts = auth.get("outcome_hosts")
    return Auth(
        **fields,
        contexts=tuple(auth.get("contexts", {}).items()),
        deployment_ids=tuple(auth.get("deployment_ids", ())),
        **({"courses_per_hour": creation["per_hour"]} if "per_hour" in creation else {}),
        **({"max_launch_courses": creation["max_courses"]} if "max_courses" in creation else {}),
        outcome_hosts=tuple(hosts) if hosts is not None else None,
        service_hosts=tuple(auth.get("service_hosts", ())),
    )


def site_from_plan(plan: Plan) -> Site:
    """The site a Plan was derived from, as far as the Plan records it."""
    return Site(
        org=plan.org,
        auth=_auth_from_plan(plan.auth),
        hub=Hub(ip=plan.ip, port=plan.ports.public, base_url=plan.base_url),
        admins=tuple(plan.admins),
        # in the order their uids were given, as close to the site's order as recorded
        people=tuple(
            sorted(
                (n for n in plan.people if n not in plan.admins),
                key=lambda n: (plan.ids.people.get(n, 1 << 30), n),
            )
        ),
        courses=tuple(
            Course(g.course_id, g.title, tuple(g.instructors), tuple(g.students))
            for g in plan.courses.values()
        ),
        autograde=plan.autograde,
    )


# ---------------------------------------------------------------- the checks


@dataclass
class Context:
    """What every check may read: the installation, its Plans and its secrets."""

    inst: Any  # targets.local.runtime.Installation
    plan: Plan  # what doctor holds the installation to
    stored: Plan  # state/plan.json, what the hub runs with
    running: bool
    note: Callable[[str], None]
    derive_error: str | None = None
    source: str = "the courses and people plan.json records"

    @property
    def names(self) -> Names:
        return Names(self.plan)

    def secrets(self) -> dict[str, Any] | None:
        """secrets.json read as it is (its mode is the secrets check's business)."""
        try:
            return json.loads(Path(self.plan.paths.secrets, SECRETS_FILE).read_text())
        except (OSError, ValueError):
            return None


def check_plan(ctx: Context) -> list[Problem]:
    if ctx.derive_error:
        return [
            Problem(
                "plan",
                f"coursehub cannot derive a Plan from this installation's inputs: "
                f"{ctx.derive_error}; the other checks use state/plan.json as it is",
                f"{REUP}",
            )
        ]
    diffs = plan_differences(ctx.stored, ctx.plan)
    if not diffs:
        return []
    shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
    return [
        Problem(
            "plan",
            f"state/plan.json, which the hub and spawner run with, differs from the Plan "
            f"this coursehub derives from {ctx.source}: {shown}",
            f"{REUP}: it writes plan.json again",
        )
    ]


def check_folders(ctx: Context) -> list[Problem]:
    plan, names = ctx.plan, ctx.names
    problems: list[Problem] = []
    for folder in plan.folders:
        problems += compare_folder(folder, seen(folder.path), names, creator_of(plan, folder.path))
    # People's homes exist once their server has started; the spawner makes them.
    for name in plan.people:
        home = plan.home_folder(name)
        found = seen(home.path)
        if found is not None:
            problems += compare_folder(
                home, found, names, "", f"the spawner puts it right when {name}'s server starts"
            )
    problems += _exposed_under(ctx)
    problems += _world_writable(ctx)
    return problems


def check_files(ctx: Context) -> list[Problem]:
    """passwd, group and the Jupyter and nbgrader config every server reads."""
    names = ctx.names
    problems: list[Problem] = []
    for f in ctx.plan.files:
        problems += compare_file(f, seen(f.path), names)
    return problems


def _planned_folders(plan: Plan) -> dict[str, Folder]:
    planned = {f.path: f for f in plan.folders}
    for name in plan.people:
        home = plan.home_folder(name)
        planned[home.path] = home
    return planned


def _exposed_under(ctx: Context) -> list[Problem]:
    """Anything under homes/, graders/ or exchange/ that the Plan does not make
    reachable for everyone, yet is. Planned folders are the folder check's;
    this walks only through planned folders that are as planned and that
    everyone may enter, and reports what it finds there that is not planned."""
    plan = ctx.plan
    planned = _planned_folders(plan)
    planned_files = {f.path for f in plan.files}
    problems: list[Problem] = []
    todo = [plan.paths.homes, plan.paths.graders, plan.paths.exchange]
    while todo:
        folder = todo.pop()
        f = planned[folder]
        found = seen(folder)
        if found is None or found.kind != "folder" or found.mode != f.mode:
            continue
        if not f.mode & stat.S_IXOTH:
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.path in planned:
                todo.append(entry.path)
                continue
            if entry.path in planned_files:
                continue
            found = seen(entry.path)
            if found is None or not exposed(found):
                continue
            problems.append(
                Problem(
                    "folders",
                    f"{entry.path} is not in the Plan, and everyone can "
                    f"{'reach' if found.kind == 'folder' else 'read'} it (mode {found.mode:o}, "
                    f"owner {ctx.names.owner(found.uid, found.gid)})",
                    f"chmod o-rwx {entry.path}, or move it out of {folder}",
                )
            )
    return problems


def _world_writable(ctx: Context) -> list[Problem]:
    plan = ctx.plan
    planned = _planned_folders(plan)
    homes = {plan.home_folder(n).path for n in plan.people}
    root = plan.paths.data_dir
    base = root.rstrip("/").count("/")
    problems = []
    for folder, dirs, _files in os.walk(root):
        if folder in homes or folder.count("/") - base >= WALK_DEPTH:
            dirs[:] = []  # people's homes are theirs; and the walk stays shallow
        dirs.sort()
        for name in list(dirs):
            path = os.path.join(folder, name)
            found = seen(path)
            if found is None or found.kind != "folder":
                dirs.remove(name)  # os.walk does not follow symlinks; be explicit
                continue
            if path in planned:
                continue  # its exact mode is the folder check's
            if found.mode & stat.S_IWOTH:
                problems.append(
                    Problem(
                        "folders",
                        f"{path} is writable by everyone (mode {found.mode:o}, owner "
                        f"{ctx.names.owner(found.uid, found.gid)})",
                        f"chmod o-w {path}",
                    )
                )
    return problems


def check_secrets(ctx: Context) -> list[Problem]:
    plan = ctx.plan
    folder = next((f for f in plan.folders if f.path == plan.paths.secrets), None)
    owner_uid = folder.uid if folder else 0
    sdir = Path(plan.paths.secrets)
    problems: list[Problem] = []
    try:
        entries = sorted(os.scandir(sdir), key=lambda e: e.name)
    except FileNotFoundError:
        return []  # the folder check names the missing folder
    for entry in entries:
        found = seen(entry.path)
        if found is not None:
            problems += check_secret_file(entry.path, found, owner_uid)
    path = sdir / SECRETS_FILE
    stored = ctx.secrets()
    if stored is None:
        problems.append(
            Problem(
                "secrets",
                f"{path} is missing or not valid JSON: the hub and grader servers cannot start",
                f"{REUP}: it generates missing secrets",
            )
        )
    else:
        missing = missing_secrets(stored, plan.courses)
        if missing:
            problems.append(
                Problem(
                    "secrets",
                    f"{path} lacks {', '.join(missing)}",
                    f"{REUP}: it generates missing secrets",
                )
            )
    if not (sdir / COOKIE_SECRET_FILE).exists():
        problems.append(
            Problem(
                "secrets",
                f"{sdir / COOKIE_SECRET_FILE} is missing: the hub cannot start",
                f"{REUP}: it writes it from secrets.json",
            )
        )
    return problems


def check_instructors(ctx: Context) -> list[Problem]:
    return [
        Problem(
            "instructors",
            f"course {cid!r} has no instructors: nobody can open its grader service "
            f"({g.prefix}) to create, release or grade assignments",
            f"add someone to courses[id={cid}].instructors in the site file, then {REUP}",
        )
        for cid, g in ctx.plan.courses.items()
        if not g.instructors
    ]


def _loopback(ip: str) -> bool:
    import ipaddress

    try:
        return ip == "localhost" or ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def check_first_use(ctx: Context) -> list[Problem]:
    """First-use logins: whoever logs in first with a name sets its password. Fine for
    students on loopback; never for an admin or instructor (coursehub.password_links)."""
    import dbm

    from .hub.auth import claimable_by_first_login
    from .password_links import links_file, names_set_by_link, needs_link, passwords_dbm

    plan = ctx.plan
    if plan.auth.get("type") != "first-use":
        return []
    data = plan.paths.data_dir
    problems: list[Problem] = []
    if not _loopback(plan.ip):
        problems.append(
            Problem(
                "first-use",
                f"the hub listens on {plan.ip or 'every interface'} (hub.ip) with first-use "
                "logins: anyone who reaches the hub can claim a student's name before the "
                "student does",
                "put the hub on loopback (hub.ip: 127.0.0.1) behind a proxy with its own "
                "login, or use LTI (auth.type: lti11 or lti13)",
            )
        )
    privileged = sorted(n for n in plan.people if needs_link(plan, n))
    for name in claimable_by_first_login(plan, privileged):
        problems.append(
            Problem(
                "first-use",
                f"{name} is an admin or instructor, yet the hub's authenticator lets the first "
                f"login with that name set its password: anyone who knows the name can claim it",
                "the hub's first-use authenticator must be coursehub's "
                "(coursehub.hub.auth.CourseFirstUseAuthenticator, with the Plan): reinstall "
                f"coursehub ('make setup'), then {REUP}",
            )
        )
    try:
        with dbm.open(passwords_dbm(plan), "r") as db:
            with_password = {k.decode("utf8", "replace") for k in db.keys()}  # noqa: SIM118 - dbm objects are not iterable
    except dbm.error:
        with_password = set()  # no password database yet: nobody has logged in
    by_link = names_set_by_link(links_file(plan))
    for name in privileged:
        if name in with_password and name not in by_link:
            problems.append(
                Problem(
                    "first-use",
                    f"{name} is an admin or instructor whose password was set by a first login "
                    "(before coursehub asked for a link, or while a student): whoever typed "
                    f"{name!r} first may hold it, so the hub refuses that password",
                    f"coursehub password-link {name} --data-dir {data}, and give the link "
                    f"to {name} alone",
                )
            )
    return problems


# How to ask an interpreter for a package's version. nbgrader's own import takes
# seconds (it loads its whole app), so its installed metadata is asked instead.
VERSION_CODE = {
    "jupyterhub": "import jupyterhub, sys; sys.stdout.write(jupyterhub.__version__)",
    "nbgrader": "import importlib.metadata as m, sys; sys.stdout.write(m.version('nbgrader'))",
}


def env_version(python: str, package: str) -> str | None:
    """The package's version as the servers' interpreter sees it, or None."""
    try:
        proc = subprocess.run(
            [python, "-c", VERSION_CODE[package]],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def our_versions() -> dict[str, str]:
    from importlib.metadata import version

    import jupyterhub

    return {"jupyterhub": jupyterhub.__version__, "nbgrader": version("nbgrader")}


def check_versions(ctx: Context) -> list[Problem]:
    try:
        user_env = ctx.inst.runtime()["user_env"]
    except (OSError, ValueError, KeyError):
        return [
            Problem(
                "versions",
                f"{ctx.plan.paths.state}/runtime.json is missing or unreadable: it names the "
                "servers' environment",
                f"{REUP}",
            )
        ]
    python = os.path.join(user_env, "bin", "python")
    if not os.path.exists(python):
        return [
            Problem(
                "versions",
                f"the servers' environment {user_env} has no bin/python: no server can start",
                f"run 'make setup' (it builds the servers' environment), or {REUP} with --user-env",
            )
        ]
    theirs = {package: env_version(python, package) for package in VERSION_CODE}
    return compare_versions(our_versions(), theirs, user_env)


def check_grading_sandbox(ctx: Context) -> list[Problem]:
    """Each grader can start the grading sandbox (else autograde refuses to run)."""
    from .runas import demote
    from .sandbox import find_bwrap, probe_argv

    if ctx.plan.layout.kind != LOCAL or not ctx.plan.courses:
        return []  # a Docker host's graders run in their containers
    fix = (
        "install bubblewrap ('make setup' does, or apt-get install bubblewrap) and allow "
        "unprivileged user namespaces (sysctl user.max_user_namespaces=15000; on Ubuntu also "
        "kernel.apparmor_restrict_unprivileged_userns=0)"
    )
    bwrap = find_bwrap()
    if bwrap is None:
        return [
            Problem(
                "grading",
                "bubblewrap (bwrap) is not installed: nothing can be "
                "autograded, coursehub grades only in its sandbox",
                fix,
            )
        ]
    problems = []
    for course_id, g in sorted(ctx.plan.courses.items()):
        account = g.account if ctx.plan.isolated and os.geteuid() == 0 else None
        try:
            r = subprocess.run(  # noqa: S603 - bwrap, with arguments of our own
                probe_argv(bwrap),
                preexec_fn=demote(account, cwd="/"),  # noqa: PLW1509
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            r = subprocess.CompletedProcess([], 1, "", str(err))
        if r.returncode != 0:
            said = " ".join(r.stderr.split())[:200] or f"exit status {r.returncode}"
            problems.append(
                Problem(
                    "grading",
                    f"{g.account.name} cannot start the grading sandbox ({said}): autograde "
                    f"of {course_id} stops before it runs any student's code",
                    fix,
                )
            )
    return problems


def check_processes(ctx: Context) -> list[Problem]:
    """Stopped: nothing else holds a planned port. Running: every process answers."""
    from .targets.local.runtime import health
    from .targets.local.supervisor import processes_of

    plan = ctx.plan
    problems: list[Problem] = []
    if not ctx.running:
        left = processes_of(plan.paths.data_dir)
        if left:
            problems.append(
                Problem(
                    "processes",
                    f"processes of this installation run without their supervisor: "
                    f"pids {', '.join(map(str, sorted(left)))}",
                    f"coursehub down --data-dir {plan.paths.data_dir}",
                )
            )
        hosts = ["127.0.0.1"] + ([plan.ip] if plan.ip not in ("127.0.0.1", "0.0.0.0") else [])
        for port, what in sorted(plan.port_purposes().items()):
            if any(
                port_in_use(port, h) for h in (hosts if port == plan.ports.public else hosts[:1])
            ):
                problems.append(
                    Problem(
                        "ports",
                        f"port {port} ({what}) is in use by something else: 'coursehub up' "
                        "would stop at it",
                        f"see what holds it with \"ss -ltnp 'sport = :{port}'\" and stop it, or "
                        f"give this installation another hub.port in the site file (it uses "
                        f"hub.port to hub.port + {max(plan.port_purposes()) - plan.ports.public})",
                    )
                )
        return problems
    for h in health(ctx.inst):
        if not h.ok:
            log = Path(plan.paths.logs, f"{h.name}.log")
            problems.append(
                Problem(
                    "processes",
                    f"{h.name} does not answer at {h.url}",
                    f"read {log} and {ctx.inst.log_file} (the supervisor restarts it); "
                    f"'coursehub status --data-dir {plan.paths.data_dir}' shows its restarts",
                )
            )
    return problems


class HubError(RuntimeError):
    pass


def hub_get(url: str, token: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET a hub API url with a token: (status, JSON or None). HubError when nothing answers."""
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - loopback hub
            return r.status, json.load(r)
    except urllib.error.HTTPError as err:
        return err.code, None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise HubError(f"the hub API at {url} does not answer ({err})") from None


def check_hub(ctx: Context) -> list[Problem]:
    """Live only: the hub's services and the scopes of each token coursehub holds."""
    if not ctx.running:
        ctx.note("stopped: the hub's services and tokens are checked only while it runs")
        return []
    plan = ctx.plan
    secrets = ctx.secrets()
    if secrets is None or "automation_token" not in secrets:
        ctx.note("no automation token to ask the hub with: services and tokens not checked")
        return []
    api = ctx.stored.hub_api_url  # where the running hub really is
    problems: list[Problem] = []
    try:
        status, services = hub_get(f"{api}/services", secrets["automation_token"])
        if status == 200 and isinstance(services, dict):
            problems += compare_services(plan, services)
        else:
            problems.append(
                Problem(
                    "services",
                    f"coursehub's own token cannot list the hub's services (HTTP {status})",
                    f"{REUP}: it gives service {SERVICE_NAME!r} its planned role again",
                )
            )
        tokens = [("automation_token", SERVICE_NAME)] + [
            (f"service_token:{cid}", cid) for cid in plan.courses
        ]
        for secret, service in tokens:
            if not secrets.get(secret):
                continue  # the secrets check names it
            problems += _check_token(plan, api, service, secrets[secret])
    except HubError as err:
        ctx.note(f"{err}: services and tokens not checked")
    return problems


def _check_token(plan: Plan, api: str, service: str, token: str) -> list[Problem]:
    status, model = hub_get(f"{api}/user", token)
    if status != 200 or not isinstance(model, dict):
        return [
            Problem(
                "tokens",
                f"the hub refuses the token of service {service!r} in secrets.json "
                f"(HTTP {status}): it was changed after the hub started, or the service is gone",
                f"{REUP}",
            )
        ]
    if model.get("kind") != "service" or model.get("name") != service:
        return [
            Problem(
                "tokens",
                f"the token kept for service {service!r} belongs to "
                f"{model.get('kind')} {model.get('name')!r}",
                f"{REUP}",
            )
        ]
    roles = ", ".join(r.name for r in plan.roles if service in r.services) or "none"
    return compare_scopes(
        service, model.get("scopes", []), expand_scopes(planned_scopes(plan, service)), roles
    )


def identity_overlaps(plan: Plan, host_taken: Callable[[int], bool]) -> list[Problem]:
    """Numbers that mean two things: a uid that is also a course's gid or another
    account's uid, or a number the host's own accounts or groups have."""
    owners: dict[int, list[str]] = {}
    for name, person in plan.people.items():
        owners.setdefault(person.account.uid, []).append(f"person {name}")
    for cid, g in plan.courses.items():
        owners.setdefault(g.account.uid, []).append(f"grader-{cid}")
        owners.setdefault(plan.ids.course_gid(cid), []).append(f"group course-{cid}")
    if not plan.isolated:
        return []  # every account is coursehub's own uid on purpose
    problems = []
    for number, names in sorted(owners.items()):
        if len(names) > 1:
            problems.append(
                Problem(
                    "ids",
                    f"number {number} is given to {' and '.join(names)}: their files and "
                    "groups cannot be told apart",
                    f"edit state/ids.json so that each has its own number, then {REUP}",
                )
            )
        elif host_taken(number):
            problems.append(
                Problem(
                    "ids",
                    f"number {number} of {names[0]} is also an account or a group of this "
                    "machine's own (passwd, group or a directory service)",
                    "give that account or group of the machine another number, or move "
                    f"{names[0]} to a free one in state/ids.json (then chown its files), then "
                    f"{REUP}",
                )
            )
    return problems


def check_identities(ctx: Context) -> list[Problem]:
    from .ids import host_taken

    return identity_overlaps(ctx.stored, host_taken)


def site_file_problems(path: str) -> list[Problem]:
    """The site file coursehub rewrites: a link is never followed; with a secret in it,
    only its owner may read it."""
    import stat as st_mod

    from .sitefile import holds_secret

    try:
        found = os.lstat(path)
    except OSError:
        return []
    if st_mod.S_ISLNK(found.st_mode):
        return [
            Problem(
                "site-file",
                f"the site file {path} is a symbolic link: roster changes and LMS launches, "
                "which rewrite it, are refused",
                f"replace the link by the file it points to ({os.path.realpath(path)})",
            )
        ]
    try:
        site = load_site(path)
    except SiteError:
        return []  # the plan check reports a site file that does not load
    mode = st_mod.S_IMODE(found.st_mode)
    if holds_secret(site) and mode & 0o077:
        return [
            Problem(
                "site-file",
                f"the site file {path} holds a secret (a password or the LMS's shared secret) "
                f"and has mode {mode:o}: others can read it",
                f"chmod 600 {path}, and change the secret if anyone else may have read it",
            )
        ]
    return []


def check_site_file(ctx: Context) -> list[Problem]:
    try:
        path = ctx.inst.runtime()["site_file"]
    except (OSError, KeyError, ValueError):
        return []
    return site_file_problems(path)


CHECKS: tuple[Callable[[Context], list[Problem]], ...] = (
    check_plan,
    check_folders,
    check_files,
    check_secrets,
    check_instructors,
    check_first_use,
    check_versions,
    check_grading_sandbox,
    check_processes,
    check_hub,
    check_identities,
    check_site_file,
)


def reference_plan(stored: Plan, site_file: str | None = None) -> Plan:
    """The Plan coursehub derives now for this installation, from the site file
    if given, else from the inputs plan.json records. Raises SiteError, ValueError."""
    site = load_site(site_file) if site_file else site_from_plan(stored)
    top = next((f for f in stored.folders if f.path == stored.paths.data_dir), None)
    owner = (top.uid, top.gid) if top else (os.getuid(), os.getgid())
    ids = Ids.load(Path(stored.paths.state, "ids.json"))
    if not ids.people and not ids.courses:
        ids = stored.ids
    return derive(
        site,
        stored.base_dir,
        isolated=stored.isolated,
        ids=ids,
        owner=owner,
        layout=stored.layout.kind,
    )


def diagnose(
    data_dir: str,
    site_file: str | None = None,
    note: Callable[[str], None] | None = None,
) -> list[Problem]:
    """Every problem of the installation in `data_dir`, running or stopped.

    `site_file`: hold the installation to this site file instead of to the
    inputs recorded in its plan.json (raises SiteError when it is wrong).
    `note` receives lines about checks that were skipped.
    """
    from .targets.local.runtime import Installation

    inst = Installation(data_dir)
    try:
        stored = inst.plan()
    except (ValueError, KeyError, TypeError) as err:
        return [
            Problem(
                "plan",
                f"state/plan.json cannot be read as a Plan ({err.__class__.__name__}: {err})",
                f"{REUP}: it writes plan.json again",
            )
        ]
    derive_error = None
    try:
        plan = reference_plan(stored, site_file)
    except SiteError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        plan, derive_error = stored, f"{err.__class__.__name__}: {err}"
    ctx = Context(
        inst=inst,
        plan=plan,
        stored=stored,
        running=inst.supervisor_pid() is not None,
        note=note or (lambda _msg: None),
        derive_error=derive_error,
        source=f"the site file {site_file}" if site_file else Context.source,
    )
    problems: list[Problem] = []
    for check in CHECKS:
        problems += check(ctx)
    return problems


def report(problems: list[Problem], say: Callable[[str], None] = print) -> None:
    """One block per problem, then the count."""
    for p in problems:
        say(f"PROBLEM [{p.check}] {p.what}")
        say(f"    fix: {p.fix}")
    say(f"{len(problems)} problem(s) found" if problems else "No problems found")
