"""doctor's checks, in the order they run (CHECKS): each reads the machine (stat, the
hub's API, processes, the servers' environment) and holds what it read against the Plan
with coursehub.doctor.compare. The hub's and the local target's modules (coursehub.hub,
coursehub.targets.local) are imported only inside the checks that use them.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..plan import LOCAL, SERVICE_NAME, Folder, Plan
from ..plandiff import plan_differences
from ..ports import port_in_use
from ..secrets import COOKIE_SECRET_FILE, SECRETS_FILE
from ..site import FIRST_USE, SiteError, load_site
from .compare import (
    REUP,
    Names,
    Problem,
    Seen,
    check_secret_file,
    compare_file,
    compare_folder,
    compare_scopes,
    compare_services,
    compare_versions,
    creator_of,
    expand_scopes,
    exposed,
    identity_overlaps,
    missing_secrets,
    planned_scopes,
)

WALK_DEPTH = 6  # how deep under the data folder to look for world-writable folders


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


@dataclass
class Context:
    """What every check may read: the installation, its Plans and its secrets."""

    inst: Any  # targets.local.runtime.Installation
    plan: Plan  # what doctor holds the installation to
    stored: Plan  # the stored Plan, what the hub runs with
    running: bool
    note: Callable[[str], None]
    derive_error: str | None = None
    source: str = "the courses and people the stored Plan records"

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
                f"{ctx.derive_error}; the other checks use {ctx.plan.paths.plan_file} as it is",
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
            f"{ctx.plan.paths.plan_file}, which the hub and spawner run with, differs from "
            f"the Plan this coursehub derives from {ctx.source}: {shown}",
            f"{REUP}: it writes the Plan again",
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

    from ..hub.auth import claimable_by_first_login
    from ..password_links import names_set_by_link, needs_link

    plan = ctx.plan
    if plan.auth.type != FIRST_USE:
        return []
    data = plan.paths.data_dir
    problems: list[Problem] = []
    if not _loopback(plan.ip):
        problems.append(
            Problem(
                FIRST_USE,
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
                FIRST_USE,
                f"{name} is an admin or instructor, yet the hub's authenticator lets the first "
                f"login with that name set its password: anyone who knows the name can claim it",
                "the hub's first-use authenticator must be coursehub's "
                "(coursehub.hub.auth.CourseFirstUseAuthenticator, with the Plan): reinstall "
                f"coursehub ('make setup'), then {REUP}",
            )
        )
    try:
        with dbm.open(plan.paths.passwords_dbm, "r") as db:
            with_password = {k.decode("utf8", "replace") for k in db.keys()}  # noqa: SIM118 - dbm objects are not iterable
    except dbm.error:
        with_password = set()  # no password database yet: nobody has logged in
    by_link = names_set_by_link(plan.paths.password_links)
    for name in privileged:
        if name in with_password and name not in by_link:
            problems.append(
                Problem(
                    FIRST_USE,
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
                f"{ctx.plan.paths.runtime_file} is missing or unreadable: it names the "
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
    from ..runas import demote
    from ..sandbox import find_bwrap, probe_argv

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
    from ..targets.local.runtime import health
    from ..targets.local.supervisor import processes_of

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
            log = plan.paths.log(h.name)
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


def check_identities(ctx: Context) -> list[Problem]:
    from ..ids import host_taken

    return identity_overlaps(ctx.stored, host_taken)


def site_file_problems(path: str) -> list[Problem]:
    """The site file coursehub rewrites: a link is never followed; with a secret in it,
    only its owner may read it."""
    import stat as st_mod

    from ..sitefile import holds_secret

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


def check_hub_config_d(ctx: Context) -> list[Problem]:
    """The operator's own hub configuration (jupyterhub_config.d): which files the hub
    loads after coursehub's, and none that another account could change (they run in
    the hub, which refuses to start with one)."""
    from ..hub.config import UnsafeConfig, extra_config_files

    folder = ctx.plan.paths.hub_config_d
    planned = next((f for f in ctx.plan.folders if f.path == folder), None)
    try:
        # as the hub will judge them: owned by the account the hub runs as
        files = extra_config_files(folder, planned.uid if planned else None)
    except UnsafeConfig as err:
        return [Problem("hub-config", str(err), "the hub does not start until it is fixed")]
    except OSError as err:
        return [Problem("hub-config", f"cannot read {folder}: {err}", "run doctor as root")]
    names = ", ".join(os.path.basename(f) for f in files)
    ctx.note(
        f"the hub loads {names} from {folder}, after coursehub's configuration"
        if files
        else f"no hub configuration of your own in {folder} (*.py there is loaded last)"
    )
    return []


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
    check_hub_config_d,
    check_identities,
    check_site_file,
)
