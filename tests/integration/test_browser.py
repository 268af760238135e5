"""A real browser through the whole journey: headless Chromium driven by Playwright.

A student logs in through the login page, opens the Assignments panel of her
Lab, fetches, answers in the notebook, saves and submits. The instructor opens
the course from the Courses panel, sees the formgrader render inside the
grader service's Lab, collects, autogrades and sees the score. A student who
opens the formgrader's address is refused. Each step saves a screenshot to
tests/artifacts/browser/.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest

from browser import CHROMIUM_ARGS
from conftest import ROOT, Installation, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"needs Debian's Chromium at {CHROMIUM}", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("servers run under one uid per person: needs root", allow_module_level=True)

from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

SITE = {
    "org": "Browser University",
    "auth": {"type": "first-use"},
    "people": ["vera", "nico", "lena"],
    "courses": [
        {"id": "astro", "title": "Astronomy", "instructors": ["vera"], "students": ["nico", "lena"]}
    ],
}
COURSE, ASSIGNMENT = "astro", "week1"
ANSWER = "def square(x):\n    return x * x"
SHOTS = ROOT / "tests" / "artifacts" / "browser"
LAB_START = 90_000  # ms: the first login spawns the server, then the Lab loads
STEP = 30_000  # ms: anything else a person waits for


def password(name: str) -> str:
    return f"{name}-stars-and-9"


@pytest.fixture(scope="module")
def released(inst):
    inst.cli("sample", COURSE, "--name", ASSIGNMENT)
    return True


@pytest.fixture(scope="module")
def browser():
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Camera:
    """Numbered screenshots of each step; on failure, one of every open page."""

    count = 0

    def __init__(self, browser):
        self.browser = browser

    def shot(self, page, step: str) -> None:
        Camera.count += 1
        page.screenshot(path=str(SHOTS / f"{Camera.count:02d}-{step}.png"))

    @contextlib.contextmanager
    def on_failure(self, test: str):
        try:
            yield
        except BaseException:
            for i, ctx in enumerate(self.browser.contexts):
                for j, page in enumerate(ctx.pages):
                    with contextlib.suppress(PlaywrightError):
                        page.screenshot(path=str(SHOTS / f"failed-{test}-{i}-{j}.png"))
            raise


@pytest.fixture
def camera(browser):
    yield Camera(browser)
    for ctx in browser.contexts:
        ctx.close()


def new_page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.set_default_timeout(STEP)
    return page


def log_in(page, inst: Installation, name: str, camera: Camera | None = None) -> None:
    """Through the login page, as a person does; the first login sets the password."""
    page.goto(f"{inst.url}hub/login")
    expect(
        page.get_by_text("Browser University: log in with your coursehub account")
    ).to_be_visible()
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill(password(name))
    if camera:
        camera.shot(page, "login")
    page.get_by_role("button", name="Sign in").click()


NEWS_QUESTION = "Would you like to get notified about official Jupyter news?"


def wait_for_lab(page, prefix: str) -> None:
    page.wait_for_url(re.compile(re.escape(prefix) + r"lab"), timeout=LAB_START)
    expect(page.get_by_role("menuitem", name="Nbgrader")).to_be_visible(timeout=LAB_START)
    # JupyterLab's news question comes once Lab has restored its layout: it must not come
    page.wait_for_timeout(3_000)
    expect(page.get_by_text(NEWS_QUESTION)).to_have_count(0)
    expect(page.locator(".Toastify__toast")).to_have_count(0)


def hide_file_browser(page) -> None:
    """More room for the formgrader, as a person with a small screen would do."""
    tab = page.get_by_role("tab", name="File Browser")
    if tab.get_attribute("aria-selected") == "true":
        tab.click()


def close_modal(frame) -> None:
    frame.locator(".modal.in").get_by_role("button", name="OK").click()
    expect(frame.locator(".modal-backdrop")).to_have_count(0)


def student_submits(browser, inst: Installation, camera: Camera, name: str) -> None:
    page = new_page(browser)
    log_in(page, inst, name, camera)
    # a password login lands where an LMS launch does: the Assignments panel, open
    wait_for_lab(page, f"/user/{name}/")
    assert page.url.endswith(f"/user/{name}/lab/workspaces/coursehub-assignments"), page.url
    expect(page.get_by_role("tab", name="Assignments")).to_be_visible()
    camera.shot(page, "student-lab")
    released = page.locator("#released_assignments_list .list_item", has_text=ASSIGNMENT)
    expect(released).to_contain_text(COURSE)
    camera.shot(page, "student-assignments-released")

    released.get_by_role("button", name="Fetch").click()
    fetched = page.locator("#fetched_assignments_list")
    item = fetched.locator(".list_item", has_text=COURSE)
    expect(item.get_by_role("button", name="Submit")).to_be_visible()
    expect(page.locator("#released_assignments_list")).to_contain_text(
        "There are no assignments to fetch"
    )
    item.get_by_role("button", name=ASSIGNMENT).click()  # shows the notebooks it holds
    camera.shot(page, "student-fetched")

    fetched.locator(".nested_list_item").get_by_role("link", name=ASSIGNMENT).click()
    notebook = page.locator(".jp-NotebookPanel:visible")
    cell = notebook.locator(".jp-CodeCell", has_text="def square")
    editor = cell.locator(".cm-content")
    expect(editor).to_contain_text("raise NotImplementedError()", timeout=LAB_START)
    expect(notebook).to_contain_text("Write square(x) that returns x * x.")
    # the kernel's first answer updates the notebook's metadata: answer once it is ready
    expect(page.locator("#jp-main-statusbar")).to_contain_text(
        "Python 3 (ipykernel) | Idle", timeout=LAB_START
    )
    camera.shot(page, "student-notebook")

    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(ANSWER)  # as typed, without the editor's auto-indent
    expect(editor).to_contain_text("return x * x")
    expect(editor).not_to_contain_text("NotImplementedError")
    page.keyboard.press("ControlOrMeta+s")
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Saving completed")
    tab = page.get_by_role("tab", name=f"{ASSIGNMENT}.ipynb")
    expect(tab).not_to_have_class(re.compile(r"jp-mod-dirty"))
    home = inst.plan()["people"][name]["account"]["home"]
    saved = Path(home, COURSE, ASSIGNMENT, f"{ASSIGNMENT}.ipynb")
    wait_for(lambda: "return x * x" in saved.read_text(), 10, f"{saved} to hold the answer")
    camera.shot(page, "student-answered")

    page.get_by_role("tab", name="Assignments").click()
    item.get_by_role("button", name="Submit").click()
    submitted = page.locator("#submitted_assignments_list .list_item", has_text=ASSIGNMENT)
    expect(submitted.first).to_contain_text(COURSE)
    expect(submitted.first).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d.* UTC"))
    camera.shot(page, "student-submitted")


def instructor_grades(browser, inst: Installation, camera: Camera, name: str, student: str):
    inst.give_password(name, password(name))  # an instructor's: only through a link
    page = new_page(browser)
    log_in(page, inst, name)
    # an instructor lands on the Courses panel: each course with its formgrader's link
    wait_for_lab(page, f"/user/{name}/")
    assert page.url.endswith(f"/user/{name}/lab/workspaces/coursehub-courses"), page.url
    expect(page.get_by_role("tab", name="Courses")).to_be_visible()
    link = page.locator("#formgrader_list").get_by_role("link", name=COURSE, exact=True)
    expect(link).to_have_attribute("href", re.compile(rf"/services/{COURSE}/lab\?formgrader=true"))
    camera.shot(page, "instructor-courses")

    # the link opens the grader service's Lab in a new tab; follow it either way
    try:
        with page.context.expect_page(timeout=10_000) as opened:
            link.click()
        grader = opened.value
        grader.set_default_timeout(STEP)
    except PlaywrightTimeout:
        grader = page
    wait_for_lab(grader, f"/services/{COURSE}/")
    expect(grader.get_by_role("tab", name="Formgrader")).to_be_visible()
    hide_file_browser(grader)

    # the formgrader renders inside the Lab: a frame with nbgrader's pages, not a blank one
    iframe = grader.locator(f"iframe[src*='/services/{COURSE}/formgrader']")
    expect(iframe).to_be_visible()
    fg = iframe.content_frame
    expect(fg.get_by_role("heading", name="Manage Assignments")).to_be_visible()
    row = fg.locator("#main-table tr", has_text=ASSIGNMENT)
    expect(row.locator("td.status")).to_have_text("released")
    expect(row.locator("td.num-submissions")).to_have_text("0")
    camera.shot(grader, "formgrader")

    row.locator("td.collect a").click()
    expect(fg.locator(".modal.in")).to_contain_text(
        f"Successfully collected submissions of '{ASSIGNMENT}'"
    )
    expect(fg.locator(".modal.in")).to_contain_text(f"Collecting submission: {student}")
    expect(fg.locator(".modal.in").get_by_role("button", name="OK")).to_be_enabled()
    camera.shot(grader, "formgrader-collected")
    close_modal(fg)
    expect(row.locator("td.num-submissions")).to_have_text("1")

    row.locator("td.num-submissions a").click()
    expect(fg.get_by_role("heading", name="Manage Submissions")).to_be_visible()
    sub = fg.locator("#main-table tr", has_text=student)
    expect(sub.locator("td.status")).to_have_text("needs autograding")
    camera.shot(grader, "formgrader-submission")

    sub.locator("td.autograde a").click()
    expect(fg.locator(".modal.in")).to_contain_text(
        f"Successfully autograded '{ASSIGNMENT}' for student '{student}'", timeout=120_000
    )
    close_modal(fg)
    expect(sub.locator("td.status")).to_have_text("graded")
    # 2 autograded points for square(); the written answer waits for manual grading
    expect(sub.locator("td.score")).to_have_text("2 / 3")
    camera.shot(grader, "formgrader-autograded")


def test_student_submits_and_instructor_grades_in_the_browser(browser, inst, released, camera):
    with camera.on_failure("journey"):
        student_submits(browser, inst, camera, "nico")
        instructor_grades(browser, inst, camera, "vera", "nico")


def test_student_is_refused_the_formgrader(browser, inst, camera):
    with camera.on_failure("refused"):
        student_refused(browser, inst, camera, "lena")


def student_refused(browser, inst: Installation, camera: Camera, name: str) -> None:
    page = new_page(browser)
    log_in(page, inst, name)
    wait_for_lab(page, f"/user/{name}/")
    response = page.goto(f"{inst.url}services/{COURSE}/formgrader")
    assert response.status == 403, (response.status, page.url)
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        f"403 : You do not have permission to access JupyterHub service {COURSE}"
    )
    expect(page.get_by_text("Manage Assignments")).to_have_count(0)
    assert page.locator("iframe").count() == 0
    camera.shot(page, "student-refused-formgrader")
