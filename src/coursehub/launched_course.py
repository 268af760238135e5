"""Server extension: the Assignments panel opens on the course a launch came from.

nbgrader's Assignments panel shows the first course its server's GET /courses
lists, and nbgrader lists them alphabetically. A student who opens coursehub
from the LMS page of their second course expects that course. Each LMS launch
writes the course into the student's home (coursehub.lti.landing); this
extension answers GET /courses with that course first and the others after it,
so the menu still offers every course.

It is enabled wherever nbgrader's assignment_list is and replaces nbgrader's
handler for that one URL: Jupyter Server loads extensions in alphabetical
order, so coursehub's route is added (and matched) before nbgrader's.

At start it also writes the server's landing workspaces (coursehub.workspaces:
Assignments, and Courses where the course list is on), as the person whose
server this is, so a login with a password lands where an LMS launch does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LAUNCH_FILE = os.path.join(".jupyter", "coursehub", "launch.json")


def launched_course(home: str | os.PathLike[str]) -> str | None:
    """The course of the person's last LMS launch, or None (no launch, unreadable file)."""
    try:
        course = json.loads(Path(home, LAUNCH_FILE).read_text()).get("course")
    except (OSError, ValueError, AttributeError):
        return None
    return course if isinstance(course, str) and course else None


def launched_first(courses: list[str], course: str | None) -> list[str]:
    """The listed courses with the launched one first (only if it is listed)."""
    if course is None or course not in courses:
        return courses
    return [course, *(c for c in courses if c != course)]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "coursehub.launched_course"}]


COURSE_LIST_EXTENSION = "nbgrader.server_extensions.course_list"


def landing_workspaces(enabled_extensions: dict[str, bool]) -> list[str]:
    """The workspaces a server writes at start: Assignments, and Courses with the course list."""
    from .workspaces import ASSIGNMENTS, COURSES

    return [ASSIGNMENTS, *([COURSES] if enabled_extensions.get(COURSE_LIST_EXTENSION) else [])]


def _write_landing(serverapp: Any, home: str) -> None:
    from .workspaces import write_own_workspaces

    folder = os.environ.get("JUPYTERLAB_WORKSPACES_DIR") or os.path.join(
        home, ".jupyter", "lab", "workspaces"
    )
    try:
        write_own_workspaces(folder, landing_workspaces(dict(serverapp.jpserver_extensions)))
    except OSError as err:  # a home the person broke: Lab still starts, on its own layout
        serverapp.log.warning("coursehub: could not write the landing workspaces: %s", err)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_server.utils import url_path_join
    from nbgrader.server_extensions.assignment_list.handlers import CourseListHandler
    from tornado import web

    home = os.path.expanduser("~")
    _write_landing(serverapp, home)

    class LaunchedCourseFirstHandler(CourseListHandler):
        @web.authenticated
        def get(self):
            listed = self.manager.list_courses()
            if listed.get("success"):
                listed["value"] = launched_first(listed["value"], launched_course(home))
            self.finish(json.dumps(listed))

    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base_url, "courses"), LaunchedCourseFirstHandler)]
    )
    serverapp.log.info("coursehub: the Assignments panel opens on the launched course")
