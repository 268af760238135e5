"""coursehub's command line: thin; parse, call, report with progress."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import __version__
from .site import SiteError, load_site
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
    path = Path(args.file)
    if path.exists() and not args.force:
        return _fail(f"{path} exists; pass --force to replace it")
    path.write_text(STARTER_SITE)
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
    if plan.auth["type"] == "shared-password":
        _say(f"Log in with any name from {site_file} and the password in its auth.user_password")
        if plan.admins:
            _say("  (admins use auth.admin_password).")
    else:
        _say("Log in with a name from the site file; your first login sets your password.")
    _say(f"Status: coursehub status --data-dir {inst.data_dir}")
    _say(f"Stop:   coursehub down --data-dir {inst.data_dir}")


def cmd_up(args) -> int:
    from .targets.local.install import PreflightError, prepare
    from .targets.local.runtime import (
        Installation,
        save_runtime,
        start_detached,
        supervise,
        wait_healthy,
    )

    data_dir = _data_dir(args)
    inst = Installation(data_dir)
    running = inst.supervisor_pid()
    if running:
        _say(f"coursehub is already running for {data_dir} (pid {running}).")
        return cmd_status(argparse.Namespace(data_dir=data_dir, json=False))
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
    except PreflightError as err:
        return _fail(str(err))
    plan = prepared.plan
    _step(
        f"Prepared {data_dir}: {len(plan.courses)} course(s), {len(plan.people)} people, "
        f"{'one uid each' if plan.isolated else 'no isolation'}"
    )
    save_runtime(data_dir, prepared.user_env, prepared.hub_config_file)
    if not args.detach:
        _step("Starting proxy, hub and grader servers (Ctrl-C stops everything)")
        pid = os.fork()
        if pid == 0:  # report progress from a child while this process supervises
            ok = wait_healthy(inst, args.timeout, lambda m: _step(m), os.getppid())
            if ok:
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
    _print_login(inst, args.site)
    return 0


def _tail_logs(inst, lines: int = 15) -> None:
    logs = Path(inst.data_dir, "logs")
    for log in sorted(logs.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log}", file=sys.stderr)
        for line in text:
            print(f"    {line}", file=sys.stderr)


def cmd_supervise(args) -> int:
    from .targets.local.runtime import Installation, supervise

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
    if not pid:
        return 3
    return 0 if all(h.ok for h in checks) else 1


def _running_servers(inst) -> dict[str, bool]:
    """name -> ready, from the hub API with coursehub's own (read-only here) token."""
    import urllib.request

    from .secrets import load_secrets

    plan = inst.plan()
    token = load_secrets(plan.paths.secrets)["automation_token"]
    req = urllib.request.Request(  # noqa: S310 - the hub on loopback
        f"{plan.hub_api_url}/users?state=active", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=3) as r:  # noqa: S310 - the hub on loopback
            users = json.load(r)
    except OSError:
        return {}
    return {u["name"]: bool(u.get("servers", {}).get("", {}).get("ready")) for u in users}


def _installation(args):
    """The installation of --data-dir, or exit with what to do."""
    from .targets.local.runtime import Installation

    inst = Installation(_data_dir(args))
    if not inst.exists():
        raise SystemExit(
            _fail(
                f"no coursehub installation in {inst.data_dir}; pass --data-dir, or "
                "start one with 'coursehub up'",
                3,
            )
        )
    return inst


def run_as_grader(data_dir: str, course_id: str, argv: list[str]) -> int:
    """Run a command as the course's grader account, with its configuration and hub variables."""
    from .runas import demote, find_nss_wrapper
    from .secrets import load_secrets
    from .targets.local.processes import grader_spec
    from .targets.local.runtime import Installation

    inst = Installation(data_dir)
    plan = inst.plan()
    if course_id not in plan.courses:
        known = ", ".join(plan.courses) or "none"
        raise SystemExit(_fail(f"no course {course_id!r} in this installation (courses: {known})"))
    spec = grader_spec(
        plan,
        course_id,
        load_secrets(plan.paths.secrets),
        inst.runtime()["user_env"],
        find_nss_wrapper(),
    )
    g = plan.courses[course_id]
    return subprocess.call(
        argv,
        env=spec.env,
        cwd=g.course_root,
        preexec_fn=demote(spec.account, cwd=g.course_root),  # noqa: PLW1509
    )


def cmd_nbgrader(args) -> int:
    inst = _installation(args)
    data_dir = inst.data_dir
    nbgrader = os.path.join(inst.runtime()["user_env"], "bin", "nbgrader")
    return run_as_grader(data_dir, args.course, [nbgrader, *args.args])


def cmd_sample(args) -> int:
    """Put the sample assignment into a course, generate it and release it."""
    from .sample import write_sample

    inst = _installation(args)
    data_dir = inst.data_dir
    plan = inst.plan()
    if args.course not in plan.courses:
        return _fail(f"no course {args.course!r} in this installation")
    g = plan.courses[args.course]
    src = Path(g.course_root, "source", args.name)
    for folder in (src.parent, src):
        folder.mkdir(mode=0o755, exist_ok=True)
        os.chown(folder, g.account.uid, g.account.gid)
    nb = src / f"{args.name}.ipynb"
    write_sample(str(nb))
    os.chown(nb, g.account.uid, g.account.gid)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursehub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"coursehub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir_arg(p):
        p.add_argument(
            "--data-dir", help=f"the installation's data folder (default ./{DEFAULT_DATA_DIR})"
        )

    p = sub.add_parser("init", help="write a commented starter site file")
    p.add_argument("file", nargs="?", default=DEFAULT_SITE)
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("check", help="check a site file and say what is wrong")
    p.add_argument("--site", default=DEFAULT_SITE)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("up", help="start proxy, hub and grader servers from a site file")
    p.add_argument("--site", default=DEFAULT_SITE)
    data_dir_arg(p)
    p.add_argument(
        "--detach", action="store_true", help="run in the background and return when healthy"
    )
    p.add_argument("--user-env", help="Python environment the servers run from")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for health")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop everything of an installation")
    data_dir_arg(p)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="each process, each course, URLs, health")
    data_dir_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("nbgrader", help="run an nbgrader command as a course's grader account")
    p.add_argument("course")
    data_dir_arg(p)
    p.add_argument("args", nargs="*", help="-- then nbgrader's arguments, passed on as they are")
    p.set_defaults(func=cmd_nbgrader)

    p = sub.add_parser("sample", help="add, generate and release the sample assignment in a course")
    p.add_argument("course")
    data_dir_arg(p)
    p.add_argument("--name", default="ps1")
    p.add_argument("--no-release", dest="release", action="store_false")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("_supervise")
    data_dir_arg(p)
    p.set_defaults(func=cmd_supervise)
    return parser


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
