"""The hub's home page in a real browser: what it says to a student, an instructor, an admin.

A student who fetched and submitted sees each released assignment's state, then the
feedback once it is released; an instructor sees their courses and follows the link
to a formgrader; an admin sees the health of the proxy, the hub and each grader.
Screenshots go to tests/artifacts/home/ (docs/screenshots/07-09 are copies of them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from term import fetch, submit

from browser import CHROMIUM, CHROMIUM_ARGS
from conftest import ROOT, Installation
from hubclient import Person

pytestmark = pytest.mark.integration

if not Path(CHROMIUM).exists():
    pytest.skip(f"needs Debian's Chromium at {CHROMIUM}", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("servers run under one uid per person: needs root", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

TITLE = "Rocks & <Minerals>"  # shown as text, never as markup
SITE = {
    "org": "Home Page College",
    "auth": {"type": "first-use"},
    "admins": ["hedda"],
    "people": ["omar", "rosa"],
    "courses": [
        {"id": "geo", "title": TITLE, "instructors": ["omar"], "students": ["rosa"]},
        {"id": "chem", "title": "Chemistry", "instructors": ["omar"], "students": ["rosa"]},
    ],
}
SHOTS = ROOT / "tests" / "artifacts" / "home"
STEP = 30_000  # ms


def password(name: str) -> str:
    return f"{name}-home-page-42"


@pytest.fixture(scope="module")
def released(inst):
    for name in ("week1", "week2", "week3", "week4"):
        inst.cli("sample", "geo", "--name", name)


@pytest.fixture(scope="module")
def student(inst, released) -> Person:
    """rosa submitted week1 and week4, fetched week2 and left week3 alone (in her server)."""
    rosa = Person(inst.url, "rosa")
    assert rosa.login(password("rosa")).status_code == 200
    rosa.start_server()
    fetch(rosa, "geo", "week1")
    submit(rosa, "geo", "week1")
    fetch(rosa, "geo", "week2")
    fetch(rosa, "geo", "week4")
    submit(rosa, "geo", "week4")
    return rosa


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(STEP)
    yield page
    ctx.close()


def open_home(page, inst: Installation, name: str) -> None:
    """Log in through the login page (a student's first login sets the password; an admin's
    or instructor's is set through a set-password link first), to the home page."""
    if name in ("omar", "hedda"):
        inst.give_password(name, password(name))
    page.goto(f"{inst.url}hub/login?next=%2Fhub%2Fhome")
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill(password(name))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/hub/home$"))
    expect(page.locator("#coursehub-home")).to_be_visible()


def course_card(page, course_id: str):
    return page.locator(f".coursehub-course[data-course='{course_id}']")


def state_of(card, assignment: str):
    return card.locator(f"tr[data-assignment='{assignment}'] .coursehub-state")


def test_student_sees_each_assignment_and_its_state(inst, student, page):
    open_home(page, inst, "rosa")
    geo = course_card(page, "geo")
    expect(geo.locator(".coursehub-title")).to_have_text(TITLE)
    expect(geo.locator(".coursehub-role")).to_have_text("student")
    expect(state_of(geo, "week1")).to_have_text("submitted")
    expect(state_of(geo, "week2")).to_have_text("fetched")
    expect(state_of(geo, "week3")).to_have_text("released")
    expect(state_of(geo, "week4")).to_have_text("submitted")
    expect(geo.locator(".coursehub-formgrader")).to_have_count(0)
    expect(course_card(page, "chem")).to_contain_text("No assignment has been released yet.")
    expect(page.locator("#coursehub-health")).to_have_count(0)

    # the course grades week1 and releases its feedback (week4 waits)
    for step in ("collect", "autograde", "generate_feedback", "release_feedback"):
        inst.cli("nbgrader", "geo", "--", step, "week1", timeout=300)
    page.reload()
    expect(state_of(geo, "week1")).to_have_text("feedback available")
    expect(state_of(geo, "week2")).to_have_text("fetched")
    expect(state_of(geo, "week4")).to_have_text("submitted")
    page.screenshot(path=str(SHOTS / "07-home-student.png"), full_page=True)


def test_instructor_sees_courses_and_follows_a_formgrader_link(inst, released, page):
    open_home(page, inst, "omar")
    for course_id, title in (("geo", TITLE), ("chem", "Chemistry")):
        card = course_card(page, course_id)
        expect(card.locator(".coursehub-title")).to_have_text(title)
        expect(card.locator(".coursehub-role")).to_have_text("instructor")
        expect(card.locator(".coursehub-formgrader")).to_have_attribute(
            "href", f"/services/{course_id}/formgrader"
        )
    page.screenshot(path=str(SHOTS / "08-home-instructor.png"), full_page=True)

    with page.expect_navigation(url=re.compile(r"/services/geo/formgrader")) as nav:
        course_card(page, "geo").locator(".coursehub-formgrader").click()
    assert nav.value.status == 200, (nav.value.status, page.url)
    expect(page.get_by_role("heading", name="Manage Assignments")).to_be_visible()
    expect(page.locator("#main-table")).to_contain_text("week1")


def test_admin_sees_the_health_of_every_process(inst, page):
    open_home(page, inst, "hedda")
    expect(page.locator("#coursehub-no-course")).to_be_visible()
    health = page.locator("#coursehub-health")
    expect(health).to_contain_text("coursehub's supervisor is running (pid")
    expect(health).to_contain_text("healthy")
    for process in ("proxy", "hub", "grader-geo", "grader-chem"):
        expect(health.locator(f"tr[data-process='{process}'] .coursehub-check")).to_have_text("ok")
    courses = page.locator("#coursehub-all-courses")
    expect(courses.locator("tr[data-course='geo']")).to_contain_text(TITLE)
    expect(courses.locator("tr[data-course='chem']")).to_contain_text("/services/chem/")
    page.screenshot(path=str(SHOTS / "09-home-admin.png"), full_page=True)
