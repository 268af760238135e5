"""The hub's home page: the data for each role, the no-follow reader and the template.

The sample site: ines teaches algebra and biology, sam takes both, tom biology, ada is
an admin, pat is in no course. Folders are made under tmp_path as the Plan places them.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub.app import JupyterHub
from jupyterhub.auth import Authenticator
from sites import two_course_data

from coursehub.hub import home
from coursehub.hub.config import hub_config
from coursehub.hub.home import (
    FEEDBACK,
    FETCHED,
    RELEASED,
    SUBMITTED,
    Check,
    HomePage,
    HomeTemplateVar,
    InstallationHealth,
    courses_of,
    entries,
    folder,
    installation_courses,
    installation_health,
    read_small,
    student_assignments,
)
from coursehub.plan import SYSTEM, Plan, derive
from coursehub.site import parse_site

XSS = "<script>alert(1)</script>"
SECRET = "ab" * 64  # as nbgrader writes it: 128 hex digits


@pytest.fixture
def local_plan(tmp_path) -> Plan:
    return derive(parse_site(two_course_data()), str(tmp_path / "data"), isolated=True)


def mkdirs(*paths: Path) -> None:
    for p in paths:
        p.mkdir(parents=True, exist_ok=True)


class Course:
    """The folders of one course as the Plan places them, to fill in for a test."""

    def __init__(self, plan: Plan, course_id: str):
        self.plan = plan
        self.id = course_id
        self.ex = Path(plan.paths.exchange)
        mkdirs(self.ex / course_id / "outbound", self.ex / course_id / "inbound")

    def release(self, *names: str) -> None:
        for n in names:
            mkdirs(self.ex / self.id / "outbound" / n / n)

    def home(self, student: str) -> Path:
        return Path(self.plan.people[student].account.home)

    def fetch(self, student: str, assignment: str) -> None:
        mkdirs(self.home(student) / self.id / assignment)

    def inbound(self, student: str) -> Path:
        return self.ex / self.id / "inbound" / student

    def submit(self, student: str, assignment: str, when: str = "2026-01-05 10:00:00.000000 UTC"):
        sub = self.inbound(student) / f"{student}+{assignment}+{when}+rAnD0m"
        mkdirs(sub)
        (sub / f"{assignment}.ipynb").write_text("{}")
        (sub / "submission_secret.txt").write_text(SECRET)
        return sub

    def feedback_dir(self, student: str) -> Path:
        d = self.ex / ".feedback" / student / self.id / "feedback"
        mkdirs(d)
        return d

    def give_feedback(self, student: str, notebook: str, secret: str = SECRET) -> None:
        # nbgrader's name for a notebook's feedback: md5 of the secret, then the notebook's id
        digest = hashlib.md5((secret + notebook).encode(), usedforsecurity=False).hexdigest()
        (self.feedback_dir(student) / f"{digest}.html").write_text("<p>well done</p>")


def states(plan: Plan, course_id: str, student: str) -> dict[str, str] | None:
    found = student_assignments(plan, course_id, student)
    return None if found is None else {a.name: a.state for a in found}


# Courses and roles, from the Plan alone.


def test_each_person_sees_their_courses_and_role(plan):
    ines = courses_of(plan, "ines")
    assert [(c.course_id, c.title, c.role) for c in ines] == [
        ("algebra", "Algebra", "instructor"),
        ("biology", "Biology", "instructor"),
    ]
    sam = courses_of(plan, "sam")
    assert [(c.course_id, c.role, c.formgrader) for c in sam] == [
        ("algebra", "student", None),
        ("biology", "student", None),
    ]
    assert [c.course_id for c in courses_of(plan, "tom")] == ["biology"]
    assert courses_of(plan, "pat") == []
    assert courses_of(plan, "grader-algebra") == []  # not a person
    assert courses_of(plan, "nobody-here") == []


def test_instructors_get_the_formgrader_of_each_course(plan):
    assert [c.formgrader for c in courses_of(plan, "ines")] == [
        "/services/algebra/formgrader",
        "/services/biology/formgrader",
    ]


def test_admins_see_every_course_with_its_members(plan):
    summary = installation_courses(plan)
    assert [(c.course_id, c.instructors, c.students, c.url) for c in summary] == [
        ("algebra", 1, 1, "/services/algebra/"),
        ("biology", 1, 2, "/services/biology/"),
    ]


# Assignment states.


def test_released_fetched_submitted_and_feedback(local_plan):
    algebra = Course(local_plan, "algebra")
    algebra.release("hw1", "hw2", "hw3", "hw4")
    algebra.fetch("sam", "hw2")
    for a in ("hw3", "hw4"):
        algebra.fetch("sam", a)
        algebra.submit("sam", a)
    algebra.give_feedback("sam", "hw4")
    assert states(local_plan, "algebra", "sam") == {
        "hw1": RELEASED,
        "hw2": FETCHED,
        "hw3": SUBMITTED,
        "hw4": FEEDBACK,
    }


def test_feedback_of_an_older_submission_counts(local_plan):
    algebra = Course(local_plan, "algebra")
    algebra.release("hw1")
    old = algebra.submit("sam", "hw1", "2026-01-05 10:00:00.000000 UTC")
    new = algebra.submit("sam", "hw1", "2026-01-06 10:00:00.000000 UTC")
    (new / "submission_secret.txt").write_text("cd" * 64)
    assert old.exists()
    algebra.give_feedback("sam", "hw1", secret=SECRET)
    assert states(local_plan, "algebra", "sam") == {"hw1": FEEDBACK}


def test_nothing_released_and_no_folders_at_all(local_plan):
    Course(local_plan, "algebra")
    assert student_assignments(local_plan, "algebra", "sam") == []
    # biology's exchange folders do not exist: unknown, not an error
    assert student_assignments(local_plan, "biology", "sam") is None


def test_another_students_submissions_do_not_count(local_plan):
    biology = Course(local_plan, "biology")
    biology.release("lab1")
    biology.submit("tom", "lab1")
    # a folder in sam's inbound named as tom's submission, or with no '+' parts
    mkdirs(
        biology.inbound("sam") / "tom+lab1+2026-01-05 10:00:00 UTC", biology.inbound("sam") / "lab1"
    )
    assert states(local_plan, "biology", "sam") == {"lab1": RELEASED}
    assert states(local_plan, "biology", "tom") == {"lab1": SUBMITTED}


# Symlink attacks: the page never reports through a link.


def test_a_course_folder_in_the_home_linked_to_another_students_home(local_plan):
    biology = Course(local_plan, "biology")
    biology.release("lab1")
    biology.fetch("tom", "lab1")
    biology.home("sam").mkdir(parents=True)
    (biology.home("sam") / "biology").symlink_to(biology.home("tom") / "biology")
    assert states(local_plan, "biology", "sam") == {"lab1": RELEASED}


def test_a_course_folder_in_the_home_linked_to_root(local_plan, tmp_path):
    algebra = Course(local_plan, "algebra")
    secret_place = tmp_path / "root-home"
    mkdirs(secret_place / "hw1")  # as if /root held a folder named as the assignment
    algebra.release("hw1")
    algebra.home("sam").mkdir(parents=True)
    (algebra.home("sam") / "algebra").symlink_to(secret_place)
    assert states(local_plan, "algebra", "sam") == {"hw1": RELEASED}
    (algebra.home("sam") / "algebra").unlink()
    (algebra.home("sam") / "algebra").symlink_to("/root")
    assert states(local_plan, "algebra", "sam") == {"hw1": RELEASED}


def test_the_home_itself_replaced_by_a_link(local_plan):
    biology = Course(local_plan, "biology")
    biology.release("lab1")
    biology.fetch("tom", "lab1")
    biology.home("sam").parent.mkdir(parents=True, exist_ok=True)
    biology.home("sam").symlink_to(biology.home("tom"))
    assert states(local_plan, "biology", "sam") == {"lab1": RELEASED}


def test_a_fetched_assignment_that_is_a_link(local_plan, tmp_path):
    algebra = Course(local_plan, "algebra")
    algebra.release("hw1")
    mkdirs(algebra.home("sam") / "algebra", tmp_path / "elsewhere")
    (algebra.home("sam") / "algebra" / "hw1").symlink_to(tmp_path / "elsewhere")
    assert states(local_plan, "algebra", "sam") == {"hw1": RELEASED}


def test_an_inbound_folder_linked_to_another_students(local_plan):
    biology = Course(local_plan, "biology")
    biology.release("lab1")
    # tom's folder holds a submission named as sam's (it is tom's to fill)
    mkdirs(biology.inbound("tom") / "sam+lab1+2026-01-05 10:00:00 UTC")
    biology.inbound("sam").symlink_to(biology.inbound("tom"))
    assert states(local_plan, "biology", "sam") == {"lab1": RELEASED}


def test_a_submission_that_is_a_link_is_not_a_submission(local_plan, tmp_path):
    biology = Course(local_plan, "biology")
    biology.release("lab1")
    mkdirs(biology.inbound("sam"), tmp_path / "fake")
    (biology.inbound("sam") / "sam+lab1+2026-01-05 10:00:00 UTC").symlink_to(tmp_path / "fake")
    assert states(local_plan, "biology", "sam") == {"lab1": RELEASED}


def test_released_folder_or_assignment_replaced_by_a_link(local_plan, tmp_path):
    algebra = Course(local_plan, "algebra")
    mkdirs(tmp_path / "other" / "not-an-assignment")
    (algebra.ex / "algebra" / "outbound" / "linked").symlink_to(tmp_path / "other")
    algebra.release("hw1")
    assert states(local_plan, "algebra", "sam") == {"hw1": RELEASED}
    # the grader replaces outbound itself with a link: nothing is read through it
    (algebra.ex / "algebra" / "outbound").rename(tmp_path / "moved")
    (algebra.ex / "algebra" / "outbound").symlink_to(tmp_path / "moved")
    assert student_assignments(local_plan, "algebra", "sam") is None


def test_feedback_through_links_does_not_count(local_plan, tmp_path):
    algebra = Course(local_plan, "algebra")
    algebra.release("hw1")
    sub = algebra.submit("sam", "hw1")
    # the secret is a link to another submission's secret that has feedback
    other = tmp_path / "other-secret.txt"
    other.write_text("ef" * 64)
    (sub / "submission_secret.txt").unlink()
    (sub / "submission_secret.txt").symlink_to(other)
    algebra.give_feedback("sam", "hw1", secret="ef" * 64)
    assert states(local_plan, "algebra", "sam") == {"hw1": SUBMITTED}
    # the secret is fine but the feedback folder is a link to a folder with feedback
    (sub / "submission_secret.txt").unlink()
    (sub / "submission_secret.txt").write_text(SECRET)
    fb = algebra.feedback_dir("sam")
    elsewhere = tmp_path / "feedback-elsewhere"
    fb.rename(elsewhere)
    fb.symlink_to(elsewhere)
    digest = hashlib.md5((SECRET + "hw1").encode(), usedforsecurity=False).hexdigest()
    (elsewhere / f"{digest}.html").write_text("x")
    assert states(local_plan, "algebra", "sam") == {"hw1": SUBMITTED}


def test_folder_walk_stops_at_any_link(tmp_path):
    mkdirs(tmp_path / "a" / "b" / "c", tmp_path / "real" / "c")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "real")
    with folder(str(tmp_path), "a", "b", "c") as fd:
        assert fd is not None
    with folder(str(tmp_path), "a", "link", "c") as fd:
        assert fd is None
    with folder(str(tmp_path), "a", "link") as fd:
        assert fd is None
    for bad in ("..", ".", "", "b/c"):
        with folder(str(tmp_path), "a", bad) as fd:
            assert fd is None
    with folder(str(tmp_path / "missing"), "a") as fd:
        assert fd is None


def test_folder_walk_leaks_no_descriptor(tmp_path):
    mkdirs(tmp_path / "a" / "b")
    before = len(os.listdir("/proc/self/fd"))
    for parts in (("a", "b"), ("a", "missing"), ("a", "..")):
        with folder(str(tmp_path), *parts):
            pass
    assert len(os.listdir("/proc/self/fd")) == before


# Odd entries are skipped, listings are bounded.


def test_odd_names_are_skipped(tmp_path):
    mkdirs(tmp_path / "ok", tmp_path / "new\nline", tmp_path / "tab\there")
    os.mkdir(os.fsencode(tmp_path) + b"/bad-\xff-utf8")
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "dir-link").symlink_to(tmp_path / "ok")
    os.mkfifo(tmp_path / "fifo")
    with folder(str(tmp_path)) as fd:
        assert sorted(entries(fd, stat.S_IFDIR)) == ["ok"]
        assert entries(fd, stat.S_IFREG) == ["a-file"]


def test_listings_are_bounded(tmp_path):
    for i in range(20):
        (tmp_path / f"d{i}").mkdir()
    with folder(str(tmp_path)) as fd:
        assert len(entries(fd, stat.S_IFDIR, limit=7)) == 7


def test_a_fifo_or_a_hard_link_as_the_secret_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big").write_text("a" * 5000)
    (tmp_path / "shared").write_text(SECRET)
    os.link(tmp_path / "shared", tmp_path / "hard")
    (tmp_path / "link").symlink_to(tmp_path / "good")
    (tmp_path / "good").write_text(SECRET + "\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    result = {}

    def read_all():
        with folder(str(tmp_path)) as fd:
            for name in ("fifo", "big", "hard", "link", "good", "binary", "missing"):
                result[name] = read_small(fd, name)

    t = threading.Thread(target=read_all, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "reading a FIFO blocked"
    assert result == {
        "fifo": None,
        "big": None,
        "hard": None,
        "link": None,
        "good": SECRET,
        "binary": None,
        "missing": None,
    }


def test_odd_entries_in_the_exchange_do_not_break_the_page(local_plan):
    algebra = Course(local_plan, "algebra")
    algebra.release("hw1", "line\nbreak")
    os.mkfifo(algebra.ex / "algebra" / "outbound" / "fifo")
    sub = algebra.submit("sam", "hw1")
    (sub / "submission_secret.txt").unlink()
    os.mkfifo(sub / "submission_secret.txt")
    (algebra.feedback_dir("sam") / "x.html").write_text("")
    assert states(local_plan, "algebra", "sam") == {"hw1": SUBMITTED}


# Health, as coursehub status knows it.


def test_health_of_a_stopped_local_installation(local_plan):
    assert installation_health(local_plan) == InstallationHealth(available=True, running=False)


def test_health_is_not_known_on_a_docker_host():
    plan = derive(parse_site(two_course_data()), "/", isolated=True, layout=SYSTEM)
    assert installation_health(plan) == InstallationHealth(available=False)


def test_health_reuses_what_status_calls(local_plan, monkeypatch):
    from coursehub.targets.local import runtime

    asked = []

    def fake_health(inst):
        asked.append(inst.data_dir)
        return [runtime.Health("proxy", "http://p", True), runtime.Health("hub", "http://h", False)]

    monkeypatch.setattr(runtime, "health", fake_health)
    monkeypatch.setattr(runtime.Installation, "supervisor_pid", lambda self: 4242)
    h = installation_health(local_plan)
    assert asked == [local_plan.paths.data_dir]
    assert h.running and h.pid == 4242 and not h.healthy
    assert h.checks == (Check("proxy", True, "http://p"), Check("hub", False, "http://h"))


# The template var is cheap: nothing is read until the home page asks.


def test_template_var_reads_nothing_until_asked(tmp_path):
    var = HomeTemplateVar(str(tmp_path / "no-plan.json"))
    assert var(None) is None
    page = var(SimpleNamespace(name="sam"))
    assert isinstance(page, HomePage) and "plan" not in page.__dict__
    assert page.courses == [] and not page.admin  # a missing Plan shows nothing, no error
    assert copy.deepcopy(var).plan_file == var.plan_file  # traitlets copies config values


# The real template, through the Jinja environment JupyterHub builds from hub_config.


@pytest.fixture
def xss_plan(tmp_path) -> tuple[Plan, str]:
    data = two_course_data()
    data["courses"][0]["title"] = XSS
    plan = derive(parse_site(data), str(tmp_path / "data"), isolated=True)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    return plan, str(plan_file)


def hub_env(config):
    """JupyterHub's own Jinja environment, built by JupyterHub from our config."""
    app = JupyterHub(config=config)
    app.hub = SimpleNamespace(base_url="/hub/")
    app.authenticator = Authenticator()
    app._service_map = {}
    app.db = app.proxy = app.oauth_provider = app.eventlog = None
    app.init_tornado_settings()
    return app.tornado_settings["jinja2_env"], app.template_vars


