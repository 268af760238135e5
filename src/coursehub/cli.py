"""coursehub's command line: thin; parse, call, report with progress."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import __version__
from .site import FIRST_USE, SHARED_PASSWORD, SiteError, load_site
from .starter import STARTER_SITE

DEFAULT_SITE = "coursehub.yaml"
DEFAULT_DATA_DIR = "coursehub-data"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def _fail(msg: str, code: int = 1) -> int:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return code


def _data_dir(args) -> str:
    return str(
        Path(
            args.data_dir or os.environ.get("COURSEHUB_DATA_DIR_DEFAULT") or DEFAULT_DATA_DIR
        ).absolute()
    )


def cmd_init(args) -> int:
    from .sitefile import SiteFileError, write_site_text

    path = Path(args.file)
    if (path.exists() or path.is_symlink()) and not args.force:
        return _fail(f"{path} exists; pass --force to replace it")
    try:
        # 0600: a site file soon holds secrets (an LMS's shared secret, passwords)
        write_site_text(path, STARTER_SITE, 0o600, None, backup=False)
    except (SiteFileError, OSError) as err:
        return _fail(f"cannot write {path}: {err}")
    _say(
        f"Wrote {path}. Edit it, check it with 'coursehub check --site {path}', then 'coursehub up --site {path}'."
    )
    return 0


def cmd_check(args) -> int:
    try:
        site = load_site(args.site)
    except SiteError as err:
        print(err, file=sys.stderr)
        return 2
    people = len(site.everyone)
    _say(
        f"{args.site}: fine. {len(site.courses)} course(s), {people} people, auth {site.auth.type}."
    )
    for c in site.courses:
        _say(
            f"  {c.id}: {c.title} - {len(c.instructors)} instructor(s), {len(c.students)} student(s)"
        )
    return 0


def _print_login(inst, site_file: str) -> None:
    plan = inst.plan()
    _say("")
    _say(f"coursehub is running: {plan.public_url}")
    for cid, g in plan.courses.items():
        who = ", ".join(g.instructors) or "no instructor yet"
        _say(
            f"  course {cid}: grader at {plan.public_url.rstrip('/')}{g.prefix} (instructors: {who})"
        )
    if plan.auth.type == SHARED_PASSWORD:
        _say(f"Log in with any name from {site_file} and the password in its auth.user_password")
        if plan.admins:
            _say("  (admins use auth.admin_password).")
    elif plan.auth.type == FIRST_USE:
        _say("Students: log in with your name; your first login sets your password.")
        _say(
            "Admins and instructors: get a one-time link with "
            f"'coursehub password-link NAME --data-dir {inst.data_dir}'."
        )
    else:
        _say("People log in from the LMS (its launch), not with a password.")
    _say(f"Status: coursehub status --data-dir {inst.data_dir}")
    _say(f"Stop:   coursehub down --data-dir {inst.data_dir}")


def cmd_up(args) -> int:
    from .safefs import UnsafePathError
    from .targets.local.daemon import supervise
    from .targets.local.install import PreflightError, prepare
    from .targets.local.runtime import Installation, save_runtime, start_detached, wait_healthy

    data_dir = _data_dir(args)
    inst = Installation(data_dir)
    running = inst.supervisor_pid()
    if running:
        _step(f"coursehub runs for {data_dir} (pid {running}): applying {args.site} to it")
        return _apply(inst, args.site)
    if os.geteuid() != 0:
        print(
            "WARNING: coursehub is not running as root, so every server runs as your own "
            "user: students can read each other's files and the graders'. Use this only "
            "to try coursehub; run it as root for a course.",
            file=sys.stderr,
            flush=True,
        )
    t0 = time.monotonic()
    _step(f"Checking {args.site}")
    try:
        prepared = prepare(args.site, data_dir, args.user_env)
    except SiteError as err:
        print(err, file=sys.stderr)
        return 2
    except (PreflightError, UnsafePathError) as err:
        return _fail(str(err))
    plan = prepared.plan
    _step(
        f"Prepared {data_dir}: {len(plan.courses)} course(s), {len(plan.people)} people, "
        f"{'one uid each' if plan.isolated else 'no isolation'}"
    )
    save_runtime(data_dir, prepared.user_env, prepared.hub_config_file, args.site)
    if not args.detach:
        _step("Starting proxy, hub and grader servers (Ctrl-C stops everything)")
        pid = os.fork()
        if pid == 0:  # report progress from a child while this process supervises
            ok = wait_healthy(inst, args.timeout, lambda m: _step(m), os.getppid())
            if ok:
                _settle(inst)
                _print_login(inst, args.site)
            os._exit(0 if ok else 1)
        return supervise(inst)
    _step("Starting proxy, hub and grader servers in the background")
    pid = start_detached(inst)
    if not wait_healthy(inst, args.timeout, _step, pid):
        print(
            f"error: not healthy after {args.timeout:.0f}s. Last lines of the logs:",
            file=sys.stderr,
        )
        _tail_logs(inst)
        return 1
    _step(f"Healthy in {time.monotonic() - t0:.1f}s")
    _settle(inst)
    _print_login(inst, args.site)
    return 0


def _settle(inst) -> None:
    """After a start: hub groups exactly as the site says (the hub only ever adds to
    them when it loads its config), and a gradebook row for every student."""
    from .targets.local.apply import some, sync_gradebooks, sync_hub

    plan = inst.plan()
    users, changes = sync_hub(plan)
    for line in changes:
        _step(line)
    added = sync_gradebooks(inst, plan)
    for cid, names in added.items():
        if names:
            _step(f"gradebook of {cid}: added {some(names)}")


def _apply(inst, site_file: str) -> int:
    """Apply the site file to the installation (live when it runs) and report."""
    from .targets.local.apply import apply_site
    from .targets.local.install import PreflightError

    try:
        applied = apply_site(inst, site_file, _step)
    except SiteError as err:
        print(err, file=sys.stderr)
        return 2
    except (PreflightError, RuntimeError) as err:
        return _fail(str(err))
    for line in applied.lines():
        _step(line)
    if not applied.running:
        _step("not running: the change takes effect at the next 'coursehub up'")
    return 0


def _site_of(args, inst) -> str:
    """--site, else the site file the installation was started with, else ./coursehub.yaml."""
    if args.site:
        return args.site
    if inst.exists():
        try:
            return inst.runtime()["site_file"]
        except (OSError, KeyError):
            pass
    return DEFAULT_SITE


def _change(args, change, describe: str) -> int:
    """Change the site file (atomically, old one kept as FILE.bak), then apply it."""
    from .roster import RosterError
    from .sitefile import SiteFileError, change_site
    from .targets.local.runtime import Installation

    inst = Installation(_data_dir(args))
    site_file = _site_of(args, inst)
    try:
        change_site(site_file, change)
    except (RosterError, SiteFileError) as err:
        return _fail(str(err), 2)
    except SiteError as err:
        print(err, file=sys.stderr)
        return 2
    except FileNotFoundError:
        return _fail(f"no site file {site_file}; pass --site", 2)
    _step(f"{describe} (in {site_file}; the previous version is {site_file}.bak)")
    if not inst.exists():
        _step("no installation in this data folder yet: 'coursehub up' will start it")
        return 0
    return _apply(inst, site_file)


def cmd_course(args) -> int:
    from . import roster
    from .sitefile import read_raw
    from .targets.local.runtime import Installation

    if args.action == "list":
        inst = Installation(_data_dir(args))
        data = read_raw(_site_of(args, inst))
        for c in data.get("courses") or []:
            _say(
                f"{c.get('id'):<20} {c.get('title') or '':<32} "
                f"{len(c.get('instructors') or [])} instructor(s), {len(c.get('students') or [])} student(s)"
            )
        return 0
    if args.action == "add":
        return _change(
            args,
            lambda d: roster.add_course(d, args.course, args.title, args.instructor, args.student),
            f"added course {args.course}",
        )
    return _change(
        args, lambda d: roster.remove_course(d, args.course), f"removed course {args.course}"
    )


def cmd_member(args) -> int:
    from . import roster
    from .sitefile import read_raw
    from .targets.local.runtime import Installation

    if args.action == "list":
        inst = Installation(_data_dir(args))
        try:
            rows = roster.members(read_raw(_site_of(args, inst)), args.course)
        except roster.RosterError as err:
            return _fail(str(err), 2)
        for name, role in rows:
            _say(f"{name:<32} {role}")
        return 0
    if args.action == "add":
        return _change(
            args,
            lambda d: roster.add_member(d, args.course, args.name, args.role),
            f"added {args.name} to {args.course} as {args.role}",
        )
    if args.action == "remove":
        return _change(
            args,
            lambda d: roster.remove_member(d, args.course, args.name),
            f"removed {args.name} from {args.course}",
        )
    try:
        rows = roster.parse_members_csv(Path(args.csv).read_text(encoding="utf-8-sig"))
    except OSError as err:
        return _fail(f"cannot read {args.csv}: {err.strerror}", 2)
    except roster.RosterError as err:
        return _fail(str(err), 2)

    def add_all(data):
        for name, role in rows:
            roster.add_member(data, args.course, name, role)

    return _change(
        args, add_all, f"imported {len(rows)} member(s) into {args.course} from {args.csv}"
    )


def _tail_logs(inst, lines: int = 15) -> None:
    logs = Path(inst.data_dir, "logs")
    for log in sorted(logs.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log}", file=sys.stderr)
        for line in text:
            print(f"    {line}", file=sys.stderr)


def cmd_supervise(args) -> int:
    from .targets.local.daemon import supervise
    from .targets.local.runtime import Installation

    return supervise(Installation(_data_dir(args)))


def cmd_down(args) -> int:
    from .targets.local.runtime import Installation, stop

    inst = Installation(_data_dir(args))
    _step(f"Stopping coursehub for {inst.data_dir}")
    t0 = time.monotonic()
    was_running, killed = stop(inst)
    if not was_running:
        _say("Nothing was running.")
        return 0
    if killed:
        _say(f"Some processes did not stop in time and were killed: {killed}")
    _step(f"Stopped in {time.monotonic() - t0:.1f}s")
    return 0


def cmd_status(args) -> int:
    from .targets.local.runtime import Installation, health

    inst = Installation(_data_dir(args))
    if not inst.exists():
        return _fail(
            f"no coursehub installation in {inst.data_dir}; start one with 'coursehub up'", 3
        )
    pid = inst.supervisor_pid()
    plan = inst.plan()
    checks = health(inst) if pid else []
    state = {}
    if inst.state_file.exists():
        state = json.loads(inst.state_file.read_text()).get("children", {})
    servers = _running_servers(inst) if pid else {}
    grades_waiting = _grades_waiting(inst, plan)
    if args.json:
        print(
            json.dumps(
                {
                    "data_dir": inst.data_dir,
                    "running": bool(pid),
                    "url": plan.public_url,
                    "processes": {
                        h.name: {"ok": h.ok, "url": h.url, **state.get(h.name, {})} for h in checks
                    },
                    "courses": {
                        cid: {
                            "title": g.title,
                            "url": f"{plan.public_url.rstrip('/')}{g.prefix}",
                            "instructors": list(g.instructors),
                            "students": list(g.students),
                        }
                        for cid, g in plan.courses.items()
                    },
                    "servers": servers,
                    "grades_waiting": grades_waiting,
                },
                indent=1,
            )
        )
    else:
        _say(
            f"coursehub {'running' if pid else 'stopped'}: {plan.public_url} (data: {inst.data_dir})"
        )
        for h in checks:
            s = state.get(h.name, {})
            restarts = s.get("restarts", 0)
            _say(
                f"  {h.name:<24} {'ok ' if h.ok else 'DOWN'}  pid {s.get('pid') or '-':<8} restarts {restarts}  {h.url}"
            )
        for cid, g in plan.courses.items():
            _say(
                f"  course {cid:<17} {len(g.instructors)} instructor(s), {len(g.students)} student(s)  {plan.public_url.rstrip('/')}{g.prefix}"
            )
        if servers:
            _say(
                "  user servers: "
                + ", ".join(
                    f"{n} ({'ready' if r else 'starting'})" for n, r in sorted(servers.items())
                )
            )
        if grades_waiting is not None:
            _say(
                f"  grades: {grades_waiting} score(s) waiting in the outbox"
                + (" (see 'coursehub grades pending')" if grades_waiting else "")
            )
    if not pid:
        return 3
    return 0 if all(h.ok for h in checks) else 1


def _grades_waiting(inst, plan) -> int | None:
    """Scores not yet accepted by the LMS (LMS sites only)."""
    if not plan.auth.is_lti:
        return None
    from .lti.grades import outcomes_store

    return len(outcomes_store(plan).pending())


def cmd_doctor(args) -> int:
    from .doctor import diagnose, report

    try:
        inst = _installation(args)
        running = inst.supervisor_pid() is not None
        _step(f"Checking {inst.data_dir} ({'running' if running else 'stopped'})")
        problems = diagnose(inst.data_dir, args.site, lambda m: _say(f"  note: {m}"))
    except SiteError as err:
        print(err, file=sys.stderr)
        return 2
    except PermissionError as err:
        return _fail(f"cannot read {err.filename}: run doctor as the user who ran 'up'", 2)
    report(problems, _say)
    return 1 if problems else 0


def cmd_password_link(args) -> int:
    """A one-time link that sets one person's first-use password (admins and instructors
    get theirs only this way; for anyone else it resets a forgotten one)."""
    from .password_links import LinkStore, link_url, parse_duration, role_of

    inst = _installation(args)
    plan = inst.plan()
    if plan.auth.type != FIRST_USE:
        return _fail(
            f"this hub logs in with auth type {plan.auth.type!r}: coursehub keeps no "
            "passwords for it (set-password links are for first-use logins)",
            2,
        )
    if args.name not in plan.people:
        return _fail(f"{args.name!r} is not in the site file: nobody of that name may log in", 2)
    try:
        ttl = parse_duration(args.expires)
    except ValueError as err:
        return _fail(str(err), 2)
    try:
        code = LinkStore(plan.paths.password_links).issue(args.name, ttl)
    except PermissionError as err:
        return _fail(f"cannot write {err.filename}: run this as the user who ran 'up'", 2)
    until = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(time.time() + ttl))
    # the code is shown here once and nowhere else (only its hash is kept)
    _say(f"Set-password link for {args.name} ({role_of(plan, args.name)}), once, until {until}:")
    _say(f"  {link_url(args.hub_url or plan.public_url, args.name, code)}")
    _say(
        f"Give it to {args.name} alone: whoever opens it sets {args.name}'s password. "
        "An earlier link for this name no longer works."
    )
    return 0


def _running_servers(inst) -> dict[str, bool]:
    """name -> ready, from the hub API with coursehub's own (read-only here) token."""
    import requests

    from .targets.local.apply import HubAPI

    try:
        users = HubAPI(inst.plan()).items("users", {"state": "active"})
    except (OSError, requests.RequestException, KeyError, ValueError):
        return {}
    return {u["name"]: bool(u.get("servers", {}).get("", {}).get("ready")) for u in users}


