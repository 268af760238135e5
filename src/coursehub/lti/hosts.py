"""Where grades may be sent: the hosts a launch's service URLs may point to.

A launch names where its scores go (LTI 1.1 `lis_outcome_service_url`, LTI 1.3
the AGS line items and line item URLs), and coursehub then POSTs signed
requests there. Anyone who can sign a launch (the LMS, or whoever holds the
LTI 1.1 secret) could point those URLs at the hub's own loopback or the
internal network, so every URL is checked against a policy:

- LTI 1.3: the hosts (with their ports) of the platform's registration
  (issuer, jwks_url, authorize_url, token_url), and `auth.service_hosts`.
- LTI 1.1 with `auth.outcome_hosts`: those hosts only.
- LTI 1.1 without it: any https host whose addresses are all public (not
  loopback, private, link-local, shared, reserved or multicast, also when
  written inside an IPv6 address), checked after resolving its name.

A listed host is trusted by its name (an LMS on the campus network has a
private address). Scheme: https, or http to a loopback host that is listed.

A URL is checked when the launch is recorded (for the log) and before every
request; the requests themselves go through a session whose connections
check the host they connect to and, for the public-hosts rule, connect only
to the addresses they checked, so a name that resolves to a public address
for the check and to 127.0.0.1 a moment later (DNS rebinding) gets nowhere.
Redirects are never followed. Through an outbound proxy (HTTPS_PROXY) the proxy
makes the connection and only the check before the request applies: list the
LMS's hosts there.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..plan import PlanAuth
from ..site import LTI13, split_host_entry
from .errors import OutcomeError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")  # as the site file's rule for lti13 URLs
DEFAULT_PORTS = {"http": 80, "https": 443}
REGISTRATION_URLS = ("issuer", "jwks_url", "authorize_url", "token_url")

Resolver = Callable[[str, int], list[str]]


class HostRefused(OutcomeError):
    """A service URL the policy does not allow: nothing was sent to it."""


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now (as a connection would use them)."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def address_problem(text: str) -> str | None:
    """Why a request may not go to address `text` unless its host is listed, or None."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address):
        # an IPv4 address inside an IPv6 one reaches that IPv4 address
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo or (None, None))[1]
        if embedded is None and ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_problem(str(embedded))
            return f"{text} holds {embedded}: {inner}" if inner else None
    for kind, test in (
        ("a loopback address", ip.is_loopback),
        ("a link-local address", ip.is_link_local),
        ("a private address", ip.is_private),
        ("a multicast address", ip.is_multicast),
        ("not a public address", not ip.is_global),
    ):
        if test:
            return f"{text} is {kind}"
    return None


def _host_of(value: str) -> str:
    """A host as the policy compares it: lower case, no trailing dot, IP literals in
    their one written form."""
    host = value.lower().strip("[]").rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _shown(host: str, port: int | None) -> str:
    written = f"[{host}]" if ":" in host else host
    return written if port is None else f"{written}:{port}"


