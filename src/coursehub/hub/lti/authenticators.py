"""The LMS authenticators: ltiauthenticator's LTI 1.1 and 1.3 classes with coursehub's
rules (the launch's decision, durable nonces, limits on course creation)."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import replace
from pathlib import Path

from jupyterhub.auth import Authenticator
from jupyterhub.utils import url_path_join
from ltiauthenticator.lti11.auth import LTI11Authenticator
from ltiauthenticator.lti13.auth import LTI13Authenticator
from ltiauthenticator.lti13.handlers import LTI13ConfigHandler
from ltiauthenticator.utils import convert_request_to_dict
from tornado import web
from traitlets import Integer, Set, Unicode

from ...hosting import HostUnsupported
from ...lti.courses import LaunchContextError
from ...lti.hosts import policy_for
from ...lti.identity import LaunchIdentityError, LmsPeople, NameTakenError, own_name
from ...lti.landing import write_assignments_workspace
from ...lti.launch import (
    Decision,
    LaunchRefused,
    apply_to_site,
    decide,
    landing_path,
    lti11_launch,
    lti13_launch,
)
from ...lti.limits import CourseCreations, CreationLimits
from ...lti.nonces import NonceStore
from ...lti.outcomes import OutcomeError, OutcomeStore
from ...site import load_site
from ...sitefile import change_site
from ..live import live_handlers
from ..pages import page_handlers
from ..planned import PlanReader
from .handlers import (
    CourseLTI11ConfigHandler,
    CourseLTI11LaunchHandler,
    CourseLTI13CallbackHandler,
    CourseLTI13LoginInitHandler,
    CoursePreparingHandler,
    OpenFromLMSHandler,
    ToolJWKSHandler,
)

DEPLOYMENT_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"


class _CourseLaunch(PlanReader, Authenticator):
    """What both LTI versions do once a launch is verified (the authenticators' common base).

    The site file a launch changes, and how the change is applied, are the target's
    (`self.host`): the same launch works wherever the hub runs.
    """

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
        return username in self.plan.people

    async def carry_out(self, handler, launch) -> dict:
        """Decide and apply a verified launch; returns the authentication dict."""
        try:
            site_file = self.host.site_file()
        except HostUnsupported as err:  # this hub cannot apply a launch where it runs
            self.log.error("LTI launch of %s cannot be applied: %s", launch.name, err)
            raise web.HTTPError(
                503, "This hub cannot take LMS launches now: %s", str(err)
            ) from None
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
        people = LmsPeople(Path(self.plan.paths.lti_people))
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
            CreationLimits.of(self.plan.auth),
            existing={c.id for c in site.courses},
        )

    def _check_outcome_hosts(self, launch, decision: Decision) -> None:
        """Say in the log, at the launch, when its grades will not be sent where it says."""
        policy = policy_for(self.plan.auth)
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
            write_assignments_workspace(self.plan, name, course_id)
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            self.log.warning("LTI launch: no assignments workspace for %s: %s", name, err)

    def _base_url(self) -> str:
        return self.plan.base_url

    def _write_back(self, site_file: str, decision: Decision) -> None:
        change_site(site_file, lambda data: apply_to_site(data, decision))

    def _join(self, site_file: str, decision: Decision) -> None:
        """Membership in a course the hub knows: users, groups, gradebook, live."""
        self._write_back(site_file, decision)
        for line in self.host.apply_roster(site_file):
            self.log.info("LTI launch applied: %s", line)

    def _apply_in_background(self, site_file: str, course_id: str) -> None:
        """Bring the installation to the site file with the new course: its folders and
        gradebook, the course loaded into this hub (POST /hub/coursehub/courses) and its
        grader server started. It runs apart from the hub so that the launch's answer
        (the preparing page) does not wait for it."""
        self.host.apply_in_background(site_file)
        self.log.info(
            "LTI launch: creating course %s (folders, gradebook, grader server)", course_id
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
        return f"{launch.issuer} {self.plan.auth.client_id}"

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
        accepted = self.plan.auth.deployment_ids
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
