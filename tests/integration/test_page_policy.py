"""JupyterHub's login form and home page under coursehub's page policy, in Chromium.

The login page and the home page are JupyterHub's templates, with inline scripts of
JupyterHub's own: they run with the response's nonce, and nothing else inline does.
The org's name and a course title full of markup are shown as text; the browser
reports no violation of the policy, no script of the site's text runs (no dialog), and
the form still logs in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from browser import CHROMIUM, CHROMIUM_ARGS
from pagecheck import assert_strict_policy

pytestmark = pytest.mark.integration

if not Path(CHROMIUM).exists():
    pytest.skip(f"needs Debian's Chromium at {CHROMIUM}", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("servers run under one uid per person: needs root", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

ORG = "Policy <script>alert('org')</script> & \"Co\""
TITLE = "<img src=x onerror=alert('title')> `id` $(id) ${HOME}"
SITE = {
    "org": ORG,
    "auth": {"type": "first-use"},
    "courses": [{"id": "geo", "title": TITLE, "instructors": [], "students": ["rosa"]}],
}


def test_login_and_home_run_only_their_own_scripts(inst):
    violations: list[tuple[str, str]] = []
    dialogs: list[str] = []
    policies: dict[str, str] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(30_000)
            page.on(
                "console",
                lambda m: (
                    violations.append((page.url, m.text))
                    if "Content Security Policy" in m.text
                    else None
                ),
            )
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on(
                "response",
                lambda r: (
                    policies.setdefault(
                        r.url.split("?")[0], r.headers.get("content-security-policy", "")
                    )
                    if r.request.resource_type == "document"
                    else None
                ),
            )
            page.goto(f"{inst.url}hub/login?next=%2Fhub%2Fhome")
            expect(page.locator(".announcement")).to_have_text(
                f"{ORG}: log in with your coursehub account"
            )
            page.locator("#username_input").fill("rosa")
            page.locator("#password_input").fill("rosa-policy-page-42")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(r"/hub/home$"))
            card = page.locator(".coursehub-course[data-course='geo']")
            expect(card.locator(".coursehub-title")).to_have_text(TITLE)
            # JupyterHub's inline scripts ran (with the nonce), and its home.js
            assert page.evaluate("typeof window.jhdata") == "object"
            page.wait_for_function("typeof window.require === 'function'")
        finally:
            browser.close()
    assert violations == [] and dialogs == []
    for path in ("hub/login", "hub/home"):
        assert_strict_policy(policies[f"{inst.url}{path}"], nonce=True)
    for log in (inst.data_dir / "logs").rglob("*.log"):  # JupyterHub logs each report
        assert "Content security violation" not in log.read_text(errors="replace"), log
