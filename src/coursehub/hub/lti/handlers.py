"""The LMS login's pages: the launch's landing, the page that waits for a course a
launch is creating, LTI 1.1's tool XML, LTI 1.3's login steps and coursehub's key."""

from __future__ import annotations

import json

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from ltiauthenticator.lti11.handlers import LTI11AuthenticateHandler, LTI11ConfigHandler
from ltiauthenticator.lti13.handlers import LTI13CallbackHandler, LTI13LoginInitHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient

from ...names import course_id_problem
from ...plan import formgrader_path, service_prefix
from ..pages import PagePolicy


class CourseLTI11LaunchHandler(PagePolicy, LTI11AuthenticateHandler):
    """POST /hub/lti/launch: log the person in and send them where the launch decided.

    The LMS's `custom_next` is ignored: where a launch lands is coursehub's decision.
    """

    async def post(self):
        user = await self.login_user()
        if user is None:
            raise web.HTTPError(403, "The launch was not accepted.")
        self.redirect(getattr(self, "coursehub_landing", None) or self.get_next_url(user))


class CoursePreparingHandler(PagePolicy, BaseHandler):
    """GET /hub/lti/preparing/{course}: wait for a course a launch is creating.

    The page's script (static/preparing.js) keeps asking ?ready=1 until the hub has
    the course's service, its grader server answers and the proxy routes it, then
    opens its formgrader.
    """

    @web.authenticated
    async def get(self, course_id: str):
        if course_id_problem(course_id) is not None:  # the URL's text is no course id
            raise web.HTTPError(404, "There is no such course.")
        plan = self.authenticator.plan
        course = plan.courses.get(course_id)
        if course is not None and self.current_user.name not in course.instructors:
            raise web.HTTPError(403, "You do not teach %s.", course_id)
        formgrader = formgrader_path(service_prefix(plan.base_url, course_id))
        if self.get_argument("ready", ""):
            ready = course is not None and course_id in self.services
            if ready:
                try:
                    r = await AsyncHTTPClient().fetch(
                        course.health_url, request_timeout=3, raise_error=False
                    )
                    ready = r.code == 200
                except OSError:
                    ready = False
            if ready:  # and the proxy routes its URL (the hub adds the route after start)
                routes = await self.proxy.get_all_routes()
                ready = any(spec.endswith(course.prefix) for spec in routes)
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.write(json.dumps({"ready": ready, "url": formgrader}))
            return
        self.write_page(
            "preparing.html",
            course_id=course_id,
            formgrader=formgrader,
            poll_url=url_path_join(self.hub.base_url, "lti/preparing", course_id) + "?ready=1",
        )


class CourseLTI11ConfigHandler(LTI11ConfigHandler):
    """GET /hub/lti11/config: ltiauthenticator's configuration XML, with each value
    escaped (ltiauthenticator formats the org's name and the request's host into it as
    they are; a browser runs a script in XML)."""

    def get(self) -> None:
        protocol = self.authenticator.get_uri_scheme(self.request)
        launch_url = (
            f"{protocol}://{self.request.host}{self.application.settings['base_url']}hub/lti/launch"
        )
        a = self.authenticator
        self.set_header("Content-Type", "application/xml")
        self.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        self.write(
            lti11_config_xml(a.config_title, a.config_description, a.config_icon, launch_url)
        )


def lti11_config_xml(title: str, description: str, icon: str, launch_url: str) -> str:
    """LTI 1.1's tool configuration (ltiauthenticator's template), every value as text."""
    from xml.sax.saxutils import escape

    from ltiauthenticator.lti11.templates import LTI11_CONFIG_TEMPLATE

    return LTI11_CONFIG_TEMPLATE.format(
        title=escape(title),
        description=escape(description),
        icon=escape(icon),
        launch_url=escape(launch_url),
    )


class OpenFromLMSHandler(PagePolicy, BaseHandler):
    """GET /hub/login (and an LTI 1.3 login without its parameters): coursehub is opened
    from the LMS, so there is nothing to type here; say so instead of a form that cannot
    work. Someone logged in already goes on to the hub's home."""

    async def get(self):
        if self.current_user is not None:
            self.redirect(self.get_next_url(self.current_user))
            return
        self.write_page("open_from_lms.html", org=self.authenticator.org or "coursehub")

    post = get


class CourseLTI13LoginInitHandler(PagePolicy, LTI13LoginInitHandler):
    """GET or POST /hub/lti13/oauth_login: the LMS's OIDC login initiation. Without the
    LMS's parameters it is a person who came here directly: the friendly page."""

    def post(self):
        if not self.get_argument("iss", "") and not self.get_argument("login_hint", ""):
            self.write_page("open_from_lms.html", org=self.authenticator.org or "coursehub")
            return None
        return super().post()

    get = post


class CourseLTI13CallbackHandler(PagePolicy, LTI13CallbackHandler):
    """POST /hub/lti13/oauth_callback: the checked id_token logs the person in; they land
    where coursehub decided (never where the LMS's target link says)."""

    async def redirect_to_next_url(self, user):
        self.redirect(getattr(self, "coursehub_landing", None) or self.get_next_url(user))


class ToolJWKSHandler(BaseHandler):
    """GET /hub/lti13/jwks: coursehub's public key, for the LMS to check its grade requests."""

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "max-age=300")
        self.write(self.authenticator.tool_jwks)
