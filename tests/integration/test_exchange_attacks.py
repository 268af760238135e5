"""Collect, feedback and the gradebook trust nothing inside a student's folder.

One course, four students. Each attack runs in a student's own kernel (their
own uid, through the hub), against the real nbgrader commands with coursehub's
exchange: links, hard links, pipes, sizes and names in a submission; a late
submission dressed as an on-time one; a submission changed after the due date;
feedback the grader account plants for a student. Each attack must fail, and
the honest submissions beside it must still be collected.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from term import answer, fetch, ok, submit

from conftest import wait_for
from hubclient import Person
from kernel import Kernel

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("attacks run under the students' own uids: needs root", allow_module_level=True)

COURSE = "exch"
STUDENTS = ["sam", "tom", "uma", "val"]
SITE = {
    "org": "Exchange University",
    "auth": {"type": "first-use"},
    "courses": [{"id": COURSE, "title": "Exchange", "instructors": ["ines"], "students": STUDENTS}],
}
RIGHT = "def square(x):\n    return x * x"

# Helpers every student's kernel gets: make a submission folder as nbgrader submit does.
PRELUDE = r"""
import base64, datetime, json, os, socket, stat
P = json.loads(PATHS)
ME = os.environ["USER"]
INBOUND = os.path.join(P["exchange"], P["course"], "inbound", ME)

def stamp(when=None):
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"

def submission(assignment, files, claimed=None, name=None):
    claimed = claimed or stamp()
    rand = base64.urlsafe_b64encode(os.urandom(6)).decode()
    name = name or f"{ME}+{assignment}+{claimed}+{rand}"
    path = os.path.join(INBOUND, name)
    os.mkdir(path, 0o755)
    files = {**files, "timestamp.txt": claimed, "submission_secret.txt": os.urandom(8).hex()}
    for rel, text in files.items():
        with open(os.path.join(path, rel), "w") as f:
            f.write(text)
    return path

def attempt(fn):
    try:
        fn()
        return "ALLOWED"
    except OSError as e:
        return type(e).__name__
"""


class GraderKernel(Kernel):
    """A kernel in the course's grader notebook, as an instructor opens one: it runs
    as the grader account (which instructors, and student code during autograde, reach)."""

    def __init__(self, person: Person, course: str):
        self.person, self.course = person, course
        r = person.service("POST", course, "api/kernels", json={"name": "python3"})
        assert r.status_code == 201, (r.status_code, r.text[:300])
        self.id = r.json()["id"]
        import uuid

        import websocket

        self.session = uuid.uuid4().hex
        base = person.url(f"services/{course}/api/kernels/{self.id}/channels")
        ws_url = base.replace("http://", "ws://", 1) + f"?session_id={self.session}"
        cookies = "; ".join(f"{c.name}={c.value}" for c in person.s.cookies)
        self.ws = websocket.create_connection(ws_url, header=[f"Cookie: {cookies}"], timeout=60)

    def close(self) -> None:
        self.ws.close()
        self.person.service("DELETE", self.course, f"api/kernels/{self.id}")


@pytest.fixture(scope="module")
def paths(inst) -> dict:
    plan = inst.plan()
    return {
        "exchange": plan["paths"]["exchange"],
        "course": COURSE,
        "course_root": plan["courses"][COURSE]["course_root"],
        "homes": str(Path(plan["paths"]["exchange"]).parent / "homes"),
    }


@pytest.fixture(scope="module")
def people(inst):
    if hasattr(inst, "give_password"):  # an instructor's first password comes through a link
        inst.give_password("ines", "ines-password-9")
    logged = {}
    for name in ["ines", *STUDENTS]:
        p = Person(inst.url, name)
        p.login(f"{name}-password-9")
        assert p.logged_in()
        logged[name] = p
    for name in STUDENTS:  # ask for every server first, then wait: they start in parallel
        r = logged[name].hub_api("POST", f"users/{name}/server")
        assert r.status_code in (201, 202, 400), (r.status_code, r.text)  # 400: running
    for name in STUDENTS:
        logged[name].start_server()
    assert logged["ines"].visit(f"services/{COURSE}/lab").status_code == 200
    return logged


@pytest.fixture(scope="module")
def kernels(people, paths):
    ks = {}
    try:
        for name in STUDENTS:
            ks[name] = Kernel(people[name])
            ks[name].run(f"PATHS = {json.dumps(json.dumps(paths))}\n" + PRELUDE)
        yield ks
    finally:
        for k in ks.values():
            k.close()


@pytest.fixture(scope="module")
def grader(people):
    """A kernel of the grader account, opened by the instructor in the grader notebook."""
    k = GraderKernel(people["ines"], COURSE)
    try:
        yield k
    finally:
        k.close()


def run(kernel: Kernel, code: str, timeout: float = 60):
    """Run `code` in a kernel; the value of its last line `print(json.dumps(...))`."""
    out = kernel.run(code, timeout=timeout).strip().splitlines()
    return json.loads(out[-1]) if out else None


def collect_api(people, assignment: str) -> str:
    """Collect through the formgrader, as the instructor's Collect button does; its log."""
    body = ok(
        people["ines"].service("POST", COURSE, f"formgrader/api/assignment/{assignment}/collect")
    )
    return body.get("log", "")


