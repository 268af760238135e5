"""What each account's container runs as and sees, built from the Plan.

Pure builders, no Docker: the Docker spawner and the compose renderer both use
them, so a container gets exactly what the account's uid reaches on the local
target and nothing more. Paths are the same on the host and in the container
(bind mounts of the same path), so the Plan's folders, owners and modes hold
inside too:

- every account runs under its own uid from the Plan (never the images'
  shared ``jovyan`` uid, which would let any student read any submission),
  with its course groups added;
- its home read-write; the configuration every server reads (passwd and
  group for nss_wrapper, Jupyter config of each role, nbgrader layer 1)
  read-only;
- a person sees, per course, ``outbound`` read-only, and as a student their
  own ``inbound/{name}`` read-write and their own feedback read-only; never
  the exchange root, another student's folders or a course they are not in;
- a grader sees its home (its course config read-only), its own course's
  exchange folder and the feedback folders of its own students;
- no secrets, state, logs or hub database, ever.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

from .environment import grader_env, person_env
from .plan import (
    GRADER,
    INSTRUCTOR,
    STANDARD,
    STUDENT,
    Account,
    Person,
    Plan,
    grader_server_args,
)

# Debian/Ubuntu's libnss-wrapper, found by the dynamic loader on any
# architecture; the notebook images install it.
NSS_WRAPPER = "libnss_wrapper.so"
# The uid every docker-stacks image gives its 'jovyan' user: one uid shared by
# everyone breaks the exchange's privacy, so no account may run as it.
JOVYAN_UID = 1000
# The port a server listens on inside its container when the Plan names none.
CONTAINER_PORT = 8888
# Environments a person's image is chosen by (a grader image is given apart).
PERSON_ENVIRONMENTS = (STUDENT, INSTRUCTOR, STANDARD)


class Mount(NamedTuple):
    """A bind mount of a host path at the same path in the container."""

    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    """How to run one account's server in a container. Holds no secret."""

    image: str
    user: str  # "uid:gid", never a name: the image has no such account
    group_add: tuple[int, ...]
    mounts: tuple[Mount, ...]
    environment: dict[str, str] = field(repr=False)
    working_dir: str
    command: tuple[str, ...] | None = None
    # Nothing a server needs takes privileges: setuid programs in an image must
    # not give them back (the uid is what keeps the exchange private).
    cap_drop: tuple[str, ...] = ("ALL",)
    security_opt: tuple[str, ...] = ("no-new-privileges:true",)


class ContainerPlanError(ValueError):
    """The Plan cannot be run in containers as asked."""


def person_container(
    plan: Plan, name: str, images: dict[str, str], nss_wrapper: str = NSS_WRAPPER
) -> ContainerSpec:
    """The container of a person's server: image of their environment, their uid."""
    _require_isolated(plan)
    person = planned_person(plan, name)
    image = images.get(person.environment)
    if not image:
        raise ContainerPlanError(
            f"no image for the {person.environment!r} environment (needed by {name!r}); "
            f"set images[{person.environment!r}]"
        )
    account = person.account
    _require_own_uid(account)

    mounts = [Mount(account.home, account.home, False)]
    mounts += _config_mounts(plan, [person.config_dir, posixpath.dirname(plan.passwd_file(name))])
    folders = _planned_folders(plan)
    exchange = plan.paths.exchange
    student_of = []
    for cid, role in person.courses.items():
        mounts.append(_planned(folders, f"{exchange}/{cid}/outbound", read_only=True))
        if role == STUDENT:
            student_of.append(cid)
            mounts.append(_planned(folders, f"{exchange}/{cid}/inbound/{name}", read_only=False))
    if student_of:
        # one folder per course inside, each readable by this student's group only
        mounts.append(_planned(folders, f"{exchange}/.feedback/{name}", read_only=True))
    _require_no_private(plan, mounts)

    return ContainerSpec(
        image=image,
        user=f"{account.uid}:{account.gid}",
        group_add=account.groups,
        mounts=tuple(mounts),
        environment=person_env(plan, name, nss_wrapper),
        working_dir=account.home,
        command=("jupyterhub-singleuser",),
    )