def _installation(args):
    """The installation of --data-dir, or exit with what to do."""
    from .targets.local.runtime import Installation

    inst = Installation(_data_dir(args))
    try:
        exists = inst.exists()
    except PermissionError:
        raise SystemExit(
            _fail(f"cannot read {inst.data_dir}: run this as the user who ran 'coursehub up'", 2)
        ) from None
    if not exists:
        raise SystemExit(
            _fail(
                f"no coursehub installation in {inst.data_dir}; pass --data-dir, or "
                "start one with 'coursehub up'",
                3,
            )
        )
    return inst


def run_as_grader(data_dir: str, course_id: str, argv: list[str]) -> int:
    from .targets.local.runtime import Installation
    from .targets.local.runtime import run_as_grader as run

    try:
        return run(Installation(data_dir), course_id, argv).returncode
    except KeyError as err:
        raise SystemExit(_fail(err.args[0])) from None


def cmd_nbgrader(args) -> int:
    inst = _installation(args)
    data_dir = inst.data_dir
    nbgrader = os.path.join(inst.runtime()["user_env"], "bin", "nbgrader")
    return run_as_grader(data_dir, args.course, [nbgrader, *args.args])


def cmd_autograde(args) -> int:
    """Autograde a whole assignment with sandboxed workers, as the course's grader."""
    from .names import assignment_name_problem, username_problem

    inst = _installation(args)
    if problem := assignment_name_problem(args.assignment):
        return _fail(f"assignment name {args.assignment!r} {problem}")
    for student in args.student:
        if problem := username_problem(student):
            return _fail(f"--student {student!r}: {problem}")
    if args.jobs is not None and args.jobs < 1:
        return _fail("--jobs must be 1 or more (the default is the machine's cores)", 2)
    python = os.path.join(inst.runtime()["user_env"], "bin", "python")
    argv = [python, "-m", "coursehub.grading.parallel", args.assignment]
    if args.jobs is not None:
        argv += ["--jobs", str(args.jobs)]
    for student in args.student:
        argv += ["--student", student]
    argv += ["--force"] * args.force + ["--collect"] * args.collect
    return run_as_grader(inst.data_dir, args.course, argv)


