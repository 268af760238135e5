"""A rendered compose folder, checked with the real tools: Debian's docker-compose,
hadolint, pip, and prepare-host.sh run for real as root into a temporary root.

No Docker engine runs here: `docker-compose config` reads and validates the
folder without one, and the containers are checked through the exact compose
file the engine would receive.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from attacks import snapshot, swapping
from conftest import coursehub
from coursehub.plan import Plan
from coursehub.targets.compose.envfiles import (
    POC_JHUB_VARIABLES,
    POC_SERVICE_VARIABLES,
    parse_env_file,
)

VENV_BIN = Path(sys.executable).parent
HADOLINT = VENV_BIN / "hadolint"

SITE = """\
org: Example University
hub: {ip: 127.0.0.1, port: 8000}
auth: {type: first-use}
admins: [ada]
people: [grace, alan, barbara]
courses:
  - id: intro101
    title: Introduction to Programming
    instructors: [grace]
    students: [alan, barbara]
  - id: stats2
    instructors: [grace]
    students: [alan]
"""


def render(site: Path, out: Path, root: Path, *extra: str, check: bool = True):
    return coursehub(
        "render", "compose", "--site", str(site), "--out", str(out), "--root", str(root),
        *extra, check=check,
    )  # fmt: skip


@pytest.fixture
def site(tmp_path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    return path


@pytest.fixture
def rendered(tmp_path, site) -> tuple[Path, Path]:
    out, root = tmp_path / "out", tmp_path / "root"
    render(site, out, root)
    return out, root


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path]:
    """One render for the tests that only read it."""
    base = tmp_path_factory.mktemp("compose")
    site = base / "site.yaml"
    site.write_text(SITE)
    render(site, base / "out", base / "root")
    return base / "out", base / "root"


def env_files(out: Path) -> list[Path]:
    return sorted(out.glob("env.*"))


def secrets_in(out: Path) -> set[str]:
    """Every secret value the env files hold (hex tokens and keys)."""
    values = set()
    for path in env_files(out):
        for key, value in parse_env_file(path.read_text()).items():
            if key == "COURSEHUB_SERVICE_TOKENS":
                values |= {item.split(":", 1)[1] for item in value.split(",")}
            elif len(value) == 64 and all(c in "0123456789abcdef" for c in value):
                values.add(value)
    return values


def test_compose_file_passes_docker_compose_config(shared):
    out, _ = shared
    proc = subprocess.run(
        # from the folder, as start.sh runs it: the graders' seccomp profile is named from there
        ["docker-compose", "config"], cwd=out, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    assert set(config["services"]) == {
        "proxy", "jupyterhub", "intro101", "stats2", "intro101-receipts", "stats2-receipts",
    }  # fmt: skip
    # what the engine would receive: env files read, grader under its own uid
    grader = config["services"]["intro101"]
    assert grader["environment"]["JUPYTERHUB_USER"] == "grader-intro101"
    assert grader["environment"]["JUPYTERHUB_API_URL"] == "http://jupyterhub:8081/hub/api"
    assert grader["user"] == "10001:10001"
    assert config["networks"]["jupyter-network"]["external"] is True


def test_every_dockerfile_passes_hadolint(shared):
    out, _ = shared
    dockerfiles = sorted(out.glob("Dockerfile.*"))
    assert [p.name for p in dockerfiles] == [
        "Dockerfile.base", "Dockerfile.grader", "Dockerfile.hub", "Dockerfile.instructor",
        "Dockerfile.proxy",
        "Dockerfile.standard", "Dockerfile.student",
    ]  # fmt: skip
    for dockerfile in dockerfiles:
        proc = subprocess.run(
            [str(HADOLINT), str(dockerfile)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, f"{dockerfile.name}:\n{proc.stdout}{proc.stderr}"


def test_env_files_are_0600_and_hold_the_pocs_variables(shared):
    out, _ = shared
    names = [p.name for p in env_files(out)]
    assert names == ["env.jhub", "env.proxy", "env.service.intro101", "env.service.stats2"]
    for path in env_files(out):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert set(POC_JHUB_VARIABLES) <= set(parse_env_file((out / "env.jhub").read_text()))
    for course in ("intro101", "stats2"):
        env = parse_env_file((out / f"env.service.{course}").read_text())
        assert set(POC_SERVICE_VARIABLES) <= set(env)
        assert env["JUPYTERHUB_USER"] == f"grader-{course}"


def test_no_secret_anywhere_else_in_the_folder(shared):
    out, _ = shared
    secrets = secrets_in(out)
    assert len(secrets) == 6  # cookie, crypt key, proxy, coursehub's own, two courses
    for path in out.rglob("*"):
        if path.is_file() and not path.name.startswith("env."):
            data = path.read_bytes()
            for value in secrets:
                assert value.encode() not in data, path.relative_to(out)


def test_render_again_keeps_the_secrets_and_changes_nothing(rendered, site, tmp_path):
    out, root = rendered
    before = {p.name: p.read_bytes() for p in env_files(out)}
    everything = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = render(site, out, root)
    assert "0 file(s) written" in r.stdout
    assert {p.name: p.read_bytes() for p in env_files(out)} == before
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == everything


def test_a_new_course_gets_a_token_and_the_old_ones_stay(rendered, site):
    out, root = rendered
    old = parse_env_file((out / "env.service.intro101").read_text())["JUPYTERHUB_API_TOKEN"]
    site.write_text(SITE + "  - id: bio3\n    instructors: [grace]\n")
    render(site, out, root)
    assert parse_env_file((out / "env.service.intro101").read_text())["JUPYTERHUB_API_TOKEN"] == old
    assert (out / "env.service.bio3").exists()
    tokens = parse_env_file((out / "env.jhub").read_text())["COURSEHUB_SERVICE_TOKENS"]
    assert f"intro101:{old}" in tokens and "bio3:" in tokens
    # and a course removed takes its env file along
    site.write_text(SITE)
    r = render(site, out, root)
    assert not (out / "env.service.bio3").exists()
    assert "removed" in r.stdout


def test_a_changed_file_is_kept_without_force_and_replaced_with_it(rendered, site):
    out, root = rendered
    compose = out / "docker-compose.yml"
    original = compose.read_text()
    compose.write_text(original + "# my own note\n")
    site.write_text(SITE.replace("port: 8000", "port: 8443"))
    r = render(site, out, root)
    assert "kept docker-compose.yml" in r.stdout and "--force" in r.stdout
    assert compose.read_text() == original + "# my own note\n"
    # the files nobody changed do follow the site
    plan = Plan.from_json((out / "files/srv/jupyterhub/state/plan.json").read_text())
    assert plan.ports.public == 8443
    strict = render(site, out, root, "--strict", check=False)
    assert strict.returncode == 1
    render(site, out, root, "--force")
    assert "127.0.0.1:8443:8000" in compose.read_text()
    assert "# my own note" not in compose.read_text()


def test_a_file_coursehub_did_not_write_is_never_replaced_without_force(tmp_path, site):
    out, root = tmp_path / "out", tmp_path / "root"
    out.mkdir()
    (out / "start.sh").write_text("#!/bin/sh\necho mine\n")
    r = render(site, out, root)
    assert "kept start.sh" in r.stdout
    assert (out / "start.sh").read_text() == "#!/bin/sh\necho mine\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--out-is-a-file"], "is a file, not a folder"),
        (["--bad-site"], "courses[0].id"),
    ],
)
def test_bad_input_says_what_to_do_and_writes_nothing(tmp_path, site, args, message):
    out, root = tmp_path / "out", tmp_path / "root"
    if args == ["--out-is-a-file"]:
        out = tmp_path / "a-file"
        out.write_text("not a folder\n")
        args = []
    if args == ["--bad-site"]:
        site.write_text(SITE.replace("id: intro101", "id: 'Intro 101'"))
        args = []
    r = render(site, out, root, *args, check=False)
    assert r.returncode == 2
    assert message in r.stderr
    assert not root.exists()
    assert out.is_file() or not out.exists()
    if out.is_file():
        assert out.read_text() == "not a folder\n"


def test_the_wheel_installs_and_is_this_coursehub(shared, tmp_path):
    out, _ = shared
    (wheel,) = (out / "wheels").glob("coursehub-*.whl")
    target = tmp_path / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    installed = target / "coursehub"
    here = Path(__import__("coursehub").__file__).parent
    for module in (
        "plan.py",
        "containers.py",
        "targets/compose/hubconfig.py",
        "exchange/__init__.py",
    ):
        assert (installed / module).read_bytes() == (here / module).read_bytes()
    entry_points = next(target.glob("coursehub-*.dist-info")).joinpath("entry_points.txt")
    assert "coursehub = coursehub.cli:main" in entry_points.read_text()


def test_scripts_are_valid_shell(shared):
    out, _ = shared
    for script in ("prepare-host.sh", "start.sh"):
        path = out / script
        assert os.access(path, os.X_OK)
        subprocess.run(["sh", "-n", str(path)], check=True, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="prepare-host.sh sets owners: it needs root")
def test_prepare_host_makes_the_plans_folders_and_files_as_root(rendered):
    out, root = rendered
    r = subprocess.run([str(out / "prepare-host.sh")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    plan = Plan.from_json((out / "files/srv/jupyterhub/state/plan.json").read_text())
    assert plan.layout.root == str(root)
    assert plan.folders and plan.files, "the Plan lists the host's folders and files"
    for folder in plan.folders:
        st = os.lstat(folder.path)
        assert stat.S_ISDIR(st.st_mode), folder.path
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
            folder.uid, folder.gid, folder.mode,
        ), folder.path  # fmt: skip
    for f in plan.files:
        st = os.lstat(f.path)
        assert Path(f.path).read_text() == f.content
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (f.uid, f.gid, f.mode), f.path
    state = Path(plan.paths.state)
    assert Plan.from_json((state / "plan.json").read_text()) == plan
    assert stat.S_IMODE((state / "plan.json").stat().st_mode) == 0o600
    config = Path(plan.paths.etc, "jupyterhub_config.py")
    assert config.read_text() == (out / "jupyterhub_config.py").read_text()
    # the host's own folders: made, but with ordinary modes
    assert stat.S_IMODE((root / "home").stat().st_mode) == 0o755
    # the inbound folder of a student: theirs, the grader's group, setgid
    inbound = Path(plan.paths.exchange, "intro101", "inbound", "alan")
    st = inbound.stat()
    assert st.st_uid == plan.people["alan"].account.uid
    assert stat.S_IMODE(st.st_mode) == 0o2750


@pytest.mark.skipif(os.geteuid() != 0, reason="prepare-host.sh sets owners: it needs root")
def test_prepare_host_is_idempotent_and_keeps_the_courses_own_config(rendered):
    out, root = rendered
    subprocess.run([str(out / "prepare-host.sh")], check=True, capture_output=True, timeout=120)
    layer3 = root / "home/grader-intro101/intro101/nbgrader_config.py"
    layer3.write_text(layer3.read_text() + "c.ClearSolutions.text_stub = 'MINE'\n")
    layer1 = root / "etc/jupyterhub/nbgrader_config.py"
    layer1.write_text("# changed by hand\n")
    os.chmod(root / "srv/nbgrader/exchange", 0o700)  # a wrong mode is put right
    subprocess.run([str(out / "prepare-host.sh")], check=True, capture_output=True, timeout=120)
    assert "'MINE'" in layer3.read_text()
    assert layer1.read_text() == (out / "files/etc/jupyterhub/nbgrader_config.py").read_text()
    assert stat.S_IMODE((root / "srv/nbgrader/exchange").stat().st_mode) == 0o711


@pytest.mark.skipif(os.geteuid() != 0, reason="prepare-host.sh sets owners: it needs root")
def test_prepare_host_refuses_a_symlink_where_a_folder_belongs(rendered, tmp_path):
    out, root = rendered
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "srv/nbgrader").mkdir(parents=True)
    (root / "srv/nbgrader/exchange").symlink_to(elsewhere)
    r = subprocess.run([str(out / "prepare-host.sh")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "should be a folder and is not" in r.stderr
    # nothing was made or changed through the link
    assert list(elsewhere.iterdir()) == []
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="prepare-host.sh sets owners: it needs root")
def test_prepare_host_follows_no_link_a_grader_plants(site, open_tmp):
    """prepare-host.sh again (a re-render, a new course) while the grader's uid swaps
    its folders for links to root's own, in a tight loop: nothing of root's changes."""
    out, root = open_tmp / "out", open_tmp / "root"  # a root the grader's uid can reach
    render(site, out, root)
    subprocess.run([str(out / "prepare-host.sh")], check=True, capture_output=True, timeout=120)
    plan = Plan.from_json((out / "files/srv/jupyterhub/state/plan.json").read_text())
    g = plan.courses["intro101"]
    exchange = Path(plan.paths.exchange, "intro101")
    # inbound holds a folder per student that root makes and chowns after inbound itself
    targets = [str(exchange / "inbound")]
    victim = open_tmp / "victim"
    victim.mkdir(mode=0o700)
    (victim / "secret").write_text("root's own\n")
    # names root works on below the targets: through a link it would reach these
    for student in g.students:
        (victim / student).mkdir(mode=0o700)
    before = snapshot(victim)
    refused = 0
    with swapping(g.account.uid, g.account.gid, targets, victim):
        for _ in range(20):
            r = subprocess.run(
                [str(out / "prepare-host.sh")], capture_output=True, text=True, timeout=120
            )
            refused += r.returncode != 0
    assert snapshot(victim) == before, "prepare-host.sh changed a file through a link"
    r = subprocess.run([str(out / "prepare-host.sh")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr  # the honest run, once the attacker stops
    assert Path(exchange, "inbound", "alan").stat().st_uid == plan.people["alan"].account.uid


def test_render_again_keeps_every_uid(rendered, site):
    out, root = rendered
    plan_json = out / "files/srv/jupyterhub/state/plan.json"
    before = Plan.from_json(plan_json.read_text())
    # a new person listed first and a new course listed first must not move anyone's uid
    site.write_text(
        SITE.replace("people: [grace,", "people: [zoe, grace,").replace(
            "courses:\n", "courses:\n  - id: art1\n    students: [zoe]\n"
        )
    )
    render(site, out, root)
    after = Plan.from_json(plan_json.read_text())
    for name, person in before.people.items():
        assert after.people[name].account.uid == person.account.uid, name
    for course, g in before.courses.items():
        assert after.courses[course].account.uid == g.account.uid, course
    assert after.people["zoe"].account.uid not in {p.account.uid for p in before.people.values()}