def grader_container(
    plan: Plan, course_id: str, image: str, nss_wrapper: str = NSS_WRAPPER
) -> ContainerSpec:
    """The container of a course's grader service (its token is not here: a secret)."""
    _require_isolated(plan)
    g = plan.courses.get(course_id)
    if g is None:
        raise ContainerPlanError(
            f"{course_id!r} is not a course of the site file; known: {', '.join(sorted(plan.courses))}"
        )
    if not image:
        raise ContainerPlanError(f"no image for the {GRADER!r} environment of {course_id!r}")
    account = g.account
    _require_own_uid(account)

    folders = _planned_folders(plan)
    exchange = plan.paths.exchange
    mounts = [
        Mount(account.home, account.home, False),
        # owned by root on the host; read-only inside as well
        _planned(folders, g.config_dir, read_only=True),
    ]
    mounts += _config_mounts(plan, [posixpath.dirname(plan.passwd_file(account.name))])
    # releases into outbound, collects from inbound/*, keeps nbgrader's feedback
    mounts.append(_planned(folders, f"{exchange}/{course_id}", read_only=False))
    for student in g.students:
        # releases each student's feedback into their own folder
        mounts.append(
            _planned(folders, f"{exchange}/.feedback/{student}/{course_id}", read_only=False)
        )
    _require_no_private(plan, mounts)

    env = grader_env(plan, course_id, nss_wrapper)
    port = urlsplit(g.url).port or CONTAINER_PORT
    command = ("jupyterhub-singleuser", *grader_server_args(g, "0.0.0.0", port))
    return ContainerSpec(
        image=image,
        user=f"{account.uid}:{account.gid}",
        group_add=account.groups,
        mounts=tuple(mounts),
        environment=env,
        working_dir=account.home,
        command=command,
    )


def planned_person(plan: Plan, name: str) -> Person:
    """The Plan's person of that name; grader accounts and unknown names are refused."""
    if name in _grader_names(plan):
        raise ContainerPlanError(
            f"{name!r} is a course's grader account: its server is the course's grader "
            "service, never a server the hub spawns"
        )
    person = plan.people.get(name)
    if person is None:
        raise ContainerPlanError(
            f"{name!r} is not in the site file; add them to 'people' (or 'admins') and render again"
        )
    return person


def _grader_names(plan: Plan) -> set[str]:
    return {g.account.name for g in plan.courses.values()}


def _require_isolated(plan: Plan) -> None:
    if not plan.isolated:
        raise ContainerPlanError(
            "this Plan gives every account one shared uid (made without root); "
            "containers need one uid per account: derive the Plan as root"
        )


def _require_own_uid(account: Account) -> None:
    if account.uid in (0, JOVYAN_UID) or account.gid == 0:
        raise ContainerPlanError(
            f"{account.name!r} would run as uid {account.uid}, gid {account.gid}: "
            "every account needs its own uid, never root's or the images' jovyan"
        )


def _planned_folders(plan: Plan) -> set[str]:
    return {f.path for f in plan.folders}


def _planned(folders: set[str], path: str, *, read_only: bool) -> Mount:
    """A mount of a folder the Plan makes (with its owner and mode), never another."""
    if path not in folders:
        raise ContainerPlanError(
            f"{path} is not a folder of the Plan; run 'coursehub render' again "
            "so that the Plan and the host folders agree"
        )
    return Mount(path, path, read_only)


def _config_mounts(plan: Plan, folders: list[str]) -> list[Mount]:
    """The configuration every server reads, read-only: the outermost folders that
    hold it. Folders rather than files: the files are replaced (never edited in
    place) when the roster changes, and a file mount would keep the old one."""
    p = plan.paths
    wanted = {
        p.etc,
        p.jupyter_config,
        posixpath.dirname(p.passwd),
        posixpath.dirname(p.group),
        *folders,
    }
    outermost: list[str] = []
    for path in sorted(wanted, key=len):
        if not any(_inside(path, o) for o in outermost):
            outermost.append(path)
    return [Mount(path, path, True) for path in sorted(outermost)]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _require_no_private(plan: Plan, mounts: list[Mount]) -> None:
    """Secrets, state (hub database, passwords, plan), logs and pids never enter a container.

    A mount must not hold a private folder. A mount inside one is refused too,
    unless that folder is a runtime root the layout keeps homes or
    configuration in (a bind mount of a subfolder shows that subfolder only).
    """
    p = plan.paths
    shared = (p.homes, p.graders, p.exchange, p.etc, p.jupyter_config)
    for private in (p.secrets, p.state, p.logs, p.run):
        holds_shared = any(_inside(s, private) for s in shared)
        for m in mounts:
            if _inside(private, m.source) or (_inside(m.source, private) and not holds_shared):
                raise ContainerPlanError(
                    f"mounting {m.source} would show {private} to a server; "
                    "keep configuration and private folders apart in the layout"
                )