def cmd_sample(args) -> int:
    """Put the sample assignment into a course, generate it and release it."""
    import nbformat

    from .names import assignment_name_problem
    from .runas import write_files_as
    from .sample import sample_notebook

    inst = _installation(args)
    data_dir = inst.data_dir
    plan = inst.plan()
    if args.course not in plan.courses:
        return _fail(f"no course {args.course!r} in this installation")
    g = plan.courses[args.course]
    if problem := assignment_name_problem(args.name):
        return _fail(f"assignment name {args.name!r} {problem}")
    # the course folder is the grader's: the grader writes into it, not root
    write_files_as(
        g.account,
        [
            (
                str(Path(g.course_root, "source", args.name)),
                0o755,
                f"{args.name}.ipynb",
                nbformat.writes(sample_notebook()),
            )
        ],
        cwd=g.course_root,
        what=f"the sample assignment of {args.course}",
    )
    nbgrader = os.path.join(inst.runtime()["user_env"], "bin", "nbgrader")
    _step(f"Generating {args.name} in {args.course}")
    rc = run_as_grader(
        data_dir, args.course, [nbgrader, "generate_assignment", args.name, "--force"]
    )
    if rc == 0 and args.release:
        _step(f"Releasing {args.name} to the students of {args.course}")
        rc = run_as_grader(
            data_dir, args.course, [nbgrader, "release_assignment", args.name, "--force"]
        )
    return rc