def collect_cli(inst, assignment: str, *extra: str):
    """`nbgrader collect --update` as the grader account, bounded in time (a FIFO must not hang it)."""
    return inst.cli(
        "nbgrader",
        COURSE,
        "--",
        "collect",
        "--update",
        assignment,
        *extra,
        timeout=120,
        check=False,
    )


def collected(paths, student: str, assignment: str) -> Path:
    return Path(paths["course_root"]) / "submitted" / student / assignment


def names_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.is_dir() else set()


def no_links(folder: Path) -> None:
    links = [str(p) for p in folder.rglob("*") if p.is_symlink()]
    assert links == [], f"links were collected: {links}"


def honest(kernels, assignment: str, *who: str) -> None:
    for name in who:
        run(
            kernels[name], f"submission({assignment!r}, {{'answer.txt': ME + ' honest'}}); print(1)"
        )


def assert_honest(paths, assignment: str, *who: str) -> None:
    for name in who:
        got = collected(paths, name, assignment) / "answer.txt"
        assert got.is_file(), f"{name}'s honest submission of {assignment} was not collected"
        assert got.read_text() == f"{name} honest"


# -- links ------------------------------------------------------------------------------


def test_symlinks_are_never_followed(inst, people, kernels, paths):
    """A real submission, then links in it (to the other student's whole inbound, the
    gradebook, the solution) and a submission folder that is itself a link to the
    grader's source: none is followed, the real answers are collected."""
    inst.cli("sample", COURSE, "--name", "hw1")
    sam, tom = people["sam"], people["tom"]
    for p, text in [(sam, RIGHT), (tom, "def square(x):\n    return 4")]:
        fetch(p, COURSE, "hw1")
        answer(p, COURSE, "hw1", text, f"{p.name}'s words")
        submit(p, COURSE, "hw1")
    root = paths["course_root"]
    planted = run(
        kernels["sam"],
        f"""
mine = sorted(n for n in os.listdir(INBOUND) if n.startswith("sam+hw1+"))[-1]
sub = os.path.join(INBOUND, mine)
os.symlink("../../tom", os.path.join(sub, "tom-inbound"))
os.symlink({root + "/gradebook.db"!r}, os.path.join(sub, "gradebook.db"))
os.symlink({root + "/source/hw1/hw1.ipynb"!r}, os.path.join(sub, "solution.ipynb"))
os.mkdir(os.path.join(sub, "more"))
os.symlink("/etc/passwd", os.path.join(sub, "more", "passwd"))
# newest of all: the grader's own source folder, dressed as a submission
os.symlink({root + "/source/hw1"!r}, os.path.join(INBOUND, "sam+hw1+2030-01-01 00:00:00.000000 UTC+zz"))
print(json.dumps(mine))
""",
    )
    assert planted.startswith("sam+hw1+")
    proc = collect_cli(inst, "hw1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    got = collected(paths, "sam", "hw1")
    assert names_in(got) <= {"hw1.ipynb", "timestamp.txt", "submission_secret.txt", "more"}, out
    no_links(got)
    nb = (got / "hw1.ipynb").read_text()
    assert "return x * x" in nb and "BEGIN SOLUTION" not in nb  # sam's answer, not the source
    assert "return 4" in (collected(paths, "tom", "hw1") / "hw1.ipynb").read_text()
    for name in ["tom-inbound", "gradebook.db", "solution.ipynb", "passwd", "2030-01-01"]:
        assert name in out, f"the log does not say why {name} was left out:\n{out}"


def test_hard_links_to_files_of_others_are_not_collected(people, kernels, paths):
    """tom leaves a file anyone may write in /tmp; sam links it, a released file and a
    file of his own home into his submission: no hard link is collected."""
    shared = f"/tmp/coursehub-exch-{os.getpid()}-tom.txt"
    run(
        kernels["tom"],
        f"open({shared!r}, 'w').write('tom wrote this'); os.chmod({shared!r}, 0o666); print(1)",
    )
    try:
        released = f"{paths['exchange']}/{COURSE}/outbound/hw1/hw1.ipynb"
        tried = run(
            kernels["sam"],
            f"""
sub = submission("hardlink", {{"answer.txt": "sam honest"}})
home_file = os.path.expanduser("~/kept.txt")
open(home_file, "w").write("sam's own, linked twice")
print(json.dumps({{
    "tom's file": attempt(lambda: os.link({shared!r}, os.path.join(sub, "from-tom.txt"))),
    "released": attempt(lambda: os.link({released!r}, os.path.join(sub, "released.ipynb"))),
    "own": attempt(lambda: os.link(home_file, os.path.join(sub, "linked.txt"))),
}}))
""",
        )
        # the kernel refuses links to files sam cannot write (fs.protected_hardlinks);
        # a file sam may write but does not own it lets through, and so collect must refuse
        assert tried["tom's file"] == "ALLOWED" and tried["own"] == "ALLOWED"
        honest(kernels, "hardlink", "tom")
        log = collect_api(people, "hardlink")
        got = collected(paths, "sam", "hardlink")
        assert names_in(got) == {"answer.txt", "timestamp.txt", "submission_secret.txt"}, log
        assert_honest(paths, "hardlink", "sam", "tom")
        assert "from-tom.txt" in log and "linked.txt" in log, log
    finally:
        os.unlink(shared)


def test_pipes_and_sockets_neither_hang_nor_stop_collect(inst, kernels, paths):
    run(
        kernels["sam"],
        """
sub = submission("fifo", {"answer.txt": "sam honest"})
os.mkfifo(os.path.join(sub, "pipe"))
here = os.getcwd()
os.chdir(sub)  # a socket's path must be short: bind it by its name
s = socket.socket(socket.AF_UNIX)
s.bind("sock")
s.close()
os.chdir(here)
print(1)
""",
    )
    honest(kernels, "fifo", "tom", "uma")
    started = time.monotonic()
    proc = collect_cli(inst, "fifo")
    out = proc.stdout + proc.stderr
    assert time.monotonic() - started < 60
    assert proc.returncode == 0, out
    assert names_in(collected(paths, "sam", "fifo")) == {
        "answer.txt",
        "timestamp.txt",
        "submission_secret.txt",
    }
    assert_honest(paths, "fifo", "sam", "tom", "uma")
    assert "pipe" in out and "sock" in out, out


# -- sizes ------------------------------------------------------------------------------


def test_sizes_and_counts_are_bounded(people, kernels, paths):
    """A 10 GiB sparse file is left out; a submission of 120 MiB in all, or of 1500
    files, is not collected and the student's earlier one is; the others collect."""
    run(
        kernels["sam"],
        """
sub = submission("big", {"answer.txt": "sam honest"})
with open(os.path.join(sub, "data.bin"), "wb") as f:
    f.truncate(10 * 2**30)
submission("bytes", {"answer.txt": "sam honest"})
sub = submission("bytes", {"answer.txt": "sam: too much"})
for i in range(2):
    with open(os.path.join(sub, f"part{i}.bin"), "wb") as f:
        f.truncate(60 * 2**20)
submission("many", {"answer.txt": "sam honest"})
sub = submission("many", {"answer.txt": "sam: too many"})
os.mkdir(os.path.join(sub, "lots"))
for i in range(1500):
    open(os.path.join(sub, "lots", str(i)), "w").close()
print(1)
""",
    )
    for assignment in ["big", "bytes", "many"]:
        honest(kernels, assignment, "tom")
        log = collect_api(people, assignment)
        assert_honest(paths, assignment, "sam", "tom")
        assert names_in(collected(paths, "sam", assignment)) == {
            "answer.txt",
            "timestamp.txt",
            "submission_secret.txt",
        }, log
        assert "sam" in log, log


# -- names ------------------------------------------------------------------------------


def test_a_submission_is_filed_only_under_the_student_who_owns_it(people, kernels, paths):
    honest(kernels, "impostor", "tom")
    tried = run(
        kernels["sam"],
        """
submission("impostor", {"answer.txt": "sam honest"})
later = stamp(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5))
tom_inbound = os.path.join(os.path.dirname(INBOUND), "tom")
r = {
    "into tom's inbound": attempt(lambda: os.mkdir(os.path.join(tom_inbound, "tom+impostor+" + later + "+x"))),
}
# in his own folder: named as tom's, and as a student 'sam+x' that does not exist
submission("impostor", {"answer.txt": "sam as tom"}, name="tom+impostor+" + later + "+x")
submission("impostor", {"answer.txt": "sam as sam+x"}, name="sam+x+impostor+" + later + "+y")
print(json.dumps(r))
""",
    )
    assert tried == {"into tom's inbound": "PermissionError"}
    log = collect_api(people, "impostor")
    assert_honest(paths, "impostor", "sam", "tom")
    submitted = Path(paths["course_root"]) / "submitted"
    assert sorted(p.name for p in submitted.iterdir() if (p / "impostor").exists()) == [
        "sam",
        "tom",
    ]
    assert "tom+impostor+" in log and "sam+x+impostor+" in log, log


def test_malformed_entries_are_skipped_and_the_course_still_collects(people, kernels, paths):
    run(
        kernels["sam"],
        r"""
submission("odd", {"answer.txt": "sam honest"})
now = stamp()
submission("odd", {"answer.txt": "x"}, name="sam+odd+not-a-time+x")
submission("odd", {"answer.txt": "x"}, name="sam+odd+2026-13-45 99:99:99.000000 UTC+x")
submission("odd", {"answer.txt": "x"}, name="sam+odd+" + now + "+a+b")
submission("odd", {"answer.txt": "x"}, name="sam+odd+" + now + "+new\nline")
os.mkdir(os.fsencode(INBOUND) + b"/sam+odd+" + now.encode() + b"+\xff\xfe")
open(os.path.join(INBOUND, "sam+odd+" + now + "+file"), "w").write("not a folder")
os.mkfifo(os.path.join(INBOUND, "sam+odd+" + now + "+pipe"))
os.symlink("/nonexistent", os.path.join(INBOUND, "sam+odd+" + now + "+dangling"))
print(1)
""",
    )
    honest(kernels, "odd", "tom", "uma")
    log = collect_api(people, "odd")
    assert_honest(paths, "odd", "sam", "tom", "uma")
    for what in ["not-a-time", "2026-13-45", "+a+b", "new\\nline", "+file", "+pipe", "+dangling"]:
        assert what in log, f"the formgrader's log does not say why {what!r} was skipped:\n{log}"


# -- time -------------------------------------------------------------------------------


def _collected_at(paths, student: str, assignment: str) -> dt.datetime:
    from nbgrader.utils import parse_utc

    return parse_utc((collected(paths, student, assignment) / "timestamp.txt").read_text().strip())


def test_a_late_or_changed_submission_never_counts_as_on_time(inst, people, kernels, grader, paths):
    """tom, uma and val submit on time; coursehub's scan (as the grader) sees tom's and
    uma's. After the due date, sam makes a submission that says it is an hour early (name,
    timestamp.txt, mtimes) and uma rewrites hers in place. Later, after a collect, val
    rewrites hers in place, then renames it to another on-time name."""
    tolerance = 2  # seconds; the default is larger, the test does not wait for it
    honest(kernels, "late", "tom", "uma")
    scan = run(
        grader,
        f"""
import json, subprocess, sys
r = subprocess.run([sys.executable, "-m", "coursehub.exchange.receipts", "--settle", "0",
    "--inbound", {paths["exchange"] + "/" + COURSE + "/inbound"!r},
    "--receipts", {paths["course_root"] + "/submission_receipts.sqlite"!r}],
    capture_output=True, text=True)
print(json.dumps([r.returncode, r.stdout + r.stderr]))
""",
    )
    # 2 new, or fewer when the supervisor's own scan (every 15 s) saw them first
    assert scan[0] == 0 and scan[1] in {f"{n} new receipt(s)\n" for n in (0, 1, 2)}, scan
    honest(kernels, "late", "val")
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).replace(microsecond=0, tzinfo=None)
    inst.cli("nbgrader", COURSE, "--", "db", "assignment", "add", "late", f"--duedate={due} UTC")
    while dt.datetime.now(dt.UTC).replace(tzinfo=None) < due + dt.timedelta(seconds=tolerance + 1):
        time.sleep(0.2)
    early = f"datetime.datetime({due.year}, {due.month}, {due.day}, {due.hour}, {due.minute}, {due.second}, tzinfo=datetime.timezone.utc) - datetime.timedelta(hours=1)"
    backdate = r"""
def backdate(path, when):
    t = when.timestamp()
    for folder, _dirs, files in os.walk(path):
        for n in files:
            os.utime(os.path.join(folder, n), (t, t))
        os.utime(folder, (t, t))
def mine(assignment):
    return os.path.join(INBOUND, sorted(n for n in os.listdir(INBOUND) if f"+{assignment}+" in n)[-1])
"""
    for k in kernels.values():
        run(k, backdate + "print(1)")
    run(
        kernels["sam"],
        f"sub = submission('late', {{'answer.txt': 'sam late'}}, claimed=stamp({early})); backdate(sub, {early}); print(1)",
    )
    rewrite = "sub = mine('late'); open(os.path.join(sub, 'answer.txt'), 'w').write(ME + ' changed'); backdate(sub, {early}); print(1)"
    run(kernels["uma"], rewrite.format(early=early))
    tol = f"--CourseCollect.clock_tolerance={tolerance}"

    proc = collect_cli(inst, "late", tol)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for s in ["tom", "val"]:
        assert _collected_at(paths, s, "late") <= due, out
        assert (collected(paths, s, "late") / "answer.txt").read_text() == f"{s} honest"
    # sam says an hour early; the kernel says after the due date: late
    assert _collected_at(paths, "sam", "late") > due, out
    # uma's change after the due date of what the scan saw: not collected
    assert not collected(paths, "uma", "late").exists(), out
    assert "sam's submission" in out and "uma's submission" in out, out
    # the instructor sees the same in the formgrader
    subs = ok(people["ines"].service("GET", COURSE, "formgrader/api/submissions/late"))
    seen = {s["student"]: dt.datetime.fromisoformat(s["timestamp"]) for s in subs if s["submitted"]}
    assert seen.keys() == {"tom", "val", "sam"}, seen
    assert seen["tom"] <= due and seen["val"] <= due and seen["sam"] > due

    # val, after the collect: rewrites her on-time submission in place
    run(kernels["val"], rewrite.format(early=early))
    proc = collect_cli(inst, "late", tol)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert (collected(paths, "val", "late") / "answer.txt").read_text() == "val honest", out
    assert _collected_at(paths, "val", "late") <= due
    assert "val" in out, out
    # then renames it to a newer on-time name: a new folder, after the due date
    run(
        kernels["val"],
        f"old = mine('late'); os.rename(old, os.path.join(INBOUND, 'val+late+' + stamp({early} + datetime.timedelta(minutes=30)) + '+r')); print(1)",
    )
    proc = collect_cli(inst, "late", tol)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (collected(paths, "val", "late") / "answer.txt").read_text()
    assert text == "val honest" or _collected_at(paths, "val", "late") > due, text


