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


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_server.utils import url_path_join
    from nbgrader.server_extensions.assignment_list.handlers import CourseListHandler
    from tornado import web

    home = os.path.expanduser("~")

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