def cmd_render_compose(args) -> int:
    """Render a folder that runs the site on a Docker host (docker compose)."""
    from .containers import ContainerPlanError
    from .targets.compose.changes import stack_changes
    from .targets.compose.render import ComposeError, render_all
    from .targets.compose.writer import OutputError, prepare_input, write_folder

    out = Path(args.out)
    _step(f"Checking {args.site}")
    try:
        inp = prepare_input(args.site, out, args.root)
        files = render_all(inp)  # everything in memory first: an error writes nothing
    except SiteError as err:
        print(err, file=sys.stderr)
        return 2
    except (OutputError, ComposeError, ContainerPlanError) as err:
        return _fail(f"{err}; nothing was written", 2)
    plan = inp.plan
    _step(
        f"Rendering for a Docker host: {len(plan.courses)} course(s), {len(plan.people)} people, "
        f"host folders under {plan.layout.root}, coursehub {inp.pins['coursehub']} "
        f"with JupyterHub {inp.pins['jupyterhub']} and nbgrader {inp.pins['nbgrader']}"
    )
    compose_file = out / "docker-compose.yml"
    before = compose_file.read_text(encoding="utf-8") if compose_file.is_file() else None
    outcome = write_folder(out, files, force=args.force)
    _step(
        f"Wrote {out}: {len(outcome.written)} file(s) written, {len(outcome.unchanged)} unchanged"
        + (f", {len(outcome.removed)} no longer needed removed" if outcome.removed else "")
    )
    for name in outcome.kept:
        _say(f"  kept {name}: it was changed after coursehub wrote it; --force replaces it")
    for name in outcome.left:
        _say(f"  left {name}: no longer rendered, but changed after coursehub wrote it")
    after = compose_file.read_text(encoding="utf-8") if compose_file.is_file() else ""
    changes = stack_changes(before, after, outcome.written)
    _say("")
    _say("On a running stack, start.sh (docker compose up -d) does this:")
    for line in changes or ["nothing: every service stays as it runs"]:
        _say(f"  {line}")
    _say("")
    _say("Next, on the Docker host, as root:")
    _say(f"  {out}/prepare-host.sh   # host folders and files with their owners (no Docker needed)")
    _say(f"  {out}/start.sh          # the above, then the network, the images, and 'up -d'")
    _say(f"The env files in {out} hold the secrets (mode 0600): keep them out of version control.")
    return 1 if outcome.kept and args.strict else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursehub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"coursehub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    # in this order: it is the order `coursehub --help` lists the commands in
    _add_site_file_commands(sub)
    _add_installation_commands(sub)
    _add_password_link_command(sub)
    _add_grading_commands(sub)
    _add_course_commands(sub)
    _add_member_commands(sub)
    _add_render_commands(sub)
    _add_grades_commands(sub)
    p = sub.add_parser("_supervise")  # internal: the supervisor 'up --detach' starts
    _data_dir_arg(p)
    p.set_defaults(func=cmd_supervise)
    return parser


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", help=f"the installation's data folder (default ./{DEFAULT_DATA_DIR})"
    )


