"""coursehub doctor: check an installation, running or stopped, for every known trap.

Each check is a small function that returns Problems, each naming what is wrong
and how to fix it.

What doctor expects comes from the Plan, derived again with this coursehub from
the inputs recorded in ``state/plan.json`` (people, courses, ports), or from a
site file when one is given. ``plan.json`` is what the hub and the spawner run
with, so a plan.json that differs from what coursehub derives (edited by hand,
or written by an older coursehub with other modes or scopes) is a problem of its
own, and every other check holds the installation to the derived Plan.

The package: coursehub.doctor.compare holds Problem and the pure comparisons (a
folder's stat against the Plan, a token's scopes against its roles, versions), tested
without a hub; coursehub.doctor.checks holds the Context and every check that reads the
machine (stat, HTTP, processes), in the order they run; this module derives the Plan to
hold the installation to, runs the checks and reports. How two Plans differ (plan.json
against the Plan derived again) is coursehub.plandiff's.

What doctor may import: coursehub's own modules that start nothing (plan, plandiff, site,
secrets, ids, ports, ...) at the top; the hub's and the local target's (coursehub.hub,
coursehub.targets.local) only inside the function that needs them, never at the top.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..ids import Ids
from ..plan import Plan, derive
from ..site import SiteError, load_site
from .checks import CHECKS, Context
from .compare import REUP, Problem, site_from_plan

__all__ = ["Problem", "diagnose", "reference_plan", "report"]


def reference_plan(stored: Plan, site_file: str | None = None) -> Plan:
    """The Plan coursehub derives now for this installation, from the site file
    if given, else from the inputs plan.json records. Raises SiteError, ValueError."""
    site = load_site(site_file) if site_file else site_from_plan(stored)
    top = next((f for f in stored.folders if f.path == stored.paths.data_dir), None)
    owner = (top.uid, top.gid) if top else (os.getuid(), os.getgid())
    ids = Ids.load(Path(stored.paths.ids_file))
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
    from ..targets.local.runtime import Installation

    inst = Installation(data_dir)
    try:
        stored = inst.plan()
    except (ValueError, KeyError, TypeError) as err:
        return [
            Problem(
                "plan",
                f"{inst.paths.plan_file} cannot be read as a Plan "
                f"({err.__class__.__name__}: {err})",
                f"{REUP}: it writes the Plan again",
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
