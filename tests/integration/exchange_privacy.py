"""Every way a student could try into another student's work and the grader's, run as
the student in their own server's kernel (one machine or a Docker host's container).

`attack_targets` names the other student's and the grader's folders of one course
from plan.json; `attack` runs ATTACKS as `person` and returns what each try got:
an exception's name when it was refused, "ALLOWED" when it was not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hubclient import Person
from kernel import Kernel

ATTACKS = r"""
import os, json, shutil, subprocess
results = {}
def attempt(name, fn):
    try:
        fn()
        results[name] = "ALLOWED"
    except (PermissionError, FileNotFoundError, NotADirectoryError, OSError) as e:
        results[name] = type(e).__name__
def write(path):
    with open(path, "w") as f:
        f.write("pwned")
T = json.loads(TARGETS)
attempt("list inbound", lambda: os.listdir(T["inbound"]))
attempt("list the other's inbound", lambda: os.listdir(T["victim_inbound"]))
attempt("read the other's submission by name", lambda: open(T["victim_submission_file"]).read())
attempt("overwrite the other's submission", lambda: write(T["victim_submission_file"]))
attempt("add to the other's inbound", lambda: os.mkdir(T["victim_inbound"] + "/" + T["victim"] + "+" + T["assignment"] + "+2030-01-01 00:00:00.000000 UTC+x"))
attempt("submit as the other into inbound", lambda: os.mkdir(T["inbound"] + "/" + T["victim"] + "+" + T["assignment"] + "+2030-01-01 00:00:00.000000 UTC+x"))
attempt("read source", lambda: os.listdir(T["source"]))
attempt("read release", lambda: os.listdir(T["release"]))
attempt("read autograded", lambda: os.listdir(T["autograded"]))
attempt("read grader feedback", lambda: os.listdir(T["grader_feedback"]))
attempt("read gradebook", lambda: open(T["gradebook"], "rb").read())
attempt("list exchange feedback", lambda: os.listdir(T["feedback"]))
attempt("read the other's feedback folder", lambda: os.listdir(T["victim_feedback"]))
attempt("read the other's feedback file", lambda: open(T["victim_feedback_file"]).read())
attempt("write into outbound", lambda: write(T["outbound"] + "/evil.txt"))
attempt("change a released file", lambda: write(T["released_file"]))
attempt("rename course folder", lambda: os.rename(T["course"], T["course"] + "-x"))
attempt("delete course folder", lambda: shutil.rmtree(T["course"]))
attempt("rename outbound", lambda: os.rename(T["outbound"], T["outbound"] + "-x"))
attempt("list exchange root", lambda: os.listdir(T["root"]))
r = subprocess.run(["nbgrader", "submit", T["assignment"], "--course", T["course_id"], "--student", T["victim"]],
                   capture_output=True, text=True, cwd=os.path.expanduser("~"))
results["nbgrader submit as the other"] = "ALLOWED" if r.returncode == 0 else r.stdout + r.stderr
print(json.dumps(results))
"""

ATTEMPTS = 21  # the tries of ATTACKS


def attack_targets(plan: dict, course: str, assignment: str, victim: str) -> dict[str, str]:
    """The places of `course` an attacker must not reach: `victim`'s (who has submitted
    `assignment`), the grader's, and the exchange's own folders. Each must exist (a path
    that is not there refuses anyone), but for what grading makes."""
    ex = Path(plan["paths"]["exchange"])
    root = Path(plan["courses"][course]["course_root"])
    victim_inbound = ex / course / "inbound" / victim
    victim_submission = next(victim_inbound.iterdir())
    victim_feedback = ex / ".feedback" / victim / course / "feedback"
    feedback_files = list(victim_feedback.glob("*.html")) or [victim_feedback / "none.html"]
    targets = {
        "course_id": course,
        "assignment": assignment,
        "victim": victim,
        "root": str(ex),
        "course": str(ex / course),
        "inbound": str(ex / course / "inbound"),
        "outbound": str(ex / course / "outbound"),
        "released_file": str(ex / course / "outbound" / assignment / f"{assignment}.ipynb"),
        "feedback": str(ex / course / "feedback"),
        "victim_inbound": str(victim_inbound),
        "victim_submission_file": str(victim_submission / f"{assignment}.ipynb"),
        "victim_feedback": str(victim_feedback),
        "victim_feedback_file": str(feedback_files[0]),
        "source": str(root / "source"),
        "release": str(root / "release"),
        "autograded": str(root / "autograded"),
        "grader_feedback": str(root / "feedback"),
        "gradebook": str(root / "gradebook.db"),
    }
    made_by_grading = {"autograded", "grader_feedback", "victim_feedback_file"}
    names = {"course_id", "assignment", "victim"}
    missing = [
        t for t, p in targets.items()
        if t not in made_by_grading | names and not os.path.exists(p)
    ]  # fmt: skip
    assert missing == [], f"attack targets that do not exist: {missing}"
    return targets


def attack(person: Person, targets: dict[str, str]) -> dict[str, str]:
    k = Kernel(person)
    try:
        out = k.run(f"TARGETS = {json.dumps(json.dumps(targets))}\n" + ATTACKS, timeout=120)
    finally:
        k.close()
    results = json.loads(out.strip().splitlines()[-1])
    assert len(results) == ATTEMPTS, results
    return results
