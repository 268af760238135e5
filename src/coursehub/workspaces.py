"""Where a person's Lab opens: a named JupyterLab workspace per environment.

JupyterLab has no URL that runs a command, but it opens a named workspace at
/lab/workspaces/NAME and restores what the workspace's layout holds; nbgrader's
Assignments and Courses panels restore from a workspace. So a student's server
opens on a workspace with the Assignments panel, an instructor's on one with
the Courses panel (each course with its link to the formgrader) and the
Assignments panel behind it; a person in no course gets Lab as it is.

The server writes its workspaces itself when it starts, as the person
(coursehub.launched_course), so nothing running as root writes into a home.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .plan import INSTRUCTOR, STANDARD, STUDENT, Plan

ASSIGNMENTS = "coursehub-assignments"
COURSES = "coursehub-courses"
# the keys nbgrader's restorers look up: each tracker's namespace and widget name
ASSIGNMENT_LIST = "nbgrader-assignment-list:nbgrader-assignment-list"
COURSE_LIST = "nbgrader-course-list:nbgrader-course-list"
WORKSPACE_EXTENSION = ".jupyterlab-workspace"

# environment -> the workspace its server opens on (None: Lab's own)
LANDING_WORKSPACE: dict[str, str | None] = {
    STUDENT: ASSIGNMENTS,
    INSTRUCTOR: COURSES,
    STANDARD: None,
}
# workspace -> its panels, the first one in front
PANELS: dict[str, tuple[str, ...]] = {
    ASSIGNMENTS: (ASSIGNMENT_LIST,),
    COURSES: (COURSE_LIST, ASSIGNMENT_LIST),
}


def lab_workspace(name: str, panels: tuple[str, ...]) -> dict[str, Any]:
    """A JupyterLab workspace with `panels` open in the main area (the first in front)
    and the file browser on the left."""
    return {
        "data": {
            "layout-restorer:data": {
                "main": {
                    "dock": {"type": "tab-area", "currentIndex": 0, "widgets": list(panels)},
                    "current": panels[0],
                },
                "left": {"collapsed": False, "current": "filebrowser", "widgets": ["filebrowser"]},
                "right": {"collapsed": True, "widgets": []},
            },
            **{panel: {"data": {}} for panel in panels},
        },
        "metadata": {"id": name},
    }


def assignments_workspace() -> dict[str, Any]:
    return lab_workspace(ASSIGNMENTS, PANELS[ASSIGNMENTS])


def workspace_file_name(name: str = ASSIGNMENTS) -> str:
    """The file JupyterLab's workspaces manager reads for workspace `name`."""
    from jupyterlab_server.workspaces_handler import slugify

    return slugify(name) + WORKSPACE_EXTENSION


def landing_url(environment: str) -> str:
    """The server's default URL for a person of `environment`."""
    name = LANDING_WORKSPACE.get(environment)
    return f"/lab/workspaces/{name}" if name else "/lab"


def person_landing_url(plan: Plan, name: str) -> str:
    """A person's server's default URL (Lab's own for a name the Plan does not know)."""
    person = plan.people.get(name)
    return landing_url(person.environment) if person else "/lab"


def lab_landing(base_url: str, person: str) -> str:
    """A student's Lab, opened on the Assignments panel (where an LMS launch lands)."""
    return f"{base_url}user/{person}{landing_url(STUDENT)}"


def write_own_workspaces(folder: str, names: list[str]) -> list[str]:
    """Write the landing workspaces `names` into `folder`. Runs in the person's own
    server, under their uid: the folder is theirs. Returns the files written."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    written = []
    for name in names:
        target = os.path.join(folder, workspace_file_name(name))
        tmp = os.path.join(folder, f".{workspace_file_name(name)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(lab_workspace(name, PANELS[name]), f)
        os.replace(tmp, target)
        written.append(target)
    return written
