"""Where grades may be sent: the hosts a launch's service URLs may name (coursehub.lti.hosts),
checked before each request and again by the connection itself; and the site's
auth.outcome_hosts and auth.service_hosts."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sites import DATA_DIR, two_course_data

from coursehub.lti.ags import AgsClient
from coursehub.lti.grades import PushReport, _send
from coursehub.lti.hosts import HostRefused, ServicePolicy, address_problem, policy_for
from coursehub.lti.launch import Outcome
from coursehub.lti.outcomes import OutcomeError, OutcomeStore, Target, send_lti11_score
from coursehub.plan import PlanAuth, derive
from coursehub.site import SiteError, parse_site, site_to_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ltiplatform import OutcomeService, new_rsa_pem  # noqa: E402

KEY, SECRET = "lms", "outcome-secret-0123456789"
PUBLIC = "93.184.216.34"


def names(table: dict[str, list[str]]):
    """A resolver that knows only `table` (no DNS in unit tests)."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def public(**table) -> ServicePolicy:
    """LTI 1.1 without auth.outcome_hosts: any public https host (names from `table`,
    else resolved for real)."""
    return policy_for(PlanAuth("lti11"), **({"resolver": names(table)} if table else {}))


# -- addresses


@pytest.mark.parametrize(
    "address, kind",
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # a cloud's metadata service
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("0.0.0.0", "private"),  # connects to this host on Linux
        ("224.0.0.1", "multicast"),
        ("::1", "loopback"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("::", "private"),
        ("::ffff:127.0.0.1", "holds 127.0.0.1: 127.0.0.1 is a loopback"),
        ("::ffff:10.0.0.1", "holds 10.0.0.1"),
        ("2002:7f00:1::", "holds 127.0.0.1"),  # 6to4
        ("64:ff9b::a00:1", "holds 10.0.0.1"),  # NAT64
    ],
)
def test_addresses_that_are_not_public(address, kind):
    problem = address_problem(address)
    assert problem is not None and kind in problem, problem


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address):
    assert address_problem(address) is None


# -- LTI 1.1 without a list: public https hosts only


def test_a_public_https_host_is_allowed():
    policy = public(**{"lms.example.edu": [PUBLIC]})
    assert policy.problem("https://lms.example.edu/api/outcomes") is None
    assert policy.problem("https://LMS.Example.EDU./x") is None


def test_a_name_that_resolves_to_loopback_or_inside_is_refused():
    policy = public(**{"lms.example.edu": ["127.0.0.1"], "mixed.example": [PUBLIC, "10.0.0.7"]})
    assert "127.0.0.1 is a loopback address" in policy.problem("https://lms.example.edu/o")
    # one inside address among public ones is enough to refuse
    assert "10.0.0.7 is a private address" in policy.problem("https://mixed.example/o")
    assert "unless auth.outcome_hosts lists" in policy.problem("https://mixed.example/o")


def test_localhost_resolved_for_real_is_refused():
    assert "loopback" in public().problem("https://localhost/outcomes")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/o",
        "https://127.1/o",  # short forms a resolver reads as 127.0.0.1
        "https://2130706433/o",
        "https://0x7f000001/o",
        "https://0177.0.0.1/o",
        "https://[::1]/o",
        "https://[::ffff:127.0.0.1]/o",
        "https://[::ffff:7f00:1]/o",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1:8443/o",
        "https://[fe80::1]/o",
    ],
)
def test_written_forms_of_inside_addresses_are_refused(url):
    problem = public().problem(url)
    assert problem is not None and "resolves to" in problem, (url, problem)


def test_http_is_refused_even_to_a_public_host():
    policy = public(**{"lms.example.edu": [PUBLIC]})
    assert "over http://: grades go over https only" in policy.problem("http://lms.example.edu/o")
    assert "is not a web address" in policy.problem("ftp://lms.example.edu/o")
    assert "no host" in policy.problem("https:///o")
    assert "no scheme" in policy.problem("lms.example.edu/o")


def test_a_name_that_does_not_resolve_is_an_outcome_error_to_try_again():
    with pytest.raises(OutcomeError, match="does not resolve") as err:
        public().problem("https://no-such-host.invalid/o")
    assert not isinstance(err.value, HostRefused)  # the outbox tries it again later


# -- LTI 1.1 with auth.outcome_hosts: those hosts only


def listed(*hosts) -> ServicePolicy:
    return policy_for(PlanAuth("lti11", outcome_hosts=tuple(hosts)), resolver=names({}))


def test_listed_hosts_only_and_their_ports():
    policy = listed("lms.example.edu", "moodle.example.edu:8443", "10.0.0.5")
    assert policy.problem("https://lms.example.edu/o") is None
    assert policy.problem("https://lms.example.edu:9999/o") is None  # no port: any port
    assert policy.problem("https://moodle.example.edu:8443/o") is None
    assert "moodle.example.edu:443 is not a host that auth.outcome_hosts allows" in (
        policy.problem("https://moodle.example.edu/o")
    )
    # a campus LMS on a private address, listed by the operator: trusted by its name
    assert policy.problem("https://10.0.0.5/o") is None
    assert "not a host that auth.outcome_hosts allows" in policy.problem("https://evil.example/")


