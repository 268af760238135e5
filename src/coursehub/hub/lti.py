"""LMS launches into the hub: ltiauthenticator's LTI classes with coursehub's rules.

ltiauthenticator checks the launch (consumer key, required fields, timestamp
window, OAuth 1 signature). On top of it coursehub:

- refuses a replayed nonce durably (SQLite in the state folder, recorded only
  after the signature checked, so a hub restart forgets nothing);
- decides the person, the course and the role with coursehub.lti.launch (the
  LMS user id and the signed roles only; custom parameters never decide);
- writes membership changes back to the site file and applies them to the
  running hub (users, groups, gradebook) without a restart;
- creates the course of an instructor's first launch from an unknown context:
  site file, then `coursehub up` applies it (folders, gradebook, the course's
  roles, groups and service loaded into this running hub, its grader server
  started: no restart, nobody's session dropped); the person is logged in
  already and a page waits for the course, then opens its formgrader; a launch
  over auth.course_creation's limits (per LMS an hour, in all) is refused with a
  page that says so (coursehub.lti.limits), before anything is written;
- notes where a student's grades go, logging at once a URL whose host the grade
  policy refuses (coursehub.lti.hosts; the sender checks it again each time);
- sends the person where they work: students to their server's Assignments
  panel on the launch's course (a server that started before the launch joined
  them to the course is restarted, or it could not read the course), instructors
  to the course's formgrader.

LTI 1.3 (CourseLTI13Authenticator): ltiauthenticator runs the OIDC login
(state and nonce cookies) and checks the id_token (signature against the
platform's JWKS, RS256 only, issuer, audience, expiry, age, required claims);
coursehub checks the deployment id against the site file's auth.deployment_ids
(when listed), adds the durable nonce store and serves its own public key
(GET /hub/lti13/jwks) for the LMS to check grade-passback requests.

A direct visit to /hub/login shows a page that says to open coursehub from
the LMS: there is no password to type.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from ltiauthenticator.lti11.auth import LTI11Authenticator
from ltiauthenticator.lti11.handlers import LTI11AuthenticateHandler, LTI11ConfigHandler
from ltiauthenticator.lti13.auth import LTI13Authenticator
from ltiauthenticator.lti13.handlers import (
    LTI13CallbackHandler,
    LTI13ConfigHandler,
    LTI13LoginInitHandler,
)
from ltiauthenticator.utils import convert_request_to_dict
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from traitlets import Integer, Set, Unicode
from traitlets.config import Config

from ..lti.courses import LaunchContextError
from ..lti.credentials import load_lti_credentials
from ..lti.identity import LaunchIdentityError, LmsPeople, NameTakenError, own_name
from ..lti.keys import load_tool_key, public_jwks
from ..lti.landing import write_assignments_workspace
from ..lti.launch import (
    Decision,
    LaunchRefused,
    apply_to_site,
    decide,
    landing_path,
    lti11_launch,
    lti13_launch,
)
from ..lti.limits import CourseCreations, CreationLimits
from ..lti.nonces import NonceStore
from ..lti.outcomes import OutcomeError, OutcomeStore
from ..names import course_id_problem
from ..plan import Plan
from ..site import load_site
from ..sitefile import change_site
from .live import live_handlers
from .pages import PagePolicy, page_handlers
from .spawner import load_plan

LMS_PEOPLE_FILE = "lti-people.json"  # in the state folder: whose each launch-made name is

NONCE_DB = "lti-nonces.sqlite"
CREATIONS_DB = "lti-course-creations.sqlite"
DEPLOYMENT_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
OUTCOMES_DB = "lti-outcomes.sqlite"


class _CourseLaunch(Authenticator):
    """What both LTI versions do once a launch is verified (the authenticators' common base)."""

    plan_file = Unicode(help="The Plan written by coursehub (state/plan.json).").tag(config=True)

    data_dir = Unicode(
        help="The installation's data folder: its site file is changed and applied from here.",
    ).tag(config=True)

    org = Unicode(help="The organisation's name, shown on the login page.").tag(config=True)

    nonce_db = Unicode(
        help="SQLite file of used launch nonces (mode 0600), kept across hub restarts.",
    ).tag(config=True)

    outcomes_db = Unicode(
        help="SQLite file of where each student's grades go back to the LMS (mode 0600).",
    ).tag(config=True)

    creations_db = Unicode(
        help="SQLite file of the courses launches created (mode 0600), for auth.course_creation.",
    ).tag(config=True)

    site_people = Set(
        help="Ignored: with LMS launches the site file grows with the launches (see plan_file).",
    ).tag(config=True)

    def check_allowed(self, username, authentication=None):
        # a verified launch is the permission; anyone else must be in the site file
        if authentication is not None and authentication.get("name") == username:
            return True
        return username in load_plan(self.plan_file).people

    def _site_file(self) -> str:
        return json.loads(Path(self.data_dir, "state", "runtime.json").read_text())["site_file"]

    async def carry_out(self, handler, launch) -> dict:
        """Decide and apply a verified launch; returns the authentication dict."""
        site_file = self._site_file()
        try:
            site = load_site(site_file)
            launch, claim = self._own_name(launch, site)
            decision = decide(launch, site)
            if decision.create_course:  # over a limit: refused before anything is recorded
                await asyncio.to_thread(self._admit_course, launch, decision, site)
            claim()
        except LaunchRefused as refused:
            self.log.warning("LTI launch of %s refused: %s", launch.name, refused.message)
            error = web.HTTPError(refused.status, "%s", refused.message)
            if getattr(refused, "retry_after", None):
                error.headers = {"Retry-After": str(refused.retry_after)}  # the page sends it
            raise error from None
        except LaunchContextError as err:
            raise web.HTTPError(400, "%s", str(err)) from None
        if launch.outcome is not None and decision.role == "student" and launch.assignment:
            await asyncio.to_thread(self._check_outcome_hosts, launch, decision)
            # remembered even if refused: each send checks again, and the outbox says why
            OutcomeStore(self.outcomes_db).remember(
                decision.course_id, decision.name, launch.assignment, launch.issuer, launch.outcome
            )
        if decision.create_course:
            try:
                await asyncio.to_thread(self._write_back, site_file, decision)
            except BaseException:
                CourseCreations(self.creations_db).forget(decision.course_id)
                raise
            self._apply_in_background(site_file, decision.course_id)
            handler.coursehub_landing = url_path_join(
                self._base_url(), "hub/lti/preparing", decision.course_id
            )
        else:
            if decision.join:
                await asyncio.to_thread(self._join, site_file, decision)
                if decision.role == "student":
                    await self._restart_to_see(handler, decision)
            if decision.role == "student":
                await asyncio.to_thread(
                    self._assignments_workspace, decision.name, decision.course_id
                )
            handler.coursehub_landing = landing_path(self._base_url(), decision)
        self.log.info(
            "LTI launch: %s as %s of %s%s",
            decision.name,
            decision.role,
            decision.course_id,
            " (new course)" if decision.create_course else (" (joined)" if decision.join else ""),
        )
        return {"name": decision.name}

    def _own_name(self, launch, site):
        """The launch with the person's own hub name (never a name the site has for
        someone else, admins included), and how to record it once the launch is let in."""
        people = LmsPeople(Path(self.data_dir, "state", LMS_PEOPLE_FILE))
        members = {n for c in site.courses for n in (*c.instructors, *c.students)}
        owners = people.owners_or_seed(members, site.admins)
        try:
            name = own_name(
                launch.name, launch.identity, launch.taken_name, set(site.everyone),
                set(site.admins), owners,
            )  # fmt: skip
        except NameTakenError as err:
            raise LaunchRefused(str(err)) from None
        if name != launch.name:
            self.log.warning(
                "LTI launch: %r is the site's for someone else; this LMS person is %r",
                launch.name,
                name,
            )
        return replace(launch, name=name), lambda: people.claim(name, launch.identity, owners)

    def lms_of(self, launch) -> str:
        """The LMS a launch comes from, as auth.course_creation.per_hour counts it."""
        return launch.issuer  # LTI 1.1: the consumer key

    def _admit_course(self, launch, decision: Decision, site) -> None:
        """Record the course this launch creates, or CreationRefused over a limit."""
        CourseCreations(self.creations_db).admit(
            self.lms_of(launch),
            decision.context_id,
            decision.course_id,
            decision.course_title,
            CreationLimits.of(load_plan(self.plan_file).auth),
            existing={c.id for c in site.courses},
        )

    def _check_outcome_hosts(self, launch, decision: Decision) -> None:
        """Say in the log, at the launch, when its grades will not be sent where it says."""
        from ..lti.hosts import policy_for

        policy = policy_for(load_plan(self.plan_file).auth)
        for url in (launch.outcome.service_url, launch.outcome.lineitem):
            if not url:
                continue
            try:
                problem = policy.problem(url)
            except OutcomeError as err:  # the name does not resolve now: each send asks again
                problem = str(err)
            if problem:
                self.log.warning(
                    "LTI launch: %s's scores for %s of %s will not be sent: %s",
                    decision.name,
                    launch.assignment,
                    decision.course_id,
                    problem,
                )

    async def _restart_to_see(self, handler, decision: Decision) -> None:
        """A server keeps the groups it started with, so one that runs since before this
        launch joined the course cannot read the course's exchange. It is stopped here
        (the person's files stay; running kernels stop) and the landing starts it again."""
        user = handler.find_user(decision.name)
        if user is None or not user.spawner.ready:
            return
        self.log.info(
            "LTI launch: restarting %s's server to open %s (it started before joining)",
            decision.name,
            decision.course_id,
        )
        await handler.stop_single_user(user)

    def _assignments_workspace(self, name: str, course_id: str) -> None:
        """The Lab workspace the student lands in (Assignments open, on the launch's
        course); written at every launch, since the person may have closed the panel in
        it since and may come from another course's page now."""
        try:
            write_assignments_workspace(load_plan(self.plan_file), name, course_id)
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            self.log.warning("LTI launch: no assignments workspace for %s: %s", name, err)

    def _base_url(self) -> str:
        return load_plan(self.plan_file).base_url

    def _write_back(self, site_file: str, decision: Decision) -> None:
        change_site(site_file, lambda data: apply_to_site(data, decision))

    def _join(self, site_file: str, decision: Decision) -> None:
        """Membership in a course the hub knows: users, groups, gradebook, live."""
        from ..targets.local.apply import apply_site
        from ..targets.local.runtime import Installation

        self._write_back(site_file, decision)
        applied = apply_site(Installation(self.data_dir), site_file)
        for line in applied.lines():
            self.log.info("LTI launch applied: %s", line)

    def _apply_in_background(self, site_file: str, course_id: str) -> None:
        """`coursehub up` on the running installation: it makes the course's folders and
        gradebook, loads the course into this hub (POST /hub/coursehub/courses) and has
        the supervisor start its grader server. It runs apart from the hub so that the
        launch's answer (the preparing page) does not wait for it."""
        log = Path(self.data_dir, "logs", "lti-apply.log")
        with open(log, "ab") as out:
            os.chmod(log, 0o600)
            subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [sys.executable, "-m", "coursehub", "up", "--site", site_file,
                 "--data-dir", self.data_dir, "--detach"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not a child of the hub: a hub stop leaves it be
                env={k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")},
            )  # fmt: skip
        self.log.info(
            "LTI launch: creating course %s (folders, gradebook, grader server)", course_id
        )


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
        plan = load_plan(self.authenticator.plan_file)
        course = plan.courses.get(course_id)
        if course is not None and self.current_user.name not in course.instructors:
            raise web.HTTPError(403, "You do not teach %s.", course_id)
        formgrader = f"{plan.base_url}services/{course_id}/formgrader"
        if self.get_argument("ready", ""):
            ready = course is not None and course_id in self.services
            if ready:
                try:
                    r = await AsyncHTTPClient().fetch(
                        f"{course.url}{course.prefix}api", request_timeout=3, raise_error=False
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


class CourseLTI11Authenticator(_CourseLaunch, LTI11Authenticator):
    """LTI 1.1 launches (signed with the consumer key's shared secret) into coursehub."""

    username_key = Unicode("user_id", help="Only the LMS's stable user id names a person.").tag(
        config=True
    )

    def login_url(self, base_url):
        return url_path_join(base_url, "login")

    def get_handlers(self, app):
        return [
            ("/lti/launch", CourseLTI11LaunchHandler),
            ("/lti11/config", CourseLTI11ConfigHandler),
            (r"/lti/preparing/([^/]+)", CoursePreparingHandler),
            ("/login", OpenFromLMSHandler),
            *live_handlers(),
            *page_handlers(),
        ]

    async def authenticate(self, handler, data=None):
        # ltiauthenticator: consumer key, required fields, timestamp window, signature
        await super().authenticate(handler, data)
        args = convert_request_to_dict(handler.request.arguments)
        if not NonceStore(self.nonce_db).use(
            args["oauth_consumer_key"], args["oauth_nonce"], int(args["oauth_timestamp"])
        ):
            self.log.warning("LTI 1.1 launch refused: nonce used already (a replay)")
            raise web.HTTPError(401, "This launch was used already; start again from the LMS.")
        try:
            launch = lti11_launch(args)
        except LaunchIdentityError as err:
            raise web.HTTPError(400, "%s", str(err)) from None
        return await self.carry_out(handler, launch)


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


class CourseLTI13Authenticator(_CourseLaunch, LTI13Authenticator):
    """LTI 1.3 launches (OIDC, id_tokens signed by the LMS's key) into coursehub."""

    username_key = Unicode("sub", help="Only the LMS's stable user id (sub) names a person.").tag(
        config=True
    )

    tool_jwks = Unicode(
        help="coursehub's public JSON Web Key Set (from its tool key in the secrets folder).",
    ).tag(config=True)

    nonce_window = Integer(
        600,
        help="Seconds an id_token's nonce is kept as used: at least the id_token's accepted age.",
    ).tag(config=True)

    login_handler = CourseLTI13LoginInitHandler
    callback_handler = CourseLTI13CallbackHandler

    def lms_of(self, launch) -> str:
        # the platform's issuer and coursehub's client id there (the only one accepted)
        return f"{launch.issuer} {load_plan(self.plan_file).auth.get('client_id', '')}"

    def get_handlers(self, app):
        return [
            (self.login_url(""), CourseLTI13LoginInitHandler),
            (self.callback_url(""), CourseLTI13CallbackHandler),
            (self.config_json_url(""), LTI13ConfigHandler),
            ("/lti13/jwks", ToolJWKSHandler),
            (r"/lti/preparing/([^/]+)", CoursePreparingHandler),
            ("/login", OpenFromLMSHandler),
            *live_handlers(),
            *page_handlers(),
        ]

    async def authenticate(self, handler, data=None):
        # ltiauthenticator checked the id_token and its cookie-bound nonce; the nonce is
        # also recorded durably, so the same id_token is refused after a hub restart too
        claims = data or {}
        accepted = load_plan(self.plan_file).auth.get("deployment_ids") or []
        deployment = claims.get(DEPLOYMENT_CLAIM)
        if accepted and deployment not in accepted:
            self.log.warning("LTI 1.3 launch refused: deployment %r not accepted", deployment)
            raise web.HTTPError(
                403,
                "This LMS deployment of coursehub (%s) is not one this hub accepts; "
                "an administrator can add it to auth.deployment_ids in the site file.",
                deployment,
            )
        nonce, issuer = claims.get("nonce"), claims.get("iss", "")
        if not isinstance(nonce, str) or not nonce:
            raise web.HTTPError(400, "The launch's id_token has no nonce.")
        store = NonceStore(self.nonce_db, window=self.nonce_window)
        if not store.use(issuer, nonce, int(claims.get("iat", 0))):
            self.log.warning("LTI 1.3 launch refused: nonce used already (a replay)")
            raise web.HTTPError(401, "This launch was used already; start again from the LMS.")
        try:
            launch = lti13_launch(claims)
        except LaunchIdentityError as err:
            raise web.HTTPError(400, "%s", str(err)) from None
        return await self.carry_out(handler, launch)


def lti_config(plan: Plan, plan_file: str, credentials: dict[str, str] | None) -> Config:
    """The LMS authenticator's settings from the Plan (and LTI 1.1's credentials)."""
    c = Config()
    state = plan.paths.state
    for cls in ("CourseLTI11Authenticator", "CourseLTI13Authenticator"):
        section = c[cls]
        section.plan_file = plan_file
        section.data_dir = plan.paths.data_dir
        section.nonce_db = f"{state}/{NONCE_DB}"
        section.outcomes_db = f"{state}/{OUTCOMES_DB}"
        section.creations_db = f"{state}/{CREATIONS_DB}"
        section.org = plan.org
    if plan.auth["type"] == "lti11":
        creds = credentials or load_lti_credentials(plan.paths.secrets)
        c.CourseLTI11Authenticator.consumers = {creds["consumer_key"]: creds["shared_secret"]}
        c.CourseLTI11Authenticator.config_title = plan.org
    if plan.auth["type"] == "lti13":
        a = c.CourseLTI13Authenticator
        a.issuer = plan.auth["issuer"]
        a.client_id = {plan.auth["client_id"]}
        a.jwks_endpoint = plan.auth["jwks_url"]
        a.authorize_url = plan.auth["authorize_url"]
        a.tool_name = plan.org
        a.tool_jwks = json.dumps(public_jwks(load_tool_key(plan.paths.secrets)))
    return c
