"""The HTML pages coursehub serves, and the Content-Security-Policy they are sent with.

Text on these pages comes from the site file (org, course titles) and from LMS
launches (context titles): it is shown as text, never as markup, and no page runs a
script it did not load from the hub itself.

- coursehub's own pages (the LTI "preparing" and "open from your LMS" pages, and the
  error pages of coursehub's handlers) are templates in `pages/`, rendered by an
  autoescaping Jinja2 environment; they have no inline script or style at all (the
  preparing page polls from `static/preparing.js`), and are sent with a policy whose
  `script-src` is `'self'` only.
- JupyterHub's own pages that coursehub serves (the home page, the password login
  page) are JupyterHub's templates, with inline scripts of JupyterHub's own. They are
  sent with a policy that allows, besides the hub's static files, only the scripts
  that carry this response's nonce; `ScriptNonce` puts the nonce on each `<script>`
  a template's source writes, before the template is compiled, so a value a page
  shows (escaped into text by the autoescaping) can never carry it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from functools import cache
from http.client import responses
from pathlib import Path
from typing import Any

import jinja2
from jinja2.ext import Extension
from jupyterhub.handlers.pages import HomeHandler, SpawnHandler, SpawnPendingHandler
from jupyterhub.utils import url_path_join
from tornado import web

PAGES = Path(__file__).parent / "pages"  # coursehub's own page templates
STATIC = Path(__file__).parent / "static"  # their script and style sheet
STATIC_PATH = "/coursehub/static/"  # under the hub's prefix (/hub/)


# The style attributes JupyterHub's own templates write (spawn_pending.html, token.html):
# allowed by their hash on the pages of JupyterHub's templates, and no other.
JUPYTERHUB_STYLE_ATTRIBUTES = ("display: none;",)


def _hash_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_policy(report_uri: str, nonce: str | None = None) -> str:
    """The Content-Security-Policy of a page coursehub serves: everything from the hub
    itself, no inline script, no plugins, no framing, no other base URL, forms only to
    the hub. With `nonce` (a page of JupyterHub's templates): also the scripts that carry
    it, and the few style attributes those templates write."""
    script = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    style = "'self'"
    if nonce:
        hashes = " ".join(_hash_source(a) for a in JUPYTERHUB_STYLE_ATTRIBUTES)
        style += f" 'unsafe-hashes' {hashes}"  # 'unsafe-hashes': attributes, by hash only
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {script}",
            f"style-src {style}",
            "img-src 'self' data:",  # Bootstrap's style sheet draws its icons as data: SVG
            "font-src 'self'",
            "connect-src 'self'",  # the preparing page asks the hub; JupyterHub's API calls
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"report-uri {report_uri}",  # JupyterHub logs each violation it gets
        ]
    )


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(PAGES)),
    autoescape=True,  # every value is text: titles and names come from the site and the LMS
    undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
)


def render_page(name: str, **ns: Any) -> str:
    """One of coursehub's own pages (`pages/NAME`), every value escaped."""
    return _env.get_template(name).render(**ns)


@cache
def _version(path: str) -> str:
    return hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:12]


class ScriptNonce(Extension):
    """Puts the response's CSP nonce on every `<script>` a template's source writes.

    Applied to the source before it is compiled, so it reaches only the template's own
    scripts: a value the page shows is escaped into text and never becomes a script,
    let alone one with the nonce. A page rendered without a nonce gets `nonce=""`,
    which allows nothing where a nonce is required and changes nothing elsewhere.
    """

    _SCRIPT = re.compile(r"<script\b", re.IGNORECASE)

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is not None and not name.endswith(".html"):
            return source
        return self._SCRIPT.sub("<script nonce=\"{{ csp_nonce | default('') }}\"", source)