def render(env, template_vars, name: str | None) -> str:
    user = SimpleNamespace(name=name, json_escaped_name=name, spawner=None)
    ns = {key: (value(user) if callable(value) else value) for key, value in template_vars.items()}
    ns.update(
        base_url="/hub/",
        prefix="/",
        user=user,
        static_url=lambda path, include_version=True: f"/hub/static/{path}",
        parsed_scopes=set(),
        services=[],
        no_spawner_check=True,
        url=f"/hub/spawn/{name}",
        default_server=SimpleNamespace(active=False),
        allow_named_servers=False,
        xsrf_token="x",
        logout_url="/hub/logout",
        login_url="/hub/login",
    )
    return asyncio.run(env.get_template("home.html").render_async(**ns))


@pytest.fixture
def rendered(xss_plan, fake_secrets):
    plan, plan_file = xss_plan
    env, template_vars = hub_env(hub_config(plan, plan_file, fake_secrets, "/opt/env"))
    assert env.autoescape is True or env.autoescape("home.html")  # JupyterHub's, verified
    return plan, lambda name: render(env, template_vars, name)


def test_config_ships_the_template_and_keeps_the_login_announcement(xss_plan, fake_secrets):
    plan, plan_file = xss_plan
    c = hub_config(plan, plan_file, fake_secrets, "/opt/env")
    assert c.JupyterHub.template_paths == [home.TEMPLATES]
    assert Path(home.TEMPLATES, "home.html").is_file()
    tv = c.JupyterHub.template_vars
    assert tv["announcement_login"] == "Test School: log in with your coursehub account"
    assert isinstance(tv["coursehub"], HomeTemplateVar)


