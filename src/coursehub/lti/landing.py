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

from ..workspaces import assignments_workspace, workspace_file_name


def write_assignments_workspace(plan, person: str, course: str) -> None:
    """Write the workspace and the launch's course into `person`'s home, as `person`
    (their home is made first)."""
    from ..folders import make_home
    from ..launched_course import LAUNCH_FILE
    from ..runas import write_files_as

    home = make_home(plan, person)
    write_files_as(
        plan.people[person].account,
        [
            (
                os.path.join(home, ".jupyter", "lab", "workspaces"),
                0o700,
                workspace_file_name(),
                json.dumps(assignments_workspace()),
            ),
            (
                os.path.join(home, os.path.dirname(LAUNCH_FILE)),
                0o700,
                os.path.basename(LAUNCH_FILE),
                json.dumps({"course": course}),
            ),
        ],
        cwd=home,
        what=f"{person}'s Lab workspace",
    )
