"""Authenticators that let in exactly the people of the site file.

Roles and course membership come from the site file (through the Plan and the
hub's groups), never from what a person types at the login form.
"""

from __future__ import annotations

from firstuseauthenticator import FirstUseAuthenticator
from jupyterhub.auth import Authenticator
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Set, Unicode

from .live import live_handlers
from .spawner import load_plan


class _SiteOnly(Authenticator):
    """Only the site file's people may log in; names outside it are refused
    before anything about them is stored."""

    site_people = Set(
        help="Everyone the site file allows to log in (admins and people), at hub start.",
    ).tag(config=True)

    plan_file = Unicode(
        help="""The Plan written by coursehub. When set, who may log in is read from it
        on every login, so people added while the hub runs can log in at once.""",
    ).tag(config=True)

    def _people(self) -> set[str]:
        if self.plan_file:
            return set(load_plan(self.plan_file).people)
        return set(self.site_people)

    def check_allowed(self, username, authentication=None):
        return username in self._people()

    def get_handlers(self, app):
        return [*super().get_handlers(app), *live_handlers()]

    async def authenticate(self, handler, data):
        # refuse before the password is looked at: first-use would store one
        username = self.normalize_username(data.get("username", ""))
        if username not in self._people():
            self.log.warning("Refused login for %r: not in the site file", username)
            return None
        return await super().authenticate(handler, data)


class CourseFirstUseAuthenticator(_SiteOnly, FirstUseAuthenticator):
    """FirstUseAuthenticator limited to the site file's people: the first login
    of a listed person sets their password; nobody else can claim a name."""


class CourseSharedPasswordAuthenticator(_SiteOnly, SharedPasswordAuthenticator):
    """The demo's shared password, limited to the site file's people."""
