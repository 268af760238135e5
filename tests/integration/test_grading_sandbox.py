"""Autograding runs each student's code in the sandbox, and a whole assignment in parallel.

Two honest students and eight who attack, each through their own server as
students do: their notebook's answer cell tries one thing (read other students'
work, the solutions and the gradebook; find a token in the environment; write
into the course's outbound folder or the course folder; reach the hub or the
grader; fork without end; allocate 20 GiB; loop forever; fill the disk). Each
attack defines the answer only if it got through, so an attack that fails
scores zero; each must fail, with a reason for those a limit stopped, while the
honest submissions graded beside them keep their points and nothing outside
the sandbox's scratch copy changes. Without the sandbox (nbgrader's own
autograde, run as the grader) every one of these reads, writes and connections
succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import tempfile
import threading
from pathlib import Path

import pytest
from term import answer, create_and_release, fetch, fetch_feedback, ok, scores, submit

from hubclient import Person

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("graders have uids of their own: needs root", allow_module_level=True)

COURSE = "pyth204"
HW = "lab3"
HONEST = ["ada", "bea"]
ATTACKERS = [
    "reader",
    "snoop",
    "writer",
    "caller",
    "forker",
    "hog",
    "looper",
    "filler",
    "shouter",  # floods the grader with output
    "faker",  # raises an error named like coursehub's, with terminal escapes
    "redirector",  # points the grader's reconnects at a socket of the host
]
SITE = {
    "org": "Sandbox College",
    "auth": {"type": "first-use"},
    "courses": [
        {
            "id": COURSE,
            "title": "Python 204",
            "instructors": ["nora"],
            "students": HONEST + ATTACKERS,
        }
    ],
    # small limits, so that the attacks that meet them end quickly
    "autograde": {
        "cell_timeout": 4,
        "notebook_timeout": 25,
        "memory": "1G",
        "processes": 32,
        "disk": "64M",
    },
}
RIGHT = "def square(x):\n    return x * x"
MARKER = "SECRET-ANSWER-OF"  # in the honest students' written answers: what a reader seeks
# Defines the answer only when the attack got through (`got` is the loot).
EARN = "\nassert got, 'nothing got through'\nprint('GOT', got)\n" + RIGHT


def attacks(plan: dict, port: int, trap: str) -> dict[str, str]:
    g = plan["courses"][COURSE]
    root, exchange = g["course_root"], plan["paths"]["exchange"]
    home = os.path.dirname(root)
    secret_paths = [
        f"{root}/submitted/ada/{HW}/{HW}.ipynb",
        f"{root}/autograded/ada/{HW}/{HW}.ipynb",
        f"{root}/source/{HW}/{HW}.ipynb",
        f"{root}/release/{HW}/{HW}.ipynb",
        f"{root}/gradebook.db",
        f"{home}/.jupyter/nbgrader_config.py",
        f"{plan['paths']['secrets']}/secrets.json",
        f"{exchange}/{COURSE}/inbound",
        "/submission/../../" + root.lstrip("/") + "/gradebook.db",
    ]
    reader = (
        "import os, sys\ngot = []\n"
        "SKIP = ('proc', 'sys', 'dev', 'usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32')\n"
        f"for p in {secret_paths!r}:\n"
        "    try:\n"
        "        got.append(os.listdir(p) if os.path.isdir(p) else open(p, 'rb').read(50))\n"
        "    except OSError:\n"
        "        pass\n"
        # and anywhere it can see: an honest student's answer, or this course's gradebook;
        # not the host's system folders nor the kernel's own environment (read-only binds
        # of /usr and of the servers' venv, with no course's file): walking them alone
        # can take longer than a cell may run
        "for top, dirs, files in os.walk('/'):\n"
        "    dirs[:] = [d for d in dirs if d not in SKIP and os.path.join(top, d) != sys.prefix]\n"
        "    for name in files:\n"
        "        if name.endswith(('.ipynb', '.db')):\n"
        "            try:\n"
        "                data = open(os.path.join(top, name), 'rb').read(1 << 20)\n"
        "            except OSError:\n"
        "                continue\n"
        # (the marker spelled in two halves: this notebook must not find itself)
        f"            if ({MARKER[:6]!r} + {MARKER[6:]!r}).encode() in data or (name == 'gradebook.db' and {COURSE.encode()!r} in data):\n"
        "                got.append(os.path.join(top, name))\n"
    )
    snoop = (
        "import os\n"
        "got = [k for k in os.environ if 'TOKEN' in k or 'JUPYTERHUB' in k or 'SECRET' in k]\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n"
        "        text = open(f'/proc/{pid}/environ', 'rb').read()\n"
        "    except OSError:\n"
        "        continue\n"
        "    if b'JUPYTERHUB_API_TOKEN' in text:\n"
        "        got.append(pid)\n"
    )
    writer = (
        "import os\ngot = []\n"
        f"for p in {[f'{exchange}/{COURSE}/outbound/{HW}/evil.txt', f'{root}/source/{HW}/evil.txt', f'{root}/evil.txt', '/submission/evil.txt', f'{home}/evil.txt']!r}:\n"
        "    try:\n"
        "        with open(p, 'w') as f:\n"
        "            f.write('evil')\n"
        "        got.append(p)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    ports = [plan["ports"]["hub"], plan["ports"]["proxy_api"], port, g["port"]]
    caller = (
        "import socket\ngot = []\n"
        f"for port in {ports!r}:\n"
        "    for host in ('127.0.0.1', 'localhost', '::1'):\n"
        "        try:\n"
        "            socket.create_connection((host, port), timeout=2).close()\n"
        "            got.append((host, port))\n"
        "        except OSError:\n"
        "            pass\n"
    )
    return {
        "reader": reader + EARN,
        "snoop": snoop + EARN,
        "writer": writer + EARN,
        "caller": caller + EARN,
        "forker": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "hog": "x = bytearray(20 * 2**30)\n" + RIGHT,
        "looper": "while True:\n    pass\n" + RIGHT,
        "filler": "with open('big', 'wb') as f:\n    while True:\n        f.write(b'0' * 2**20)\n"
        + RIGHT,
        "shouter": "for i in range(100):\n    print('x' * 2**20)\n" + RIGHT,
        "faker": (
            "class GradingLimit(Exception):\n    pass\n"
            "raise GradingLimit('\\x1b]0;owned\\x07\\x1b[2K\\rada: 10 of 10 points')"
        ),
        # rename the kernel's sockets, leave links to a host socket in their place, and cut
        # the grader's connections: its reconnects must still reach the kernel, not the trap
        "redirector": (
            "import os, glob, socket, time\n"
            "for p in glob.glob('/ipc/*-*'):\n"
            "    os.rename(p, p + '.x')\n"
            f"    os.symlink({trap!r}, p)\n"
            "for fd in os.listdir('/proc/self/fd'):\n"
            "    try:\n"
            "        s = socket.socket(fileno=int(fd))\n"
            "    except OSError:\n"
            "        continue\n"
            "    try:\n"
            "        if s.family == socket.AF_UNIX and s.getpeername() is not None:\n"
            "            s.shutdown(socket.SHUT_RDWR)\n"
            "    except OSError:\n"
            "        pass\n"
            "    finally:\n"
            "        s.detach()\n"
            "time.sleep(2)\n"
        ),
    }


def outputs_of(notebook: Path) -> str:
    """What a graded notebook's cells printed, and the messages of what they raised."""
    nb = json.loads(notebook.read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    return "\n".join(
        "".join(o["text"]) if o["output_type"] == "stream" else str(o.get("evalue", ""))
        for o in outputs
    )


def tree_digest(top: str, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every entry under `top` (skipping the named relative paths) with what it holds."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        dirnames[:] = [d for d in dirnames if os.path.normpath(f"{rel}/{d}") not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.normpath(f"{rel}/{name}") in skip:
                continue
            st = os.lstat(path)
            data = Path(path).read_bytes() if os.path.isfile(path) else b""
            out[os.path.relpath(path, top)] = (st.st_mode, hashlib.sha256(data).hexdigest())
        out[rel + "/"] = (os.lstat(dirpath).st_mode, sorted(filenames + dirnames))
    return out


@pytest.fixture(scope="module")
def people(inst):
    inst.give_password("nora", "nora-password-9")
    logged = {}
    for name in ["nora", *HONEST, *ATTACKERS]:
        p = Person(inst.url, name)
        p.login(f"{name}-password-9")
        assert p.logged_in()
        logged[name] = p
    return logged


@pytest.fixture(scope="module")
def trap():
    """A Unix socket of the host, where the grader could connect but never should."""
    folder = tempfile.mkdtemp(prefix="coursehub-trap-", dir="/tmp")
    os.chmod(folder, 0o755)  # noqa: S103 - the grader account must reach the trap
    path = os.path.join(folder, "trap.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    os.chmod(path, 0o777)  # noqa: S103 - any account may connect: that is the trap
    srv.listen(16)
    srv.settimeout(0.5)
    calls: list[int] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            calls.append(1)
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield path, calls
    stop.set()
    srv.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def collected(inst, people, trap):
    create_and_release(people["nora"], COURSE, HW)
    code = attacks(inst.plan(), inst.port, trap[0])
    for name in [*HONEST, *ATTACKERS]:
        student = people[name]
        student.start_server()
        fetch(student, COURSE, HW)
        if name == "ada":  # a module of her own beside the notebook, as students ship them
            r = student.server(
                "PUT",
                f"api/contents/{COURSE}/{HW}/helper.py",
                json={
                    "type": "file",
                    "format": "text",
                    "content": "def sq(x):\n    return x * x\n",
                },
            )
            assert r.status_code in (200, 201), r.text
            answer(
                student,
                COURSE,
                HW,
                "from helper import sq\n\ndef square(x):\n    return sq(x)",
                f"{MARKER}-{name}",
            )
        elif name in HONEST:
            answer(student, COURSE, HW, RIGHT, f"{MARKER}-{name}")
        else:
            answer(student, COURSE, HW, code[name], "my answer")
        submit(student, COURSE, HW)
        student.stop_server()
    inst.cli("nbgrader", COURSE, "--", "collect", HW)
    return True


def outside_sandbox(inst) -> dict[str, dict]:
    plan = inst.plan()
    root = plan["courses"][COURSE]["course_root"]
    return {
        "exchange": tree_digest(plan["paths"]["exchange"]),
        # what grading writes: the autograded copies, the gradebook and nbgrader's log
        "grader": tree_digest(
            os.path.dirname(root),
            skip=(
                f"{COURSE}/autograded",
                f"{COURSE}/gradebook.db",
                f"{COURSE}/gradebook.db-wal",
                f"{COURSE}/gradebook.db-shm",
                ".nbgrader.log",
                ".local/share/jupyter/runtime",
                ".cache",
            ),
        ),
    }


@pytest.fixture(scope="module")
def graded(inst, people, collected):
    before = outside_sandbox(inst)
    run = inst.cli("autograde", COURSE, HW, "--jobs", "2", check=False, timeout=600)
    after = outside_sandbox(inst)
    return run, before, after


def test_every_submission_is_graded_in_parallel_with_a_summary(graded):
    run, _, _ = graded
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "with 2 worker(s)" in out
    total = len(HONEST) + len(ATTACKERS)
    assert re.search(rf"\[#+\] {total}/{total}", out), out  # the progress bar reached the end
    assert re.search(rf"graded\s+{total}\b", out) and re.search(r"not graded\s+0\b", out), out


def test_honest_students_keep_their_points_and_attacks_score_zero(people, graded):
    got = scores(people["nora"], COURSE, HW)
    assert got == {**dict.fromkeys(HONEST, 2.0), **dict.fromkeys(ATTACKERS, 0.0)}, got


def test_attacks_got_nothing(inst, graded):
    root = inst.plan()["courses"][COURSE]["course_root"]
    for name in ATTACKERS:
        shown = outputs_of(Path(root, "autograded", name, HW, f"{HW}.ipynb"))
        assert "GOT" not in shown, f"{name}'s attack got through:\n{shown[:3000]}"
    for name in ["reader", "snoop", "writer", "caller"]:  # ran to the end, and found nothing
        shown = outputs_of(Path(root, "autograded", name, HW, f"{HW}.ipynb"))
        assert "nothing got through" in shown, shown[:3000]


def test_the_grader_never_reached_the_host_socket(graded, trap):
    _, calls = trap
    assert calls == [], f"the grader connected to the trap {len(calls)} times"


def test_nothing_outside_the_scratch_copy_changed(graded):
    _, before, after = graded
    for where in before:
        changed = {
            k
            for k in set(before[where]) | set(after[where])
            if before[where].get(k) != after[where].get(k)
        }
        assert not changed, f"{where}: changed while grading: {sorted(changed)}"


def test_limits_are_named_in_the_summary_and_in_the_formgrader(inst, people, graded):
    run, _, _ = graded
    out = run.stdout
    assert re.search(r"looper: .*4 s, the time limit of one cell", out), out
    assert re.search(r"forker: .*4 s, the time limit of one cell", out), out
    assert re.search(r"hog: .*at most 1G of memory", out), out
    assert re.search(r"filler: .*at most 64M", out), out
    assert re.search(r"shouter: .*printed more than 64 MiB", out), out
    assert "owned" not in out and "10 of 10" not in out  # the faker's text is not reported
    assert not re.search(r"limit: faker", out), out
    # the instructor sees the reason in the graded notebook of the formgrader
    nora = people["nora"]
    subs = ok(nora.service("GET", COURSE, f"formgrader/api/submitted_notebooks/{HW}/{HW}"))
    looper = next(s for s in subs if s["student"] == "looper")
    page = nora.service("GET", COURSE, f"formgrader/submissions/{looper['id']}/")
    assert page.status_code == 200, page.text[:300]
    assert "the time limit of one cell while grading" in page.text


def test_gradebook_is_whole_after_parallel_writers(inst, graded):
    root = inst.plan()["courses"][COURSE]["course_root"]
    con = sqlite3.connect(f"file:{root}/gradebook.db?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = con.execute(
            "SELECT student.id FROM submitted_assignment JOIN student "
            "ON submitted_assignment.student_id = student.id"
        ).fetchall()
    finally:
        con.close()
    assert sorted(r[0] for r in rows) == sorted(HONEST + ATTACKERS)


def test_rerun_grades_only_what_changed(inst, people, graded):
    again = inst.cli("autograde", COURSE, HW, timeout=300)
    total = len(HONEST) + len(ATTACKERS)
    assert "Nothing to grade" in again.stdout
    assert f"{total} submission(s) unchanged" in again.stdout
    # bea resubmits a wrong answer: --collect takes it and only it is graded again
    bea = people["bea"]
    bea.start_server()
    answer(bea, COURSE, HW, "def square(x):\n    return x + x", "changed my mind")
    submit(bea, COURSE, HW)
    bea.stop_server()
    third = inst.cli("autograde", COURSE, HW, "--collect", "--jobs", "1", timeout=300)
    assert "Autograding 1 submission(s)" in third.stdout, third.stdout
    assert scores(people["nora"], COURSE, HW)["bea"] == 0.0
    forced = inst.cli(
        "autograde", COURSE, HW, "--force", "--student", "ada", "--student", "looper", timeout=300
    )
    assert "Autograding 2 submission(s)" in forced.stdout, forced.stdout


def test_the_formgrader_button_and_coursehub_nbgrader_grade_in_the_sandbox_too(
    inst, people, graded
):
    nora = people["nora"]
    ok(nora.service("POST", COURSE, f"formgrader/api/submission/{HW}/reader/autograde"))
    ok(nora.service("POST", COURSE, f"formgrader/api/submission/{HW}/ada/autograde"))
    inst.cli("nbgrader", COURSE, "--", "autograde", HW, "--student", "snoop", "--force")
    got = scores(nora, COURSE, HW)
    assert got["reader"] == 0.0 and got["snoop"] == 0.0 and got["ada"] == 2.0
    root = inst.plan()["courses"][COURSE]["course_root"]
    for name in ("reader", "snoop"):
        shown = outputs_of(Path(root, "autograded", name, HW, f"{HW}.ipynb"))
        assert "GOT" not in shown and "nothing got through" in shown, shown


def test_refusals(inst):
    for args, says in [
        (("autograde", COURSE, "../lab3"), "assignment name"),
        (("autograde", COURSE, HW, "--student", "../ada"), "--student"),
        (("autograde", COURSE, HW, "--jobs", "0"), "--jobs"),
        (("autograde", "nocourse", HW), "no course"),
    ]:
        r = inst.cli(*args, check=False)
        assert r.returncode != 0 and says in (r.stdout + r.stderr), (args, r.stdout, r.stderr)
    r = inst.cli("autograde", COURSE, HW, "--student", "zed", check=False)
    assert r.returncode != 0 and "no submission" in r.stdout + r.stderr


def test_validate_as_the_grader_is_sandboxed(inst, graded):
    """`nbgrader validate` on the grader side runs the student's code too: the writer's
    attack, which the grader account could carry out unsandboxed, writes nothing."""
    plan = inst.plan()
    root = plan["courses"][COURSE]["course_root"]
    r = inst.cli(
        "nbgrader", COURSE, "--", "validate", f"submitted/writer/{HW}/{HW}.ipynb", check=False
    )
    # the answer is defined only if a write got through: validation fails on it
    out = r.stdout + r.stderr
    assert "VALIDATION FAILED" in out and "name 'square' is not defined" in out, out
    for top in (root, os.path.dirname(root), plan["paths"]["exchange"]):
        assert not [p for p in Path(top).rglob("evil.txt")], top


def test_the_student_sees_the_limit_in_their_feedback(people, graded):
    nora, looper = people["nora"], people["looper"]
    ok(nora.service("POST", COURSE, f"formgrader/api/assignment/{HW}/looper/generate_feedback"))
    ok(nora.service("POST", COURSE, f"formgrader/api/assignment/{HW}/looper/release_feedback"))
    looper.start_server()
    fetch_feedback(looper, COURSE, HW)
    folder = looper.server("GET", f"api/contents/{COURSE}/{HW}/feedback").json()["content"]
    assert len(folder) == 1, folder
    html = looper.server("GET", f"api/contents/{folder[0]['path']}/{HW}.html").json()["content"]
    assert "the time limit of one cell while grading" in html
    looper.stop_server()