@dataclass(frozen=True)
class ServicePolicy:
    """The hosts grades may be sent to (see the module's text)."""

    hosts: frozenset[tuple[str, int | None]] = frozenset()  # (host, port or None: any)
    public: bool = False  # True: no list, any https host whose addresses are all public
    where: str = "auth.outcome_hosts"  # what an operator changes to allow a host
    resolver: Resolver = field(default=resolve, compare=False, repr=False)

    def listed(self, host: str, port: int) -> bool:
        host = _host_of(host)
        return (host, port) in self.hosts or (host, None) in self.hosts

    def allowed_text(self) -> str:
        return ", ".join(sorted(_shown(h, p) for h, p in self.hosts)) or "none"

    def host_problem(self, scheme: str, host: str, port: int) -> tuple[str | None, list[str]]:
        """(why not, or None; the checked addresses to connect to: [] means resolve as
        usual) for a connection to `host`:`port` over `scheme`."""
        host = _host_of(host)
        shown = _shown(host, port)
        if scheme not in DEFAULT_PORTS:
            return f"{scheme}:// is not a web address (only https://)", []
        if not self.public:
            if not self.listed(host, port):
                return (
                    f"{shown} is not a host that {self.where} allows ({self.allowed_text()}); "
                    f"the hub's operator adds it there if this LMS really is there",
                    [],
                )
            if scheme == "http" and host not in LOOPBACK_NAMES:
                return f"{shown} is reached over http://: grades go over https only", []
            return None, []
        try:
            addresses = self.resolver(host, port)
        except OSError as err:  # socket.gaierror: the name does not resolve (now)
            raise OutcomeError(f"the LMS's host {host} does not resolve: {err}") from None
        for address in addresses:
            if problem := address_problem(address):
                return (
                    f"{shown} resolves to {problem}; grades go only to public hosts "
                    f"unless {self.where} lists the LMS's host",
                    [],
                )
        if not addresses:
            raise OutcomeError(f"the LMS's host {host} has no address")
        if scheme != "https":
            return f"{shown} is reached over http://: grades go over https only", []
        return None, addresses

    def problem(self, url: str) -> str | None:
        """Why nothing may be sent to `url`, or None (its name resolved now, if the
        rule is the public one)."""
        from urllib3.exceptions import LocationParseError
        from urllib3.util import parse_url

        try:
            parts = parse_url(url)  # as requests and urllib3 read it to connect
        except LocationParseError:
            return "the LMS's service URL is not a URL"
        scheme = (parts.scheme or "").lower()
        if not scheme:
            return "the LMS's service URL has no scheme (https://)"
        if not parts.host:
            return "the LMS's service URL has no host"
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        return self.host_problem(scheme, parts.host, port)[0]

    def check(self, url: str) -> None:
        """Raise HostRefused unless `url` is allowed (what is sent before a request)."""
        if problem := self.problem(url):
            raise HostRefused(f"not sent: {problem}")

    def session(self) -> Any:
        """A requests session whose connections enforce this policy."""
        import requests

        s = requests.Session()
        adapter = _guarded_adapter(self)
        s.mount("https://", adapter)
        s.mount("http://", adapter)
        return s


def policy_for(auth: PlanAuth, resolver: Resolver = resolve) -> ServicePolicy:
    """The policy of an installation's auth settings (the Plan's auth section)."""
    from urllib.parse import urlsplit

    if auth.type == LTI13:
        hosts: set[tuple[str, int | None]] = set()
        for key in REGISTRATION_URLS:
            url = getattr(auth, key)
            if url:
                parts = urlsplit(url)
                if parts.hostname:
                    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
                    hosts.add((_host_of(parts.hostname), port))
        hosts |= set(_entries(auth.service_hosts))
        return ServicePolicy(frozenset(hosts), False, "auth.service_hosts", resolver)
    listed = auth.outcome_hosts
    if listed is None:
        return ServicePolicy(frozenset(), True, "auth.outcome_hosts", resolver)
    return ServicePolicy(frozenset(_entries(listed)), False, "auth.outcome_hosts", resolver)


def _entries(entries: Iterable[str]) -> list[tuple[str, int | None]]:
    return [split_host_entry(e) for e in entries]


def refusal_in(err: BaseException) -> HostRefused | None:
    """The HostRefused behind an exception requests raised, if one is."""
    seen: set[int] = set()
    todo: list[Any] = [err]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, HostRefused):
            return e
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return None


# -- the connections: what is connected to is what was checked


def _guarded_connection(base: type, scheme: str, policy: ServicePolicy) -> type:
    from urllib3.exceptions import NewConnectionError
    from urllib3.util.connection import create_connection

    def _new_conn(self):
        problem, addresses = policy.host_problem(scheme, self.host, self.port)
        if problem:
            raise HostRefused(f"not sent: {problem}")
        if not addresses:  # a listed host: trusted by its name
            return base._new_conn(self)
        last: OSError | None = None
        for address in addresses:  # only the addresses just checked
            try:
                return create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as err:
                last = err
        raise NewConnectionError(self, f"Failed to establish a new connection: {last}")

    return type(f"Guarded{base.__name__}", (base,), {"_new_conn": _new_conn})


def _guarded_adapter(policy: ServicePolicy) -> Any:
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    pools = {
        "http": type(
            "GuardedHTTPConnectionPool",
            (HTTPConnectionPool,),
            {"ConnectionCls": _guarded_connection(HTTPConnection, "http", policy)},
        ),
        "https": type(
            "GuardedHTTPSConnectionPool",
            (HTTPSConnectionPool,),
            {"ConnectionCls": _guarded_connection(HTTPSConnection, "https", policy)},
        ),
    }

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

    return GuardedAdapter()
