"""Apply the site file to an installation, running or not, without dropping anyone.

People and course membership go to the hub through its API (users, groups),
to each course's gradebook, and to the folders of the Plan. A new course is
loaded into the running hub (its roles, groups and grader service; see
coursehub.hub.live) and the supervisor starts its grader server: nobody's
session or server notices. What the hub reads at start only (admins, the
authenticator, a course removed, a grader's new address) makes the supervisor
restart the hub alone, while the proxy keeps every user connected.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ...paths import gradebook_url
from ...plan import SERVICE_NAME, Plan
from ...plandiff import hub_restart_reasons, loadable_changes
from ...secrets import load_secrets, write_private
from .install import prepare
from .runtime import Installation, run_as_grader, save_runtime, wait_healthy

_GRADEBOOK_SYNC = """
import json, sys
from nbgrader.api import Gradebook, Student
db_url, course_id = sys.argv[1], sys.argv[2]
wanted = json.load(sys.stdin)  # the roster: never on a command line, which every uid sees
with Gradebook(db_url, course_id) as gb:
    have = {s.id for s in gb.students}
    added = [n for n in wanted if n not in have]
    # one transaction: Gradebook.add_student commits (and syncs to disk) once per student
    gb.db.add_all([Student(id=name) for name in added])
    gb.db.commit()
print(json.dumps(added))
"""


def some(names: list[str], shown: int = 8) -> str:
    """A list of names for a progress line: a large roster does not fill the screen."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more ({len(names)} in all)"


@dataclass
class Applied:
    users_added: list[str] = field(default_factory=list)
    group_changes: list[str] = field(default_factory=list)
    gradebook_added: dict[str, list[str]] = field(default_factory=dict)
    courses_added: list[str] = field(default_factory=list)
    courses_removed: list[str] = field(default_factory=list)
    hub_restarted: bool = False
    restart_reasons: list[str] = field(default_factory=list)
    hub_loaded: list[str] = field(default_factory=list)
    running: bool = False

    def lines(self) -> list[str]:
        out = []
        if self.courses_added:
            out.append(f"courses started: {', '.join(self.courses_added)}")
        if self.courses_removed:
            out.append(f"courses stopped (their files are kept): {', '.join(self.courses_removed)}")
        if self.hub_loaded:
            out.append(f"loaded into the running hub (no restart): {', '.join(self.hub_loaded)}")
        if self.hub_restarted:
            why = "; ".join(self.restart_reasons) or "to load the change"
            out.append(f"hub restarted ({why}); users stayed connected")
        if self.users_added:
            out.append(f"hub users created: {some(self.users_added)}")
        out += self.group_changes
        for course, names in self.gradebook_added.items():
            if names:
                out.append(f"gradebook of {course}: added {some(names)}")
        return out


class Busy(RuntimeError):
    """Another change is being applied right now."""