def _add_site_file_commands(sub: argparse._SubParsersAction) -> None:
    """init and check: the site file alone, nothing runs."""
    p = sub.add_parser("init", help="write a commented starter site file")
    p.add_argument("file", nargs="?", default=DEFAULT_SITE)
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("check", help="check a site file and say what is wrong")
    p.add_argument("--site", default=DEFAULT_SITE)
    p.set_defaults(func=cmd_check)


def _add_installation_commands(sub: argparse._SubParsersAction) -> None:
    """up, down, status and doctor: an installation's processes and health."""
    p = sub.add_parser("up", help="start proxy, hub and grader servers from a site file")
    p.add_argument("--site", default=DEFAULT_SITE)
    _data_dir_arg(p)
    p.add_argument(
        "--detach", action="store_true", help="run in the background and return when healthy"
    )
    p.add_argument("--user-env", help="Python environment the servers run from")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for health")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop everything of an installation")
    _data_dir_arg(p)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="each process, each course, URLs, health")
    _data_dir_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", help="check an installation for every known trap; say the fix")
    _data_dir_arg(p)
    p.add_argument(
        "--site", help="hold it to this site file (default: what the installation's Plan records)"
    )
    p.set_defaults(func=cmd_doctor)


def _add_password_link_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("password-link", help="a one-time link that sets a person's password")
    p.add_argument("name")
    _data_dir_arg(p)
    p.add_argument("--expires", default="24h", help="how long it works: 30m, 24h, 7d (24h)")
    p.add_argument("--hub-url", help="the hub's address as people reach it (default: hub.ip)")
    p.set_defaults(func=cmd_password_link)