class PagePolicy:
    """For a JupyterHub handler (put it first among the bases): sends `page_policy`,
    renders coursehub's own pages, and shows errors on coursehub's error page. A handler
    that renders JupyterHub's templates sets `jupyterhub_templates`: its policy then
    also allows the scripts with this response's nonce, which its templates get."""

    jupyterhub_templates = False  # True: JupyterHub's templates, with their inline scripts

    @property
    def csp_nonce(self) -> str:
        # made once per response; set_default_headers runs again on an error
        nonce = self.__dict__.get("_coursehub_csp_nonce")
        if nonce is None:
            nonce = self.__dict__["_coursehub_csp_nonce"] = secrets.token_urlsafe(18)
        return nonce

    @property
    def content_security_policy(self) -> str:
        # JupyterHub's set_default_headers sends this property
        nonce = self.csp_nonce if self.jupyterhub_templates else None
        return page_policy(self.csp_report_uri, nonce)

    @property
    def template_namespace(self) -> dict[str, Any]:
        ns = super().template_namespace
        ns["csp_nonce"] = self.csp_nonce
        return ns

    def coursehub_static_url(self, path: str) -> str:
        prefix = url_path_join(self.hub.base_url, STATIC_PATH)
        return f"{prefix}{path}?v={_version(path)}"

    def write_page(self, name: str, **ns: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.write(
            render_page(
                name,
                static_url=self.coursehub_static_url,
                hub_static_url=self.static_url,
                **ns,
            )
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JupyterHub's error page has inline scripts: coursehub's own has none. The
        message is the HTTPError's (text, escaped); anything else says only its status."""
        exception = (kwargs.get("exc_info") or (None, None, None))[1]
        status_message = responses.get(status_code, "Error")
        message = ""
        if isinstance(exception, web.HTTPError):
            message = exception.get_message() or ""
            status_message = exception.reason or status_message
            for key, value in (getattr(exception, "headers", None) or {}).items():
                self.set_header(key, value)
            self.clear_header("Content-Length")
        self.write_page(
            "error.html",
            status_code=status_code,
            status_message=status_message,
            message=message,
        )


class StaticHandler(web.StaticFileHandler):
    """GET /hub/coursehub/static/...: the pages' script and style sheet."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")


class CourseHomeHandler(PagePolicy, HomeHandler):
    """GET /hub/home: JupyterHub's home page (with coursehub's courses), under the policy."""

    jupyterhub_templates = True


class CourseSpawnHandler(PagePolicy, SpawnHandler):
    """/hub/spawn/NAME: where a student's LMS launch lands (their server is started)."""

    jupyterhub_templates = True


class CourseSpawnPendingHandler(PagePolicy, SpawnPendingHandler):
    """/hub/spawn-pending/NAME: JupyterHub's page while a server starts, under the policy."""

    jupyterhub_templates = True


def with_page_policy(handlers: list[tuple]) -> list[tuple]:
    """An authenticator's handlers, with its login page (JupyterHub's template) sent
    under the policy; coursehub's own handlers have it already."""
    out = []
    for pattern, handler, *rest in handlers:
        if pattern == "/login" and not issubclass(handler, PagePolicy):
            handler = type(
                f"Course{handler.__name__}", (PagePolicy, handler), {"jupyterhub_templates": True}
            )
        out.append((pattern, handler, *rest))
    return out


def page_handlers() -> list[tuple]:
    """The handlers of every coursehub hub: the home page, the pages a launch lands on
    (JupyterHub's own, under the policy) and the pages' static files.

    Authenticators' handlers come before JupyterHub's own, so these are the ones that
    answer these paths (the same patterns as JupyterHub's)."""
    return [
        ("/home", CourseHomeHandler),
        ("/spawn", CourseSpawnHandler),
        ("/spawn/([^/]+)", CourseSpawnHandler),
        ("/spawn/([^/]+)/([^/]+)", CourseSpawnHandler),
        ("/spawn-pending/([^/]+)", CourseSpawnPendingHandler),
        ("/spawn-pending/([^/]+)/([^/]+)", CourseSpawnPendingHandler),
        (STATIC_PATH + "(.*)", StaticHandler, {"path": str(STATIC)}),
    ]


__all__ = [
    "CourseHomeHandler",
    "CourseSpawnHandler",
    "CourseSpawnPendingHandler",
    "PagePolicy",
    "ScriptNonce",
    "page_handlers",
    "page_policy",
    "render_page",
    "with_page_policy",
]
