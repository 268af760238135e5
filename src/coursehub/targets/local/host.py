"""The local target as the hub's code sees it (coursehub.hosting.Host).

The hub runs on this machine as root, beside the supervisor: a roster change is
applied in the hub's process, a course is added by `coursehub up` in a process of
its own, and a grader's command runs under the grader's uid.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ...hosting import Check, InstallationHealth
from ...plan import Plan
from . import runtime
from .runtime import Installation, run_as_grader


class LocalHost:
    def __init__(self, plan: Plan | str):
        data_dir = plan if isinstance(plan, str) else plan.paths.data_dir
        self.installation = Installation(data_dir)

    @property
    def data_dir(self) -> str:
        return self.installation.data_dir

    def plan(self) -> Plan:
        return self.installation.plan()

    def site_file(self) -> str:
        return self.installation.runtime()["site_file"]

    def apply_roster(self, site_file: str) -> list[str]:
        from .apply import apply_site

        return apply_site(self.installation, site_file).lines()

    def apply_in_background(self, site_file: str) -> None:
        # Apart from the hub, so that the launch's answer does not wait for it, and not
        # the hub's child: a hub stop leaves it be.
        log = self.installation.paths.log("lti-apply")
        with open(log, "ab") as out:
            os.fchmod(out.fileno(), 0o600)
            subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [sys.executable, "-m", "coursehub", "up", "--site", site_file,
                 "--data-dir", self.data_dir, "--detach"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")},
            )  # fmt: skip

    def run_as_grader(
        self,
        course_id: str,
        argv: list[str],
        *,
        capture: bool = False,
        input: str | None = None,  # noqa: A002 - as subprocess.run names it
    ) -> subprocess.CompletedProcess:
        return run_as_grader(self.installation, course_id, argv, capture=capture, input=input)

    def read_gradebook(self, course_id: str, script: str, args: list[str]) -> str:
        python = os.path.join(self.installation.runtime()["user_env"], "bin", "python")
        proc = self.run_as_grader(course_id, [python, "-c", script, *args], capture=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"could not read the gradebook of {course_id}: {proc.stderr.strip()[-400:]}"
            )
        return proc.stdout

    def health(self) -> InstallationHealth:
        pid = self.installation.supervisor_pid()
        if not pid:
            return InstallationHealth(available=True)
        checks = tuple(Check(h.name, h.ok, h.url) for h in runtime.health(self.installation))
        return InstallationHealth(True, True, pid if pid > 0 else None, checks)