def _add_grading_commands(sub: argparse._SubParsersAction) -> None:
    """nbgrader, autograde and sample: work in a course as its grader account."""
    p = sub.add_parser("nbgrader", help="run an nbgrader command as a course's grader account")
    p.add_argument("course")
    _data_dir_arg(p)
    p.add_argument("args", nargs="*", help="-- then nbgrader's arguments, passed on as they are")
    p.set_defaults(func=cmd_nbgrader)

    p = sub.add_parser(
        "autograde",
        help="autograde every submission of an assignment, sandboxed, with parallel workers",
    )
    p.add_argument("course")
    p.add_argument("assignment")
    _data_dir_arg(p)
    p.add_argument("--jobs", type=int, help="workers side by side (default: the machine's cores)")
    p.add_argument("--student", action="append", default=[], help="only this student (repeatable)")
    p.add_argument("--collect", action="store_true", help="collect the submissions first")
    p.add_argument(
        "--force", action="store_true", help="grade again what was graded and has not changed"
    )
    p.set_defaults(func=cmd_autograde)

    p = sub.add_parser("sample", help="add, generate and release the sample assignment in a course")
    p.add_argument("course")
    _data_dir_arg(p)
    p.add_argument("--name", default="ps1")
    p.add_argument("--no-release", dest="release", action="store_false")
    p.set_defaults(func=cmd_sample)


def _add_course_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("course", help="list, add or remove courses (live when running)")
    csub = p.add_subparsers(dest="action", required=True)
    for action in ("list", "add", "remove"):
        q = csub.add_parser(action)
        if action != "list":
            q.add_argument("course")
        if action == "add":
            q.add_argument("--title")
            q.add_argument("--instructor", action="append", default=[], help="repeat for several")
            q.add_argument("--student", action="append", default=[], help="repeat for several")
        q.add_argument("--site", help="the site file (default: the one the installation runs)")
        _data_dir_arg(q)
        q.set_defaults(func=cmd_course)