def test_the_template_is_in_the_docker_hosts_wheel():
    from coursehub.targets.compose.wheel import package_files

    assert "coursehub/hub/templates/home.html" in package_files()


def test_student_page_escapes_a_course_title_and_assignment_names(rendered):
    plan, page = rendered
    algebra = Course(plan, "algebra")
    algebra.release('<img src=x onerror="alert(2)">')
    html = page("sam")
    assert "Start" in html and "My Server" in html  # JupyterHub's own home is still there
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    assert 'class="badge text-bg-light border coursehub-state">released</span>' in html
    assert "Biology" in html
    assert "Nbgrader → Assignment List" in html  # biology: its folders cannot be read
    assert "/formgrader" not in html and "coursehub-health" not in html


def test_instructor_page_links_each_formgrader(rendered):
    _, page = rendered
    html = page("ines")
    assert 'href="/services/algebra/formgrader"' in html
    assert 'href="/services/biology/formgrader"' in html
    assert XSS not in html and "&lt;script&gt;" in html
    assert "coursehub-health" not in html


def test_admin_page_shows_health_and_courses(rendered, monkeypatch):
    _, page = rendered
    healthy = InstallationHealth(
        True, True, 77, (Check("proxy", True, "http://p/"), Check("grader-algebra", False, "u"))
    )
    monkeypatch.setattr(home, "installation_health", lambda plan: healthy)
    html = page("ada")
    assert "You are in no course yet." in html
    assert "supervisor is running (pid 77)" in html
    assert 'data-process="grader-algebra"' in html and ">down</span>" in html
    assert ">degraded</span>" in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # course table


def test_page_without_the_coursehub_var_is_jupyterhubs_own(xss_plan, fake_secrets):
    """A hub whose config sets other template vars (the Docker host's) still renders."""
    plan, plan_file = xss_plan
    c = hub_config(plan, plan_file, fake_secrets, "/opt/env")
    c.JupyterHub.template_vars = {"announcement_login": "x"}
    env, template_vars = hub_env(c)
    html = render(env, template_vars, "sam")
    assert "My Server" in html and "coursehub-home" not in html


def test_health_is_not_known_when_no_target_provides_the_plans_layout(local_plan, monkeypatch):
    from coursehub import hosting

    def missing(kind):
        raise hosting.HostUnsupported(f"no coursehub target provides layout {kind!r}")

    monkeypatch.setattr(hosting, "_host_class", missing)
    assert installation_health(local_plan) == InstallationHealth(available=False)
