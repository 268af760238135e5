"""Only autograded submissions are read for the LMS: one mid-autograde is not sent as 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from coursehub.lti.grades import _READ_ALL_SCORES, _READ_SCORES


def read(script: str, db: Path, *args: str):
    out = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{db}", "algebra", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# nbgrader's own add_submission trips SQLAlchemy's autoflush warnings; not ours to fix
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
def test_a_submission_counts_once_its_code_cells_are_scored(tmp_path: Path, monkeypatch):
    # a new gradebook runs nbgrader's 'alembic' from the environment's bin folder
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    db = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{db}", "algebra") as gb:
        gb.add_assignment("ps1")
        gb.add_notebook("square", "ps1")
        gb.add_grade_cell("tests", "square", "ps1", max_score=2, cell_type="code")
        gb.add_grade_cell("essay", "square", "ps1", max_score=1, cell_type="markdown")
        gb.add_student("sam")
        gb.add_submission("ps1", "sam")  # what autograde writes before it runs anything
    assert read(_READ_ALL_SCORES, db) == {"ps1": {}}
    assert read(_READ_SCORES, db, "ps1") == {}

    with Gradebook(f"sqlite:///{db}", "algebra") as gb:
        gb.find_grade("tests", "square", "ps1", "sam").auto_score = 2
        gb.db.commit()
    # the written answer waits for a person: the autograded part goes now
    assert read(_READ_ALL_SCORES, db) == {"ps1": {"sam": [2.0, 3.0]}}
    assert read(_READ_SCORES, db, "ps1") == {"sam": [2.0, 3.0]}