def test_listed_loopback_over_http_but_nothing_else_over_http():
    policy = listed("127.0.0.1", "lms.example.edu")
    assert policy.problem("http://127.0.0.1:8765/outcomes") is None
    assert "over http://" in policy.problem("http://lms.example.edu/o")
    # other names for loopback are not the listed host
    for url in ("http://localhost:8765/o", "http://127.0.0.2/o", "http://127.1/o", "http://[::1]/"):
        assert "not a host that auth.outcome_hosts allows" in policy.problem(url), url


@pytest.mark.parametrize(
    "url",
    [
        "https://lms.example.edu@evil.example/o",  # userinfo: the host is evil.example
        "https://evil.example#@lms.example.edu/",
        "https://evil.example\\@lms.example.edu/",
        "https://evil.example/lms.example.edu",
        "https://lms.example.edu.evil.example/o",
    ],
)
def test_a_url_that_only_mentions_a_listed_host_is_refused(url):
    assert listed("lms.example.edu").problem(url) is not None


def test_ipv6_entries():
    policy = listed("[::1]:8000", "2001:db8::5")
    assert policy.problem("http://[::1]:8000/o") is None
    assert policy.problem("http://[::1]:8001/o") is not None
    assert policy.problem("https://[2001:db8:0::5]/o") is None  # one address, two spellings


# -- LTI 1.3: the registration's hosts and auth.service_hosts


REGISTRATION = {
    "type": "lti13",
    "issuer": "https://canvas.instructure.com",
    "client_id": "1000",
    "jwks_url": "https://sso.canvaslms.com/api/lti/security/jwks",
    "authorize_url": "https://sso.canvaslms.com/api/lti/authorize_redirect",
    "token_url": "https://sso.canvaslms.com/login/oauth2/token",
}


def test_lti13_allows_the_registrations_hosts_with_their_ports():
    policy = policy_for(PlanAuth(**REGISTRATION), resolver=names({}))
    assert policy.problem("https://sso.canvaslms.com/api/lti/courses/1/line_items") is None
    assert policy.problem("https://canvas.instructure.com/x") is None
    refused = policy.problem("https://sso.canvaslms.com:8443/x")
    assert "is not a host that auth.service_hosts allows" in refused
    # Canvas's line items are on the school's own Canvas host: listed in service_hosts
    assert policy.problem("https://school.instructure.com/api/lti/courses/1/line_items")
    school = policy_for(PlanAuth(**REGISTRATION, service_hosts=("school.instructure.com",)))
    assert school.problem("https://school.instructure.com/api/lti/courses/1/line_items") is None
    for url in ("https://127.0.0.1/", "http://169.254.169.254/", "https://10.0.0.1/"):
        assert school.problem(url) is not None


def test_lti13_on_loopback_as_the_tests_register_it():
    base = "http://127.0.0.1:5555"
    policy = policy_for(
        PlanAuth(
            "lti13",
            issuer=base,
            jwks_url=f"{base}/jwks",
            authorize_url=f"{base}/authorize",
            token_url=f"{base}/token",
        )
    )
    assert policy.problem(f"{base}/ags/ctx/lineitems") is None
    assert policy.problem("http://127.0.0.1:6379/") is not None  # another port of loopback


# -- the requests: checked before, and by the connection itself


