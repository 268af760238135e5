"""What each side of the benchmark (coursehub, baseline) offers the measurements."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat

GRADEBOOK_ADD = """
import sys
from nbgrader.api import Gradebook
with Gradebook(sys.argv[1], sys.argv[2]) as gb:
    for name in sys.argv[3:]:
        gb.update_or_create_student(name)
"""
ANSWER = "def square(x):\n    return x * x"
WRITTEN = "A negative number times itself is positive."


class Side:
    """One installation under test. Subclasses start and stop it and run nbgrader."""

    name = "side"
    public_url = ""
    marker = ""  # "KEY=value" found in the environment of every process of the installation

    def __init__(self, courses: dict[str, dict[str, list[str]]], people: list[str]):
        self.courses = courses
        self.people = people
        self.problems: list[str] = []  # went wrong without stopping the measurements

    def start(self, timeout: float) -> float:
        """Start everything; seconds until the hub and every course's service are healthy."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError

    def hub_pid(self) -> int:
        raise NotImplementedError

    def logs(self) -> str:
        return ""

    def hub_log(self) -> str:
        """The hub's whole log (for excerpts about failures)."""
        return ""

    def hub_log_about(self, names: list[str], limit: int = 40) -> list[str]:
        """Warnings and errors of the hub's log that name one of `names`."""
        wanted = set(names)
        out = []
        for line in self.hub_log().splitlines():
            if (line.startswith(("[W", "[E", "[C")) or "Traceback" in line) and any(
                n in line for n in wanted
            ):
                out.append(line[:400])
        return out[-limit:]

    def course_root(self, course: str) -> Path:
        raise NotImplementedError

    def submission_owner(self, course: str) -> tuple[int, int]:
        raise NotImplementedError

    def release_sample(self, course: str, assignment: str) -> None:
        raise NotImplementedError

    def autograde_cli(self, course: str, assignment: str, timeout: float) -> float:
        raise NotImplementedError

    def place_submissions(self, course: str, assignment: str, students: list[str]) -> None:
        """Put one answered copy of the released notebook into submitted/STUDENT/ASSIGNMENT/
        for each student, owned by the course's grader account (as collect leaves them)."""
        root = self.course_root(course)
        released = root / "release" / assignment / f"{assignment}.ipynb"
        nb = nbformat.read(str(released), as_version=4)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id == "square":
                cell.source = ANSWER
            elif grade_id == "why":
                cell.source = WRITTEN
        uid, gid = self.submission_owner(course)
        submitted = root / "submitted"
        for student in students:
            folder = submitted / student / assignment
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            nbformat.write(nb, str(folder / f"{assignment}.ipynb"))
            (folder / "timestamp.txt").write_text("2025-01-01 12:00:00.000000 UTC")
            for path in (submitted, submitted / student, folder, *folder.iterdir()):
                os.chown(path, uid, gid)

    def describe(self) -> dict:
        return {"name": self.name, "url": self.public_url, "courses": list(self.courses)}

    def __repr__(self) -> str:
        return json.dumps(self.describe())
