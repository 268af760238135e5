"""GET/POST /hub/coursehub/set-password: a one-time link sets one person's password.

The operator makes the link with `coursehub password-link NAME` (coursehub.password_links).
GET checks the code and shows the form; POST checks it again, then spends it and stores
the password where the first-use authenticator checks it (its own dbm, through its own
reset_password). A wrong, expired, spent or locked code gets a page that says so and
what to do; the code never appears in a log (the hub scrubs 'code' query parameters) and
the page sends no Referer (it would carry the code to the static files).
"""

from __future__ import annotations

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join

from ..password_links import EXPIRED, LOCKED, OK, SET_PASSWORD_PATH, SPENT, WRONG, LinkStore
from .pages import PagePolicy
from .spawner import load_plan

TEMPLATE = "coursehub-set-password.html"

REFUSALS = {
    WRONG: "This link is not valid: it is not the latest link made for this name, or it was "
    "changed on the way.",
    EXPIRED: "This link has expired.",
    SPENT: "This link was used already: a link sets a password once.",
    LOCKED: "This link is locked: too many wrong codes were tried with it.",
}


class SetPasswordHandler(PagePolicy, BaseHandler):
    """The page of a set-password link (the hub's own xsrf check guards the POST), sent
    under coursehub's page policy."""

    jupyterhub_templates = True  # JupyterHub's page.html, with its own inline scripts

    def _store(self) -> LinkStore:
        return LinkStore(self.authenticator.password_links_file)

    def _verdict(self, name: str, code: str, spend: bool = False) -> str:
        # a name the site file no longer has gets a link's plain refusal
        if name not in load_plan(self.authenticator.plan_file).people:
            return WRONG
        store = self._store()
        verdict = store.spend(name, code) if spend else store.check(name, code)
        if verdict != OK:
            self.log.warning("coursehub: set-password link for %r refused: %s", name[:64], verdict)
        return verdict

    async def _page(self, state: str, status: int = 200, **ns) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        html = await self.render_template(
            TEMPLATE,
            state=state,
            action=url_path_join(self.hub.base_url, SET_PASSWORD_PATH),
            min_length=self.authenticator.min_password_length,
            **ns,
        )
        self.finish(html)

    async def _refuse(self, verdict: str) -> None:
        await self._page("refused", status=403, message=REFUSALS[verdict])

    async def get(self) -> None:
        name, code = self.get_argument("name", ""), self.get_argument("code", "")
        verdict = self._verdict(name, code)
        if verdict != OK:
            return await self._refuse(verdict)
        await self._page("form", person=name, code=code)

    async def post(self) -> None:
        name, code = self.get_body_argument("name", ""), self.get_body_argument("code", "")
        password = self.get_body_argument("password", "", strip=False)
        confirm = self.get_body_argument("confirm", "", strip=False)
        verdict = self._verdict(name, code)
        if verdict != OK:
            return await self._refuse(verdict)
        minimum = self.authenticator.min_password_length
        error = None
        if len(password) < minimum:
            error = f"The password is too short: at least {minimum} characters."
        elif password != confirm:
            error = "The two passwords differ: type the same password twice."
        if error:  # the link stays usable
            return await self._page("form", status=400, person=name, code=code, error=error)
        verdict = self._verdict(name, code, spend=True)
        if verdict != OK:
            return await self._refuse(verdict)
        self.authenticator.set_password_from_link(name, password)
        self.log.info("coursehub: %s set their password through a set-password link", name)
        await self._page("done", person=name, login_url=self.settings["login_url"])


def set_password_handlers() -> list[tuple[str, type]]:
    return [(SET_PASSWORD_PATH, SetPasswordHandler)]
