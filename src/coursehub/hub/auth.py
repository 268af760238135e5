"""Authenticators that let in exactly the people of the site file.

Roles and course membership come from the site file (through the Plan and the
hub's groups), never from what a person types at the login form.
"""

from __future__ import annotations

import asyncio
import dbm
import os
import secrets
import tempfile
from collections.abc import Iterable
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace

from firstuseauthenticator import FirstUseAuthenticator
from jupyterhub.auth import Authenticator
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Set, Unicode

from ..password_links import LinkStore, needs_link
from ..plan import Plan
from .live import live_handlers
from .pages import page_handlers, with_page_policy
from .planned import PlanReader
from .set_password import set_password_handlers

# What an admin or instructor sees when no link set their password (nobody may claim it).
LINK_REQUIRED = (
    "This account's password is set through a set-password link, not by a first login. "
    "Ask the person who runs this hub for one: 'coursehub password-link {name}' makes it "
    "for you alone."
)


class _SiteOnly(PlanReader, Authenticator):
    """Only the site file's people may log in; names outside it are refused
    before anything about them is stored."""

    site_people = Set(
        help="Everyone the site file allows to log in (admins and people), at hub start.",
    ).tag(config=True)

    def _people(self) -> set[str]:
        if self.plan_file:
            return set(self.plan.people)
        return set(self.site_people)

    def check_allowed(self, username, authentication=None):
        return username in self._people()

    def get_handlers(self, app):
        # the login page and the home page are sent under coursehub's page policy
        return with_page_policy([*super().get_handlers(app), *live_handlers(), *page_handlers()])

    async def authenticate(self, handler, data):
        # refuse before the password is looked at: first-use would store one
        username = self.normalize_username(data.get("username", ""))
        if username not in self._people():
            self.log.warning("Refused login for %r: not in the site file", username)
            return None
        return await super().authenticate(handler, data)


class CourseFirstUseAuthenticator(_SiteOnly, FirstUseAuthenticator):
    """FirstUseAuthenticator limited to the site file's people: the first login
    of a listed student sets their password; nobody else can claim a name.

    Admins and instructors never get their password from a first login: only a
    set-password link (`coursehub password-link NAME`) sets it, and their login is
    refused while their password was not set by one (also a password they set by a
    first login while they were a student: whoever typed the name first may hold it).
    """

    password_links_file = Unicode(
        help="""coursehub's set-password links (SQLite, 0600): their codes' hashes, and
        whose password a link set. Empty: next to the password database.""",
    ).tag(config=True)

    def _links(self) -> LinkStore:
        return LinkStore(self.password_links_file or f"{self.dbm_path}.links.sqlite")

    def _has_password(self, name: str) -> bool:
        with dbm.open(self.dbm_path, "c", 0o600) as db:
            return name.encode("utf8") in db

    def get_handlers(self, app):
        return [*super().get_handlers(app), *set_password_handlers()]

    def _needs_link(self, name: str) -> bool:
        if self.plan_file:  # read at every login: someone made an instructor counts at once
            plan = self.plan
            return name in plan.people and needs_link(plan, name)
        return name in self.admin_users  # without a Plan only the admins are known

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        if self._needs_link(name) and not self._links().set_by_link(name):
            handler.custom_login_error = LINK_REQUIRED.format(name=name)
            self.log.warning(
                "Refused login for %r: an admin or instructor whose password no "
                "set-password link set",
                name,
            )
            return None
        had_password = self._has_password(name)
        result = await super().authenticate(handler, data)
        if result and not had_password:
            # a first login set it: whatever a link set before no longer holds
            self._links().forget(name)
        return result

    def set_password_from_link(self, name: str, password: str) -> None:
        """Store `name`'s new password where login checks it, and that a link set it."""
        if not self._validate_password(password):
            raise ValueError(f"a password needs at least {self.min_password_length} characters")
        self.reset_password(name, password)  # firstuseauthenticator's own: bcrypt in its dbm
        self._links().mark_set(name)

    def delete_user(self, user):
        super().delete_user(user)
        self._links().forget(user.name)


class CourseSharedPasswordAuthenticator(_SiteOnly, SharedPasswordAuthenticator):
    """The demo's shared password, limited to the site file's people."""


def claimable_by_first_login(plan: Plan, names: Iterable[str]) -> list[str]:
    """Which of `names` a stranger's first login would claim, with the authenticator and
    configuration the hub gets for `plan` (doctor's guard against a regression), tried
    on a scratch password database: nothing of the installation is read or written."""
    from ..paths import layout_paths
    from ..secrets import secret_names
    from .config import hub_config

    names = list(names)
    if not names:
        return []
    with tempfile.TemporaryDirectory(prefix="coursehub-claim-") as scratch:
        where = layout_paths(scratch)
        os.mkdir(where.state, 0o700)
        Path(where.plan_file).write_text(plan.to_json())
        fake = {n: "00" * 32 for n in secret_names(list(plan.courses))}  # not used to log in
        c = hub_config(plan, where.plan_file, fake, user_env="")
        c.FirstUseAuthenticator.dbm_path = where.passwords_dbm
        c.CourseFirstUseAuthenticator.password_links_file = where.password_links
        module, _, cls = c.JupyterHub.authenticator_class.rpartition(".")
        authenticator = getattr(import_module(module), cls)(config=c)
        password = secrets.token_urlsafe(48)  # longer than any minimum length
        claimed = []
        for name in names:
            handler = SimpleNamespace(custom_login_error="")
            got = asyncio.run(
                authenticator.authenticate(handler, {"username": name, "password": password})
            )
            with dbm.open(where.passwords_dbm, "c", 0o600) as db:
                stored = name.encode("utf8") in db
            if got or stored:
                claimed.append(name)
    return claimed