# -- feedback ---------------------------------------------------------------------------


def _fetch_feedback(person: Person) -> dict:
    r = person.server(
        "POST",
        "assignments/fetch_feedback",
        data={"course_id": COURSE, "assignment_id": "fb"},
        timeout=60,
    )
    assert r.status_code == 200, r.text[:300]
    return r.json()


def _fetched(paths, student: str) -> list[Path]:
    return sorted((Path(paths["homes"]) / student / COURSE / "fb" / "feedback").rglob("*.html"))


def test_feedback_folders_trust_neither_side(inst, people, kernels, grader, paths):
    """sam cannot write into his own feedback folder, where release_feedback writes;
    what the grader account plants there (a pipe, a link to sam's private file, a file
    over the bound) is not fetched into sam's home, quickly; real feedback still is."""
    ines, sam = people["ines"], people["sam"]
    inst.cli("sample", COURSE, "--name", "fb")
    fetch(sam, COURSE, "fb")
    answer(sam, COURSE, "fb", RIGHT, "sam's words")
    submit(sam, COURSE, "fb")
    collect_api(people, "fb")
    ok(ines.service("POST", COURSE, "formgrader/api/submission/fb/sam/autograde"))
    ok(ines.service("POST", COURSE, "formgrader/api/assignment/fb/generate_feedback"))
    ok(ines.service("POST", COURSE, "formgrader/api/assignment/fb/release_feedback"))
    fb = f"{paths['exchange']}/.feedback/sam/{COURSE}"
    tried = run(
        kernels["sam"],
        f"""
fb = {fb!r}
print(json.dumps({{
    "write feedback": attempt(lambda: open(fb + "/feedback/x.html", "w").write("x")),
    "link in feedback": attempt(lambda: os.symlink("/etc/passwd", fb + "/feedback/y.html")),
    "replace feedback folder": attempt(lambda: os.rename(fb + "/feedback", fb + "/old")),
    "link in course folder": attempt(lambda: os.symlink("/tmp", fb + "/z")),
}}))
""",
    )
    assert set(tried.values()) == {"PermissionError"}, tried

    private = f"{paths['homes']}/sam/private.txt"
    run(kernels["sam"], f"open({private!r}, 'w').write('sam private'); print(1)")
    released = run(
        grader,
        f"import json, os\nprint(json.dumps(sorted(n for n in os.listdir({fb + '/feedback'!r}) if n.endswith('.html'))))",
    )
    assert len(released) == 1
    target = f"{fb}/feedback/{released[0]}"
    plants = [
        f"os.mkfifo({target!r})",
        f"os.symlink({private!r}, {target!r})",
        f"open({target!r}, 'wb').truncate(150 * 2**20)",  # over the 100 MiB bound, sparse
    ]
    for plant in plants:
        run(grader, f"import os\nos.unlink({target!r})\n{plant}\nprint(1)")
        started = time.monotonic()
        _fetch_feedback(sam)  # (the answer is the assignment list, whatever happened)
        assert time.monotonic() - started < 30
        for html in _fetched(paths, "sam"):
            assert not html.is_symlink(), plant
            assert html.stat().st_size < 100 * 2**20, plant
            assert "sam private" not in html.read_text(), plant
    # the grader's honest release replaces what was planted, and sam fetches it
    ok(ines.service("POST", COURSE, "formgrader/api/assignment/fb/release_feedback"))
    _fetch_feedback(sam)
    fetched = _fetched(paths, "sam")
    assert len(fetched) == 1 and "Score" in fetched[0].read_text()


def test_the_supervisor_notes_each_new_submission_by_itself(inst, kernels, paths):
    """No command: within seconds of a submission settling, coursehub's supervisor has a
    receipt of it (as the grader, in a file no student can reach)."""
    import sqlite3

    honest(kernels, "receipted", "tom")
    receipts = Path(paths["course_root"], "submission_receipts.sqlite")

    def noted() -> bool:
        if not receipts.exists():
            return False
        con = sqlite3.connect(f"file:{receipts}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT * FROM sqlite_master WHERE type='table'").fetchall()
            tables = [r[1] for r in rows]
            return any(
                "tom+receipted+" in str(row)
                for t in tables
                for row in con.execute(f"SELECT * FROM {t}")  # noqa: S608 - our own tables
            )
        finally:
            con.close()

    wait_for(noted, 60, "the supervisor's receipt of tom's submission")
    assert receipts.stat().st_mode & 0o077 == 0
    assert receipts.stat().st_uid == inst.plan()["courses"][COURSE]["account"]["uid"]