@contextmanager
def apply_lock(inst: Installation, wait: bool = True):
    """One change at a time per installation (the CLI and the supervisor both apply).

    The supervisor never waits (wait=False): a change in progress may be waiting
    for the supervisor itself to reload.
    """
    inst.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(inst.paths.apply_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy("another change is being applied") from None
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class HubAPI:
    """The hub's REST API with coursehub's own token."""

    def __init__(self, plan: Plan):
        self.base = plan.hub_api_url
        token = load_secrets(plan.paths.secrets)["automation_token"]
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"token {token}"

    def call(self, method: str, path: str, **kw) -> requests.Response:
        return self.s.request(method, f"{self.base}/{path.lstrip('/')}", timeout=30, **kw)

    def items(self, path: str, params: dict | None = None) -> list[dict]:
        """Every item of a paginated list (users, groups, ...), page after page: the hub
        answers at most `api_page_default_limit` (50) items to a plain GET."""
        out: list[dict] = []
        query = {**(params or {}), "offset": 0, "limit": 200}
        while True:
            r = self.call(
                "GET",
                path,
                params=query,
                headers={"Accept": "application/jupyterhub-pagination+json"},
            )
            r.raise_for_status()
            page = r.json()
            out += page["items"]
            nxt = page.get("_pagination", {}).get("next")
            if not nxt:
                return out
            query = {**query, "offset": nxt["offset"], "limit": nxt["limit"]}


def sync_hub(plan: Plan) -> tuple[list[str], list[str]]:
    """Make the hub's users and course groups what the Plan says. Returns (users added, group changes)."""
    api = HubAPI(plan)
    existing = {u["name"] for u in api.items("users")}
    added = []
    for name in plan.people:
        if name not in existing:
            r = api.call("POST", f"users/{name}")
            if r.status_code == 409:
                continue  # made meanwhile (the hub loads course groups' members itself)
            r.raise_for_status()
            added.append(name)
    changes = []
    for group, wanted in plan.groups.items():
        r = api.call("GET", f"groups/{group}")
        if r.status_code == 404:
            continue  # a new course's group: the hub makes it when it loads the course
        r.raise_for_status()
        have = set(r.json()["users"])
        plus = sorted(set(wanted) - have)
        minus = sorted(have - set(wanted))
        if plus:
            api.call("POST", f"groups/{group}/users", json={"users": plus}).raise_for_status()
            changes.append(f"{group}: added {some(plus)}")
        if minus:
            api.call("DELETE", f"groups/{group}/users", json={"users": minus}).raise_for_status()
            changes.append(f"{group}: removed {some(minus)}")
    return added, changes


def sync_gradebooks(inst: Installation, plan: Plan) -> dict[str, list[str]]:
    """Give every student a row in their course's gradebook (rows are never deleted:
    a student who leaves keeps their grades)."""
    python = os.path.join(inst.runtime()["user_env"], "bin", "python")
    added = {}
    for cid, g in plan.courses.items():
        if not g.students:
            continue
        db_url = gradebook_url(g.course_root)
        proc = run_as_grader(
            inst,
            cid,
            [python, "-c", _GRADEBOOK_SYNC, db_url, cid],
            capture=True,
            input=json.dumps(list(g.students)),
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"could not update the gradebook of {cid}: {proc.stderr.strip()[-500:]}"
            )
        added[cid] = json.loads(proc.stdout.strip().splitlines()[-1])
    remember_gradebooks(inst, plan)
    return added


def _seen_file(inst: Installation) -> Path:
    return Path(inst.paths.gradebook_seen)


def remember_gradebooks(inst: Installation, plan: Plan) -> None:
    """Note who is in each gradebook now: only students who appear later (added in the
    formgrader) are taken into the site file; those removed on purpose stay out."""
    seen = {cid: sorted(gradebook_students(plan, cid)) for cid in plan.courses}
    write_private(_seen_file(inst), json.dumps(seen, indent=1) + "\n")


def seen_gradebooks(inst: Installation) -> dict[str, set[str]]:
    try:
        return {k: set(v) for k, v in json.loads(_seen_file(inst).read_text()).items()}
    except (OSError, ValueError):
        return {}


def gradebook_students(plan: Plan, course_id: str) -> list[str]:
    """Students in a course's gradebook (read-only; no gradebook yet: none)."""
    import sqlite3

    from ...safefs import open_regular

    # the course folder is the grader's: open the gradebook without following a link
    # (it could point at another course's), then let SQLite read that open file
    try:
        fd = open_regular(plan.courses[course_id].gradebook)
    except (OSError, RuntimeError):
        return []
    if fd is None:
        return []
    try:
        con = sqlite3.connect(f"file:/proc/self/fd/{fd}?mode=ro&immutable=1", uri=True)
        try:
            return [row[0] for row in con.execute("SELECT id FROM student")]
        except sqlite3.Error:
            return []
        finally:
            con.close()
    finally:
        os.close(fd)


def _takes_sigusr1(inst: Installation) -> bool:
    try:
        return "SIGUSR1" in json.loads(inst.state_file.read_text()).get("reload_signals", [])
    except (OSError, ValueError):
        return False


def _reloads(inst: Installation) -> int:
    try:
        return json.loads(inst.state_file.read_text()).get("reloads", 0)
    except (OSError, ValueError):
        return 0


def _hub_has_services(plan: Plan, courses: set[str]) -> bool:
    try:
        r = HubAPI(plan).call("GET", "services")
        return r.ok and courses == set(r.json()) - {SERVICE_NAME}
    except requests.RequestException:
        return False


class HubLoadError(RuntimeError):
    """The running hub could not load the new courses itself."""


def load_into_hub(plan: Plan) -> list[str]:
    """Ask the running hub to load the Plan's new courses (roles, groups, services)."""
    token = load_secrets(plan.paths.secrets)["automation_token"]
    try:
        r = requests.post(
            plan.load_courses_url, headers={"Authorization": f"token {token}"}, timeout=60
        )
    except requests.RequestException as err:
        raise HubLoadError(f"the hub did not answer ({err})") from None
    if r.status_code != 200:
        raise HubLoadError(f"the hub could not load them ({r.status_code}: {r.text[:200]})")
    return r.json()["loaded"]


def _reload(
    inst: Installation, pid: int, sig: int, timeout: float, progress: Callable[[str], None]
) -> None:
    """Signal the supervisor (SIGHUP: restart the hub too; SIGUSR1: grader servers only)
    and wait until it reloaded and everything answers."""
    before = _reloads(inst)
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _reloads(inst) <= before:  # an old hub must be gone before health counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"the supervisor did not reload; see {inst.log_file}")
        time.sleep(0.2)
    if not wait_healthy(inst, max(deadline - time.monotonic(), 1.0), progress):
        raise RuntimeError(f"the installation is not healthy after the change; see {inst.log_file}")


def apply_site(
    inst: Installation,
    site_file: str,
    progress: Callable[[str], None] = lambda m: None,
    timeout: float = 120,
    wait: bool = True,
) -> Applied:
    """Apply `site_file` to the installation: folders, Plan, then (if it runs) the hub,
    the grader servers and the gradebooks."""
    with apply_lock(inst, wait):
        old = inst.plan()
        rt = inst.runtime()
        pid = inst.supervisor_pid()
        prepared = prepare(site_file, inst.data_dir, rt["user_env"], running=old if pid else None)
        save_runtime(inst.data_dir, prepared.user_env, prepared.hub_config_file, site_file)
        new = prepared.plan
        result = Applied(
            courses_added=sorted(set(new.courses) - set(old.courses)),
            courses_removed=sorted(set(old.courses) - set(new.courses)),
            running=bool(pid),
        )
        reasons = hub_restart_reasons(old, new)
        if pid and (reasons or loadable_changes(old, new)):
            result.restart_reasons = reasons
            if not result.restart_reasons and not _takes_sigusr1(inst):
                result.restart_reasons = ["its supervisor predates live loading"]
            if not result.restart_reasons:
                progress("loading the new courses into the running hub")
                try:
                    result.hub_loaded = load_into_hub(new)
                except HubLoadError as err:
                    result.restart_reasons = [f"{err}; restarting it instead"]
            if result.restart_reasons:
                progress("asking the supervisor to start new grader servers and restart the hub")
                _reload(inst, pid, signal.SIGHUP, timeout, progress)
                result.hub_restarted = True
            else:
                progress("asking the supervisor to start the new grader servers")
                _reload(inst, pid, signal.SIGUSR1, timeout, progress)
            deadline = time.monotonic() + timeout
            while not _hub_has_services(new, set(new.courses)):
                if time.monotonic() > deadline:
                    raise RuntimeError("the hub did not load the new courses; see its log")
                time.sleep(0.3)
        if pid:
            result.users_added, result.group_changes = sync_hub(new)
        result.gradebook_added = sync_gradebooks(inst, new)
        return result
