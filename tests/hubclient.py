"""A person at the hub: logs in through the login form, starts a server, calls APIs.

Only public interfaces: the login page, the hub's REST API and the servers'
REST APIs, through the proxy, as a browser would.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urljoin, urlparse

import requests


class Person:
    def __init__(self, base_url: str, name: str):
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.name = name
        self.s = requests.Session()

    def url(self, path: str) -> str:
        return urljoin(self.base, path.lstrip("/"))

    def _xsrf(self) -> str:
        return self.s.cookies.get("_xsrf", path="/hub/") or self.s.cookies.get("_xsrf") or ""

    def login(self, password: str) -> requests.Response:
        """Fill in the login form as a browser does. Returns the final response."""
        page = self.s.get(self.url("hub/login"), timeout=10)
        page.raise_for_status()
        return self.s.post(
            self.url("hub/login"),
            data={"username": self.name, "password": password, "_xsrf": self._xsrf()},
            timeout=30,
        )

    def set_password(
        self, link: str, password: str, confirm: str | None = None
    ) -> requests.Response:
        """Open a set-password link and send its form, as a browser does."""
        query = parse_qs(urlparse(link).query)
        page = self.s.get(link, timeout=10)
        if page.status_code != 200:
            return page
        return self.s.post(
            self.url("hub/coursehub/set-password"),
            data={
                "name": query.get("name", [""])[0],
                "code": query.get("code", [""])[0],
                "password": password,
                "confirm": password if confirm is None else confirm,
                "_xsrf": self._xsrf(),
            },
            timeout=30,
        )

    def logged_in(self) -> bool:
        r = self.s.get(self.url("hub/home"), allow_redirects=False, timeout=10)
        return r.status_code == 200

    def hub_api(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"X-XSRFToken": self._xsrf(), "Referer": self.url("hub/home")}
        return self.s.request(
            method, self.url("hub/api/" + path.lstrip("/")), headers=headers, timeout=30, **kw
        )

    def start_server(self, timeout: float = 90) -> None:
        r = self.hub_api("POST", f"users/{self.name}/server")
        assert r.status_code in (201, 202, 400), (r.status_code, r.text)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.hub_api("GET", f"users/{self.name}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                break
            time.sleep(0.3)
        else:
            raise TimeoutError(f"server of {self.name} not ready after {timeout}s")
        # the first visit goes through the server's OAuth with the hub, as in a browser
        r = self.visit(f"user/{self.name}/lab")
        assert r.status_code == 200, (r.status_code, r.url, r.text[:300])
        r = self.server("GET", "api/status")
        assert r.status_code == 200, (r.status_code, r.text[:300])

    def stop_server(self, timeout: float = 60) -> None:
        r = self.hub_api("DELETE", f"users/{self.name}/server")
        assert r.status_code in (202, 204), (r.status_code, r.text)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.hub_api("GET", f"users/{self.name}").json()
            if not model.get("servers", {}).get(""):
                return
            time.sleep(0.3)
        raise TimeoutError(f"server of {self.name} still running after {timeout}s")

    def server(self, method: str, path: str, **kw) -> requests.Response:
        """Call the person's own server through the proxy, as the Lab UI does."""
        return self.get_as_browser(method, f"user/{self.name}/" + path.lstrip("/"), **kw)

    def get_as_browser(self, method: str, path: str, **kw) -> requests.Response:
        url = self.url(path)
        xsrf = self.s.cookies.get("_xsrf", path=f"/user/{self.name}/") or self._xsrf()
        headers = {"X-XSRFToken": xsrf, "Referer": url}
        kw.setdefault("timeout", 60)
        return self.s.request(method, url, headers=headers, **kw)

    def service(self, method: str, course: str, path: str, **kw) -> requests.Response:
        """Call a course's grader service (after visiting it once), as its Lab UI does."""
        url = self.url(f"services/{course}/" + path.lstrip("/"))
        xsrf = self.s.cookies.get("_xsrf", path=f"/services/{course}/") or self._xsrf()
        kw.setdefault("timeout", 120)
        return self.s.request(method, url, headers={"X-XSRFToken": xsrf, "Referer": url}, **kw)

    def visit(self, path: str) -> requests.Response:
        """Follow redirects (OAuth included) like a browser."""
        return self.s.get(self.url(path), timeout=60)
