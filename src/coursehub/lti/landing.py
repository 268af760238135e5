"""Where a student's launch lands: their Lab with the Assignments panel open, on
the launch's course.

The student's server opens on the Assignments workspace (coursehub.workspaces);
a launch may find the server running already, so each student launch also
writes that workspace, in the student's workspaces folder and as the student
(never as root through a folder the student controls), and lands on it. The launch's course goes next
to it (~/.jupyter/coursehub/launch.json): coursehub.launched_course lists that
course first, so the panel opens on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..workspaces import assignments_workspace, workspace_file_name

# Run as the person: makes the folders and writes each file without following a
# link they may have put there.
_WRITE = """
import json, os, sys
for folder, name, content in json.loads(sys.argv[1]):
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = os.path.join(folder, "." + name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.replace(tmp, os.path.join(folder, name))
"""


def write_assignments_workspace(plan, person: str, course: str) -> None:
    """Write the workspace and the launch's course into `person`'s home, as `person`
    (their home is made first)."""
    from ..folders import make_home
    from ..launched_course import LAUNCH_FILE
    from ..runas import demote

    home = make_home(plan, person)
    account = plan.people[person].account
    isolated = os.geteuid() == 0 and account.uid != os.geteuid()
    # the system's Python (stdlib only): coursehub's own environment may not be
    # readable by the person's uid
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    proc = subprocess.run(  # noqa: S603 - fixed script
        [
            python,
            "-I",
            "-c",
            _WRITE,
            json.dumps(
                [
                    [
                        os.path.join(home, ".jupyter", "lab", "workspaces"),
                        workspace_file_name(),
                        json.dumps(assignments_workspace()),
                    ],
                    [
                        os.path.join(home, os.path.dirname(LAUNCH_FILE)),
                        os.path.basename(LAUNCH_FILE),
                        json.dumps({"course": course}),
                    ],
                ]
            ),
        ],
        preexec_fn=demote(account if isolated else None, cwd=home),  # noqa: PLW1509
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HOME": home},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not write {person}'s Lab workspace: {proc.stderr[-300:]}")