def _add_member_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("member", help="list, add, remove or import a course's members (live)")
    msub = p.add_subparsers(dest="action", required=True)
    for action in ("list", "add", "remove", "import"):
        q = msub.add_parser(action)
        q.add_argument("course")
        if action in ("add", "remove"):
            q.add_argument("name")
        if action == "add":
            q.add_argument("--role", choices=["student", "instructor"], default="student")
        if action == "import":
            q.add_argument(
                "csv", help="a CSV with a 'username' column and an optional 'role' column"
            )
        q.add_argument("--site", help="the site file (default: the one the installation runs)")
        _data_dir_arg(q)
        q.set_defaults(func=cmd_member)


def _add_render_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="write the files that run the site elsewhere")
    rsub = p.add_subparsers(dest="target", required=True)
    q = rsub.add_parser(
        "compose", help="a folder for a Docker host: compose file, images, env files, scripts"
    )
    q.add_argument("--site", default=DEFAULT_SITE)
    q.add_argument("--out", required=True, help="the folder to write (made if missing)")
    q.add_argument(
        "--root",
        default="/",
        help="prefix of the host folders (/srv/jupyterhub, /etc/jupyterhub, ...); default /",
    )
    q.add_argument(
        "--force", action="store_true", help="replace files changed since coursehub wrote them"
    )
    q.add_argument(
        "--strict", action="store_true", help="exit 1 when a changed file was kept (for automation)"
    )
    q.set_defaults(func=cmd_render_compose)


def _add_grades_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grades", help="send scores back to the LMS (LTI 1.1 Basic Outcomes, LTI 1.3 AGS)"
    )
    gsub = p.add_subparsers(dest="action", required=True)
    q = gsub.add_parser("push", help="send an assignment's scores from the course's gradebook")
    q.add_argument("course")
    q.add_argument("assignment")
    _data_dir_arg(q)
    q.set_defaults(func=cmd_grades)
    q = gsub.add_parser("retry", help="send again every score waiting in the outbox")
    q.add_argument("course", nargs="?")
    _data_dir_arg(q)
    q.set_defaults(func=cmd_grades)
    q = gsub.add_parser("pending", help="list the scores waiting in the outbox")
    q.add_argument("course", nargs="?")
    _data_dir_arg(q)
    q.set_defaults(func=cmd_grades)


def cmd_grades(args) -> int:
    from .lti.grades import GradesError, outcomes_store, push, retry
    from .targets.local.host import LocalHost
    from .targets.local.runtime import Installation

    inst = Installation(_data_dir(args))
    if not inst.exists():
        return _fail(f"no installation in {inst.data_dir}; run 'coursehub up' first")
    host = LocalHost(inst.data_dir)
    if args.action == "pending":
        waiting = outcomes_store(inst.plan()).pending(args.course)
        for course, student, assignment, score, attempts, error in waiting:
            _say(f"{course} {assignment} {student}: {score:.4f} ({attempts} tries; {error})")
        _say(f"{len(waiting)} score(s) waiting in the outbox")
        return 1 if waiting else 0
    try:
        if args.action == "push":
            report = push(host, args.course, args.assignment)
        else:
            report = retry(host, args.course)
    except (GradesError, KeyError) as err:
        return _fail(str(err))
    for student, assignment, score in report.sent:
        _say(f"sent {assignment} {student}: {score:.4f}")
    for student in report.no_launch:
        _say(
            f"not sent {student}: they never opened this assignment's link in the LMS, "
            "so the LMS gave no place for their score"
        )
    for student, assignment, score, error in report.failed:
        _say(f"FAILED {assignment} {student}: {score:.4f}: {error}; kept in the outbox")
    if report.failed:
        return _fail(
            f"{len(report.failed)} score(s) did not arrive; 'coursehub grades retry' sends them again"
        )
    _say(f"{len(report.sent)} score(s) sent")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first '--' belongs to the command coursehub runs (nbgrader).
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    if hasattr(args, "args"):
        args.args = [*args.args, *passthrough]
    elif passthrough:
        return _fail(f"'coursehub {args.command}' takes no arguments after '--'", 2)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
