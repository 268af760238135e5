"""doctor's pure comparisons: facts already read (a path's lstat, the hub's answers, the
servers' versions, the host's numbers) held against the Plan, each giving Problems.

No I/O: it imports coursehub.plan, .secrets and .site, and (in expand_scopes) the hub's
own scope definitions; never coursehub.targets. Comparing two Plans is coursehub.plandiff's.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..plan import SERVICE_NAME, File, Folder, Plan, PlanAuth
from ..secrets import secret_names
from ..site import Auth, Course, Hub, Site

REUP = "stop it ('coursehub down') and run 'coursehub up --site FILE' again"

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


@dataclass(frozen=True)
class Seen:
    """What lstat says about a path."""

    uid: int
    gid: int
    mode: int  # permission bits, with setuid/setgid/sticky
    kind: str  # "folder", "file", "symlink" or "other"


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

    from ..hub.config import CUSTOM_SCOPES

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
        "the hub takes its roles from the installation's Plan when it starts: "
        f"{REUP}, which rewrites it and the hub's roles"
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


def _auth_from_plan(auth: PlanAuth) -> Auth:
    """The auth section as far as the Plan records it: everything but secrets, which
    the Plan never holds (the LMS's key and secret live in the secrets folder)."""
    return Auth(
        type=auth.type,
        min_password_length=auth.min_password_length,
        issuer=auth.issuer or None,
        client_id=auth.client_id or None,
        jwks_url=auth.jwks_url or None,
        authorize_url=auth.authorize_url or None,
        token_url=auth.token_url or None,
        contexts=tuple(auth.contexts.items()),
        deployment_ids=auth.deployment_ids,
        courses_per_hour=auth.courses_per_hour,
        max_launch_courses=auth.max_launch_courses,
        outcome_hosts=auth.outcome_hosts,
        service_hosts=auth.service_hosts,
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
                    f"edit {plan.paths.ids_file} so that each has its own number, then {REUP}",
                )
            )
        elif host_taken(number):
            problems.append(
                Problem(
                    "ids",
                    f"number {number} of {names[0]} is also an account or a group of this "
                    "machine's own (passwd, group or a directory service)",
                    "give that account or group of the machine another number, or move "
                    f"{names[0]} to a free one in {plan.paths.ids_file} (then chown its files), then "
                    f"{REUP}",
                )
            )
    return problems
