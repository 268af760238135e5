"""What code running inside JupyterHub asks of the target it runs on.

`coursehub.hub` and `coursehub.lti` never import a target: they ask the `Host` of
the Plan's layout, which each target provides as an entry point of the group
`coursehub.hosts` ('local': one machine; 'system': a Docker host). Imports only
pure coursehub modules (the Plan), so no import cycle runs through a target.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Protocol

from .plan import Plan

HOSTS_GROUP = "coursehub.hosts"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    url: str


@dataclass(frozen=True)
class InstallationHealth:
    available: bool  # False: this target has no supervisor that the hub can ask
    running: bool = False  # the supervisor
    pid: int | None = None
    checks: tuple[Check, ...] = ()

    @property
    def healthy(self) -> bool:
        return self.running and all(c.ok for c in self.checks)


class HostUnsupported(RuntimeError):
    """The target cannot do this (yet); the message says what to do instead."""


class Host(Protocol):
    """One installation as the hub's code sees it, whatever runs it."""

    def plan(self) -> Plan:
        """The installation's Plan as it is now (read again when it changed)."""

    def site_file(self) -> str:
        """The site file the installation was last brought up with."""

    def apply_roster(self, site_file: str) -> list[str]:
        """Apply a changed site file's people and memberships to the running
        installation (users, groups, gradebooks), without a restart; what was done."""

    def apply_in_background(self, site_file: str) -> None:
        """Start bringing the installation to a site file that adds a course (folders,
        gradebook, the course loaded into the hub, its grader server) and return at once."""

    def run_as_grader(
        self,
        course_id: str,
        argv: list[str],
        *,
        capture: bool = False,
        input: str | None = None,  # noqa: A002 - as subprocess.run names it
    ) -> subprocess.CompletedProcess:
        """Run a command as the course's grader account, with its configuration."""

    def read_gradebook(self, course_id: str, script: str, args: list[str]) -> str:
        """Run a Python `script` (with `args`) as the course's grader, in the servers'
        environment where nbgrader is; its standard output."""

    def health(self) -> InstallationHealth:
        """What `coursehub status` knows: the supervisor and each process's health."""


@cache
def _host_class(kind: str) -> type:
    found = entry_points(group=HOSTS_GROUP, name=kind)
    if not found:
        raise HostUnsupported(
            f"no coursehub target provides layout {kind!r} (entry points {HOSTS_GROUP}); "
            "reinstall coursehub"
        )
    return next(iter(found)).load()


def host_for(plan: Plan) -> Host:
    """The Host of the installation a Plan describes (by its layout)."""
    return _host_class(plan.layout.kind)(plan)