class Listener:
    """A TCP port on loopback that counts the connections it gets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0

    def count(self) -> int:
        try:
            while True:
                conn, _ = self.sock.accept()
                conn.close()
                self.connections += 1
        except TimeoutError:
            return self.connections

    def close(self):
        self.sock.close()


def test_a_name_that_resolves_elsewhere_at_the_connection_gets_nowhere():
    """DNS rebinding: public for the check before the request, loopback a moment later
    for the connection. The connection connects only to addresses it checked itself."""
    answers: list[list[str]] = []
    policy = ServicePolicy(
        frozenset(), True, "auth.outcome_hosts", lambda host, port: answers.pop(0)
    )
    inside = Listener()
    try:
        url = f"https://rebind.example:{inside.port}/outcomes"
        t = Target("intro", "ana", "ps1", KEY, Outcome(url, "src"))
        answers[:] = [[PUBLIC], ["127.0.0.1"]]
        with pytest.raises(HostRefused, match="127.0.0.1 is a loopback address"):
            send_lti11_score(t, 0.5, KEY, SECRET, policy=policy)
        assert answers == []  # the check passed; the connection refused
        answers[:] = [["127.0.0.1"]]
        with pytest.raises(HostRefused):  # the session alone, with no check before
            policy.session().post(url, data=b"x", timeout=2)
        assert inside.count() == 0
    finally:
        inside.close()


def test_a_refused_outcome_url_is_never_posted_and_the_outbox_says_why(tmp_path):
    lms = OutcomeService(KEY, SECRET)
    try:
        store = OutcomeStore(tmp_path / "outcomes.sqlite")
        t = Target("intro", "ana", "ps1", KEY, Outcome(lms.url, "src-ana"))
        store.remember("intro", "ana", "ps1", KEY, t.outcome)
        policy = policy_for(PlanAuth("lti11"))  # no list: 127.0.0.1 is not public

        def send(target, value, _maximum):
            send_lti11_score(target, value, KEY, SECRET, policy=policy)

        report = PushReport()
        _send(store, t, 0.5, report, send)
        [(course, student, assignment, score, attempts, error)] = store.pending()
        assert attempts == 1  # not tried again within the push: it would change nothing
        assert error.startswith("not sent: 127.0.0.1:") and "loopback" in error
        assert report.failed[0][3] == error
        assert lms.scores == {} and lms.refused == []
        # the operator lists the host: the next try goes
        allowed = policy_for(PlanAuth("lti11", outcome_hosts=("127.0.0.1",)))
        send_lti11_score(t, 0.5, KEY, SECRET, policy=allowed)
        assert lms.scores == {"src-ana": 0.5}
    finally:
        lms.close()


class Redirector:
    """An LMS that answers every request with a redirect to `to`."""

    def __init__(self, to: str):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.send_response(307)
                self.send_header("Location", to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/outcomes"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_redirects_are_not_followed():
    inside = Listener()
    lms = Redirector(f"http://127.0.0.1:{inside.port}/admin")
    try:
        policy = policy_for(PlanAuth("lti11", outcome_hosts=("127.0.0.1",)))
        t = Target("intro", "ana", "ps1", KEY, Outcome(lms.url, "src"))
        with pytest.raises(OutcomeError, match="HTTP 307"):
            send_lti11_score(t, 0.5, KEY, SECRET, policy=policy)
        assert inside.count() == 0
    finally:
        lms.close()
        inside.close()


def test_ags_refuses_a_line_item_outside_the_registration():
    inside = Listener()
    try:
        token_url = f"http://127.0.0.1:{inside.port}/token"
        policy = policy_for(PlanAuth(**REGISTRATION), resolver=names({}))
        client = AgsClient("1000", token_url, new_rsa_pem(), policy=policy)
        elsewhere = Target(
            "intro", "ana", "ps1", "iss", Outcome("http://127.0.0.1:9/lineitems", "sub")
        )
        with pytest.raises(HostRefused, match="not a host that auth.service_hosts allows"):
            client.send(elsewhere, 1.0, 1.0)
        assert inside.count() == 0  # not even a token was asked for there
    finally:
        inside.close()


# -- the site file


def lti11(**auth):
    return two_course_data({"type": "lti11", "consumer_key": "k", **auth})


def site_problems(data) -> list[str]:
    with pytest.raises(SiteError) as err:
        parse_site(data)
    return err.value.problems


def test_outcome_hosts_in_the_site_and_the_plan():
    site = parse_site(lti11(outcome_hosts=["LMS.example.edu", "127.0.0.1", "[::1]:8000"]))
    assert site.auth.outcome_hosts == ("lms.example.edu", "127.0.0.1", "[::1]:8000")
    assert parse_site(site_to_data(site)).auth == site.auth
    plan = derive(site, DATA_DIR, isolated=True)
    assert plan.auth.outcome_hosts == ("lms.example.edu", "127.0.0.1", "[::1]:8000")
    unset = parse_site(lti11())
    assert unset.auth.outcome_hosts is None
    assert derive(unset, DATA_DIR, isolated=True).auth.outcome_hosts is None


@pytest.mark.parametrize(
    "entry",
    [
        "https://lms.example.edu/",
        "lms.example.edu/outcomes",
        "*.instructure.com",
        "lms.example.edu:",
        "lms.example.edu:99999",
        "user@lms.example.edu",
        "lms example",
        "[::1",
    ],
)
def test_outcome_hosts_that_are_not_hosts(entry):
    [problem] = site_problems(lti11(outcome_hosts=[entry]))
    assert problem.startswith(f"auth.outcome_hosts[0]: {entry!r} ")
    assert "for example 'lms.example.edu'" in problem


def test_an_empty_list_is_refused_rather_than_meaning_nowhere():
    [problem] = site_problems(lti11(outcome_hosts=[]))
    assert problem.startswith("auth.outcome_hosts:")


def test_each_list_belongs_to_its_lti_version():
    [problem] = site_problems(lti11(service_hosts=["lms.example.edu"]))
    assert problem == "auth.service_hosts: belongs to auth type 'lti13', not 'lti11'; remove it"
    data = two_course_data({**REGISTRATION, "outcome_hosts": ["lms.example.edu"]})
    [problem] = site_problems(data)
    assert problem == "auth.outcome_hosts: belongs to auth type 'lti11', not 'lti13'; remove it"
    ok = parse_site(two_course_data({**REGISTRATION, "service_hosts": ["school.instructure.com"]}))
    assert ok.auth.service_hosts == ("school.instructure.com",)
    assert derive(ok, DATA_DIR, isolated=True).auth.service_hosts == ("school.instructure.com",)
