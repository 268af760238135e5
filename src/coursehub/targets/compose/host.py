"""The Docker host as the hub's code sees it (coursehub.hosting.Host).

The hub's container holds the Plan but not the host's folders, the site file or
the grader containers: what only the host can do is refused with what to do.
"""

from __future__ import annotations

import subprocess

from ...hosting import HostUnsupported, InstallationHealth
from ...plan import Plan, load_plan

_ON_THE_HOST = (
    "a Docker host's hub cannot {what}: the host's folders and the grader containers "
    "are not in the hub's container. Change the site file, render again and apply it "
    "on the host as the README says"
)


class DockerHost:
    def __init__(self, plan: Plan):
        self._plan_file = plan.paths.plan_file

    def plan(self) -> Plan:
        return load_plan(self._plan_file)

    def _unsupported(self, what: str):
        raise HostUnsupported(_ON_THE_HOST.format(what=what))

    def site_file(self) -> str:
        self._unsupported("change the site file")

    def apply_roster(self, site_file: str) -> list[str]:
        self._unsupported("apply a roster change")

    def apply_in_background(self, site_file: str) -> None:
        self._unsupported("add a course")

    def run_as_grader(
        self,
        course_id: str,
        argv: list[str],
        *,
        capture: bool = False,
        input: str | None = None,  # noqa: A002 - as subprocess.run names it
    ) -> subprocess.CompletedProcess:
        self._unsupported("run a command as a grader")

    def read_gradebook(self, course_id: str, script: str, args: list[str]) -> str:
        self._unsupported("read a gradebook")

    def health(self) -> InstallationHealth:
        return InstallationHealth(available=False)  # no supervisor: 'docker compose ps'
