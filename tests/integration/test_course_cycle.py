"""A whole term through the running hub, for two courses, and a private exchange.

One instructor (ines) teaches algebra and biology; sam takes both, tom only
biology. Algebra's assignment is made and graded in the formgrader; biology's
with `coursehub nbgrader`. Then, as sam, every way into another student's
work is tried, and each must fail while the honest path keeps working.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from exchange_privacy import attack, attack_targets
from term import (
    answer,
    create_and_release,
    feedback_shows_score,
    fetch,
    grade_manually,
    ok,
    release_feedback,
    scores,
    submit,
    validate,
)

from hubclient import Person

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip(
        "the private exchange rests on one uid per person: needs root", allow_module_level=True
    )

SITE = {
    "org": "Term University",
    "auth": {"type": "first-use"},
    "people": ["ines", "sam", "tom"],
    "courses": [
        {"id": "algebra", "title": "Algebra", "instructors": ["ines"], "students": ["sam"]},
        {"id": "biology", "title": "Biology", "instructors": ["ines"], "students": ["sam", "tom"]},
    ],
}
RIGHT = "def square(x):\n    return x * x"
WRONG = "def square(x):\n    return x + x"


@pytest.fixture(scope="module")
def people(inst):
    inst.give_password("ines", "ines-password-9")  # an instructor: only through a link
    logged = {}
    for name in ["ines", "sam", "tom"]:
        p = Person(inst.url, name)
        p.login(f"{name}-password-9")
        assert p.logged_in()
        logged[name] = p
    for name in ["sam", "tom"]:
        logged[name].start_server()
    return logged


@pytest.fixture(scope="module")
def released(inst, people):
    # algebra: through the formgrader of its grader service
    create_and_release(people["ines"], "algebra", "hw1")
    # biology: through coursehub nbgrader, as the course's grader account
    inst.cli("sample", "biology", "--name", "hw1", "--no-release")
    inst.cli("nbgrader", "biology", "--", "release_assignment", "hw1")
    return True


@pytest.fixture(scope="module")
def submitted(people, released):
    sam, tom = people["sam"], people["tom"]
    for course in ["algebra", "biology"]:
        fetch(sam, course, "hw1")
    fetch(tom, "biology", "hw1")
    # sam first submits a wrong answer to algebra, then corrects it and submits again
    answer(sam, "algebra", "hw1", WRONG, "no idea")
    submit(sam, "algebra", "hw1")
    answer(sam, "algebra", "hw1", RIGHT, "A negative times a negative is positive.")
    submit(sam, "algebra", "hw1")
    answer(sam, "biology", "hw1", RIGHT, "minus times minus")
    submit(sam, "biology", "hw1")
    answer(tom, "biology", "hw1", WRONG, "?")
    submit(tom, "biology", "hw1")
    return True


def test_students_see_what_was_released(people, released):
    for course in ["algebra", "biology"]:
        listed = ok(people["sam"].server("GET", "assignments", params={"course_id": course}))
        assert [(a["assignment_id"], a["status"]) for a in listed["value"]] == [("hw1", "released")]
    assert ok(people["tom"].server("GET", "courses"))["value"] == ["biology"]


def test_validate_tells_right_from_wrong(people, submitted):
    good = validate(people["sam"], "biology", "hw1")["value"]
    assert "failed" not in json.dumps(good).lower()
    bad = validate(people["tom"], "biology", "hw1")["value"]
    assert "failed" in json.dumps(bad).lower()


def test_submissions_and_resubmission(inst, submitted):
    listed = inst.cli("nbgrader", "algebra", "--", "list", "--inbound")
    lines = [ln for ln in (listed.stdout + listed.stderr).splitlines() if "algebra sam hw1" in ln]
    assert len(lines) == 2  # both of sam's submissions are kept


def test_grading_feedback_and_grades(inst, people, submitted):
    ines, sam, tom = people["ines"], people["sam"], people["tom"]
    # algebra in the formgrader: collect, autograde, grade the written answer
    ok(ines.service("POST", "algebra", "formgrader/api/assignment/hw1/collect"))
    ok(ines.service("POST", "algebra", "formgrader/api/submission/hw1/sam/autograde"))
    # biology with coursehub nbgrader, then the manual part in the formgrader
    inst.cli("nbgrader", "biology", "--", "collect", "hw1")
    inst.cli("nbgrader", "biology", "--", "autograde", "hw1")
    assert scores(ines, "algebra", "hw1") == {"sam": 2.0}  # the resubmission counts
    assert scores(ines, "biology", "hw1") == {"sam": 2.0, "tom": 0.0}
    grade_manually(ines, "algebra", "hw1", "sam", 1)
    grade_manually(ines, "biology", "hw1", "sam", 1)
    grade_manually(ines, "biology", "hw1", "tom", 0)
    for course in ["algebra", "biology"]:
        release_feedback(ines, course, "hw1")
    # students fetch their feedback, which shows their own score
    for student, course, score in [
        (sam, "algebra", "3"),
        (sam, "biology", "3"),
        (tom, "biology", "0"),
    ]:
        assert feedback_shows_score(student, course, "hw1", score), (student.name, course)
    # grades export to CSV
    for course, expected in [("algebra", {"sam": 3.0}), ("biology", {"sam": 3.0, "tom": 0.0})]:
        inst.cli("nbgrader", course, "--", "export", "--to", "grades.csv")
        root = Path(inst.plan()["courses"][course]["course_root"])
        rows = list(csv.DictReader(io.StringIO((root / "grades.csv").read_text())))
        got = {r["student_id"]: float(r["score"]) for r in rows if r["assignment"] == "hw1"}
        assert got == expected


def test_private_exchange(inst, people, submitted):
    """As sam, try every way into tom's work and the grader's; each must fail."""
    plan = inst.plan()
    ex = Path(plan["paths"]["exchange"])
    tom_inbound = ex / "biology" / "inbound" / "tom"
    tom_submission = next(tom_inbound.iterdir())
    results = attack(people["sam"], attack_targets(plan, "biology", "hw1", "tom"))
    allowed = {name: how for name, how in results.items() if how == "ALLOWED"}
    assert not allowed, f"sam got through: {allowed}"
    assert "You can only submit as yourself (sam)" in results["nbgrader submit as the other"]
    # the folders are as the Plan says, untouched
    assert (ex / "biology").is_dir() and (ex / "biology" / "outbound").is_dir()
    assert "pwned" not in (ex / "biology" / "outbound" / "hw1" / "hw1.ipynb").read_text()
    # and the honest path still works: sam submits biology again, and it is his
    before = {p.name for p in (ex / "biology" / "inbound" / "sam").iterdir()}
    submit(people["sam"], "biology", "hw1")
    after = {p.name for p in (ex / "biology" / "inbound" / "sam").iterdir()}
    new = after - before
    assert len(new) == 1 and next(iter(new)).startswith("sam+hw1+")
    assert {p.name for p in tom_inbound.iterdir()} == {tom_submission.name}
