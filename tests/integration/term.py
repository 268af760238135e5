"""What instructors and students do all term, through the hub, as the Lab UI does it."""

from __future__ import annotations

import json

import nbformat

from coursehub.sample import sample_notebook
from hubclient import Person


def ok(r) -> dict:
    """A formgrader or assignment-list answer that must have succeeded."""
    assert r.status_code == 200, (r.status_code, r.text[:500])
    body = r.json()
    if isinstance(body, dict) and "success" in body:
        assert body["success"], body.get("error") or body.get("value") or body
    return body


def create_and_release(instructor: Person, course: str, assignment: str) -> None:
    """In the course's grader service: write the source, create, generate, release."""
    assert instructor.visit(f"services/{course}/lab").status_code == 200
    for folder in (f"{course}/source", f"{course}/source/{assignment}"):
        r = instructor.service("PUT", course, f"api/contents/{folder}", json={"type": "directory"})
        assert r.status_code in (200, 201), r.text
    nb = json.loads(nbformat.writes(sample_notebook()))
    r = instructor.service(
        "PUT",
        course,
        f"api/contents/{course}/source/{assignment}/{assignment}.ipynb",
        json={"type": "notebook", "content": nb},
    )
    assert r.status_code in (200, 201), r.text
    ok(instructor.service("PUT", course, f"formgrader/api/assignment/{assignment}", json={}))
    ok(instructor.service("POST", course, f"formgrader/api/assignment/{assignment}/assign"))
    ok(instructor.service("POST", course, f"formgrader/api/assignment/{assignment}/release"))


def answer(student: Person, course: str, assignment: str, code: str, text: str) -> None:
    """Open the fetched notebook, write the answers, save it."""
    path = f"api/contents/{course}/{assignment}/{assignment}.ipynb"
    r = student.server("GET", path)
    assert r.status_code == 200, r.text[:300]
    nb = r.json()["content"]
    answered = set()
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id == "square":
            cell["source"] = code
        elif grade_id == "why":
            cell["source"] = text
        else:
            continue
        answered.add(grade_id)
    assert answered == {"square", "why"}, f"answer cells found in {path}: {answered}"
    r = student.server("PUT", path, json={"type": "notebook", "content": nb})
    assert r.status_code == 200, r.text[:300]


def fetch(student: Person, course: str, assignment: str) -> dict:
    return ok(
        student.server(
            "POST", "assignments/fetch", data={"course_id": course, "assignment_id": assignment}
        )
    )


def validate(student: Person, course: str, assignment: str) -> dict:
    return ok(
        student.server(
            "POST",
            "assignments/validate",
            data={"path": f"{course}/{assignment}/{assignment}.ipynb"},
        )
    )


def submit(student: Person, course: str, assignment: str) -> dict:
    return ok(
        student.server(
            "POST", "assignments/submit", data={"course_id": course, "assignment_id": assignment}
        )
    )


def fetch_feedback(student: Person, course: str, assignment: str) -> dict:
    return ok(
        student.server(
            "POST",
            "assignments/fetch_feedback",
            data={"course_id": course, "assignment_id": assignment},
        )
    )


def release_feedback(instructor: Person, course: str, assignment: str) -> None:
    """Generate and release the feedback of every graded submission, in the formgrader."""
    for step in ("generate_feedback", "release_feedback"):
        ok(instructor.service("POST", course, f"formgrader/api/assignment/{assignment}/{step}"))


def feedback_shows_score(student: Person, course: str, assignment: str, score: str) -> bool:
    """Fetch one's feedback from one's own server: does its page show this score ("3")?"""
    fetch_feedback(student, course, assignment)
    folder = student.server("GET", f"api/contents/{course}/{assignment}/feedback").json()
    assert len(folder["content"]) == 1, folder
    page = f"api/contents/{folder['content'][0]['path']}/{assignment}.html"
    html = student.server("GET", page).json()["content"]
    return f"Score: {score}" in html.replace(".0", "")


def grade_manually(instructor: Person, course: str, assignment: str, student: str, score: float):
    """Give the written answer of one student its score, in the formgrader."""
    subs = ok(
        instructor.service(
            "GET", course, f"formgrader/api/submitted_notebooks/{assignment}/{assignment}"
        )
    )
    sub = next(s for s in subs if s["student"] == student)
    grades = ok(
        instructor.service(
            "GET", course, "formgrader/api/grades", params={"submission_id": sub["id"]}
        )
    )
    why = next(g for g in grades if g["name"] == "why")
    ok(
        instructor.service(
            "PUT", course, f"formgrader/api/grade/{why['id']}", json={**why, "manual_score": score}
        )
    )


def scores(instructor: Person, course: str, assignment: str) -> dict[str, float]:
    subs = ok(instructor.service("GET", course, f"formgrader/api/submissions/{assignment}"))
    return {s["student"]: s["score"] for s in subs if s["submitted"]}
