"""The grading sandbox's pure parts: the bubblewrap command, the kernel's environment, the
limits in the site file and the Plan, and which submissions a re-run grades."""

from __future__ import annotations

import json
import os
import time

import pytest
from sites import two_course_data

from coursehub import sandbox
from coursehub.grading import parallel
from coursehub.plan import AUTOGRADE_STEPS, Plan, derive
from coursehub.sandbox_inside import copy_tree
from coursehub.site import SiteError, parse_site, site_to_data

LIMITS = sandbox.Limits(
    cell_timeout=5, notebook_timeout=60, memory=1 << 30, processes=40, disk=64 << 20
)


def site_data(**extra) -> dict:
    return {**two_course_data(), **extra}


def argv(**kw) -> list[str]:
    args = dict(
        kernel_cmd=[
            "/opt/env/bin/python",
            "-I",
            "-m",
            "ipykernel_launcher",
            "-f",
            sandbox.CONNECTION_FILE,
        ],
        submission="/srv/course/autograded/ada/ps1",
        connection_file="/home/grader/.local/share/jupyter/runtime/kernel-1.json.sandbox",
        limits=LIMITS,
        env=sandbox.kernel_environment({}),
        info_fd=7,
        readonly=["/opt/env"],
    )
    args.update(kw)
    return sandbox.bwrap_argv("/usr/bin/bwrap", **args)


def pairs(cmd: list[str], flag: str) -> list[tuple[str, str]]:
    return [(cmd[i + 1], cmd[i + 2]) for i, a in enumerate(cmd) if a == flag]


def test_every_namespace_is_new_and_nothing_of_the_host_is_writable():
    cmd = argv()
    opts = cmd[: cmd.index("--")]
    for flag in (
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ):
        assert flag in opts
    assert opts[opts.index("--cap-drop") + 1] == "ALL"
    # no read-write bind of anything of the host: writable are only the sandbox's tmpfs
    assert "--bind" not in opts and "--dev-bind" not in opts
    tmpfs = [opts[i + 1] for i, a in enumerate(opts) if a == "--tmpfs"]
    assert sorted(tmpfs) == sorted([sandbox.SCRATCH, sandbox.TMP, sandbox.IPC, "/dev/shm"])
    sizes = [int(opts[i + 1]) for i, a in enumerate(opts) if a == "--size"]
    assert sizes == [sandbox.SHM_SIZE, LIMITS.disk, LIMITS.disk, 1 << 20]
    assert [opts[i + 1] for i, a in enumerate(opts) if a == "--remount-ro"] == ["/dev", "/"]
    assert opts[opts.index("--chdir") + 1] == sandbox.SCRATCH


def test_the_submission_and_the_connection_file_are_read_only_at_fixed_places():
    binds = dict((dst, src) for src, dst in pairs(argv(), "--ro-bind"))
    assert binds[sandbox.SUBMISSION] == "/srv/course/autograded/ada/ps1"
    assert binds[sandbox.CONNECTION_FILE].endswith(".json.sandbox")
    assert binds[sandbox.LAUNCHER] == sandbox.launcher_file()
    # nothing of the course, the grader's home or the data folder is seen
    for dst in binds:
        assert not dst.startswith(("/srv", "/home", "/root", "/var")), dst


def test_limits_go_to_the_launcher_inside():
    cmd = argv()
    inside = cmd[cmd.index("--") + 1 :]
    assert inside[:4] == ["/opt/env/bin/python", "-I", "-S", sandbox.LAUNCHER]
    flags = dict(zip(inside[4:12:2], inside[5:12:2], strict=True))
    assert flags == {
        "--nproc": "40",
        "--memory": str(1 << 30),
        "--fsize": str(64 << 20),
        "--cpu": "65",
    }
    assert inside[inside.index("--", 4) + 1 :][:3] == ["/opt/env/bin/python", "-I", "-m"]


def test_the_kernel_gets_no_token_and_no_path_of_the_grader():
    env = sandbox.kernel_environment(
        {
            "JUPYTERHUB_API_TOKEN": "secret",
            "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:1",
            "HOME": "/home/grader",
            "LD_PRELOAD": "/usr/lib/libnss_wrapper.so",
            "NSS_WRAPPER_PASSWD": "/srv/etc/passwd",
            "NBGRADER_EXECUTION": "autograde",
        }
    )
    assert env["NBGRADER_EXECUTION"] == "autograde"
    assert env["HOME"].startswith(sandbox.TMP)
    assert not any("JUPYTERHUB" in k or "NSS" in k or k == "LD_PRELOAD" for k in env)
    set_in_sandbox = pairs(argv(env=env, path_env="/opt/env/bin:/usr/bin"), "--setenv")
    assert dict(set_in_sandbox)["PATH"] == "/opt/env/bin:/usr/bin"
    assert "secret" not in json.dumps(set_in_sandbox)
    assert "NBGRADER_EXECUTION" not in sandbox.kernel_environment({"NBGRADER_EXECUTION": "x"})


def test_python_kernels_start_isolated():
    cmd = sandbox.isolated_python(["/e/bin/python3", "-m", "ipykernel_launcher", "-f", "c"])
    assert cmd[:3] == ["/e/bin/python3", "-I", "-c"] and cmd[-2:] == ["-f", "c"]
    # the working folder goes on sys.path only once the kernel is loaded
    assert cmd[3].index("from ipykernel import kernelapp") < cmd[3].index("sys.path.insert")
    assert sandbox.isolated_python(["/e/bin/python", "k.py"]) == ["/e/bin/python", "-I", "k.py"]
    assert sandbox.isolated_python(["/usr/bin/R", "--slave"]) == ["/usr/bin/R", "--slave"]


def test_dev_is_read_only_but_a_small_dev_shm():
    opts = argv()
    i = opts.index("/dev/shm")
    assert opts[i - 1] == "--tmpfs" and opts[i - 2] == str(sandbox.SHM_SIZE)
    assert opts[i + 1 : i + 3] == ["--remount-ro", "/dev"]


def run_filter(prog: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """Interpret a classic-BPF seccomp program for one system call."""
    import struct

    insns = [struct.unpack("=HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    pc = acc = 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = {4: arch, 0: nr, 16: arg0 & 0xFFFFFFFF}[k]
        elif code == 0x06:
            return k
        elif code in (0x15, 0x35, 0x45):
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if hit else jf
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")
        pc += 1


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_program_refuses_the_listed_calls(machine):
    prog = sandbox.seccomp_program(machine)
    audit = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[machine]

    def run(arch: int, nr: int, arg0: int = 0) -> int:
        return run_filter(prog, arch, nr, arg0)

    for name, nr in sandbox._DENIED[machine].items():
        assert run(audit, nr) == sandbox.EPERM, name
    for nr in (0, 1, 2, 3, 57, 60, 63, 64, 221, 231):  # read, write, fork, exit, ...
        if nr not in sandbox._DENIED[machine].values():
            assert run(audit, nr) == sandbox.ALLOW, nr
    assert run(0x40000003, 0) == sandbox.EPERM  # i386 system calls on x86_64
    if machine == "x86_64":
        assert run(audit, 0x40000000 + 1) == sandbox.EPERM  # x32
    assert sandbox.seccomp_program("riscv64") is None


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_program_refuses_new_user_namespaces_and_some_sockets(machine):
    """Without /proc (in a container) --disable-userns cannot work: the filter is what
    keeps a notebook from making a user namespace of its own, by clone or unshare."""
    prog = sandbox.seccomp_program(machine)
    audit = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[machine]
    calls = sandbox._NAMESPACE_CALLS[machine]
    thread = 0x3D0F00  # what pthread_create passes to clone: no new namespace
    sigchld = 17  # fork as clone
    for call in ("clone", "unshare"):
        assert run_filter(prog, audit, calls[call], sandbox.CLONE_NEWUSER) == sandbox.EPERM
        assert run_filter(prog, audit, calls[call], sandbox.CLONE_NEWUSER | 0x20000) == (
            sandbox.EPERM
        )
    assert run_filter(prog, audit, calls["clone"], thread) == sandbox.ALLOW
    assert run_filter(prog, audit, calls["clone"], sigchld) == sandbox.ALLOW
    assert run_filter(prog, audit, calls["unshare"], 0x200) == sandbox.ALLOW  # CLONE_FS
    sock = sandbox._SOCKET_CALL[machine]
    for family in sandbox.DENIED_FAMILIES.values():
        assert run_filter(prog, audit, sock, family) == sandbox.EPERM, family
    for family in (1, 2, 10, 16):  # unix, inet, inet6, netlink
        assert run_filter(prog, audit, sock, family) == sandbox.ALLOW, family
    # clone3's flags are in memory the filter cannot read: ENOSYS, and libc falls back
    assert run_filter(prog, audit, calls["clone3"]) == sandbox.ENOSYS
    assert run_filter(prog, audit, sandbox._DENIED[machine]["setns"]) == sandbox.EPERM


def test_without_proc_the_sandbox_has_none_and_needs_the_filter():
    cmd = argv(procfs=False, seccomp_fd=9)
    opts = cmd[: cmd.index("--")]
    assert "--proc" not in opts and "/proc" not in opts
    assert "--disable-userns" not in opts  # it writes /proc/sys: the filter does its work
    assert opts[opts.index("--seccomp") + 1] == "9"
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in opts
    with pytest.raises(ValueError, match="seccomp"):
        argv(procfs=False)
    probe = sandbox.probe_argv("/usr/bin/bwrap", procfs=False)
    assert "--proc" not in probe and "--disable-userns" not in probe
    assert "--proc" in sandbox.probe_argv("/usr/bin/bwrap")


def test_readonly_paths_are_the_kernels_environment_and_what_the_site_adds(tmp_path):
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (env / "bin" / "python").symlink_to("/usr/bin/python3")
    paths = sandbox.readonly_paths([str(env / "bin" / "python")], ["/opt/datasets"])
    assert paths == [str(env), "/opt/datasets"]  # /usr is bound anyway


@pytest.mark.parametrize(
    "text,size", [("512M", 512 << 20), ("2G", 2 << 30), ("1048576", 1 << 20), ("64k", 64 << 10)]
)
def test_sizes(text, size):
    assert sandbox.parse_size(text) == size
    assert sandbox.parse_size(sandbox.format_size(size)) == size


def test_site_autograde_section():
    site = parse_site(site_data(autograde={"cell_timeout": 5, "memory": "1G", "disk": "100M"}))
    assert site.autograde == sandbox.Limits(cell_timeout=5, memory=1 << 30, disk=100 << 20)
    assert site_to_data(site)["autograde"] == {"cell_timeout": 5, "memory": "1G", "disk": "100M"}
    assert "autograde" not in site_to_data(parse_site(site_data()))
    with pytest.raises(SiteError) as err:
        parse_site(site_data(autograde={"memory": "a lot", "cell_timeout": 900, "gpus": 1}))
    text = str(err.value)
    assert "autograde.memory" in text and "'2G'" in text
    assert "autograde.cell_timeout" in text and "notebook_timeout" in text
    assert "gpus" in text


def test_plan_configures_every_grader_for_the_sandbox(tmp_path):
    site = parse_site(site_data(autograde={"processes": 20, "notebook_timeout": 90}))
    plan = derive(site, str(tmp_path), isolated=True)
    for course_id, g in plan.courses.items():
        assert plan.grader_env(course_id)["JUPYTER_DEFAULT_PROVISIONER_NAME"] == (
            sandbox.PROVISIONER_NAME
        )
        [layer2] = [f for f in plan.files if f.path == f"{g.config_dir}/nbgrader_config.py"]
        assert layer2.uid == 0 and layer2.mode == 0o644  # root's: the grader cannot edit it
        assert f"c.Autograde.autograde_preprocessors = {list(AUTOGRADE_STEPS)!r}" in layer2.content
        assert "c.GradingProvisioner.process_limit = 20" in layer2.content
        assert "c.GradingProvisioner.notebook_timeout = 90" in layer2.content
    again = Plan.from_json(plan.to_json())
    assert again.autograde == site.autograde


def test_the_provisioner_is_installed_under_its_name():
    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    from coursehub.grading.provisioner import GradingProvisioner

    found = KernelProvisionerFactory.instance()._get_all_provisioners()
    [entry] = [ep for ep in found if ep.name == sandbox.PROVISIONER_NAME]
    assert entry.load() is GradingProvisioner


def test_a_rerun_grades_what_changed(tmp_path):
    sub, graded = tmp_path / "submitted", tmp_path / "autograded"
    sub.mkdir()
    (sub / "ps1.ipynb").write_text("{}")
    assert parallel.needs_grading(str(sub), str(graded), in_gradebook=False)
    graded.mkdir()
    (graded / "ps1.ipynb").write_text("{}")
    assert not parallel.needs_grading(str(sub), str(graded), in_gradebook=True)
    assert parallel.needs_grading(str(sub), str(graded), in_gradebook=False)
    later = time.time() + 10
    os.utime(sub / "ps1.ipynb", (later, later))
    assert parallel.needs_grading(str(sub), str(graded), in_gradebook=True)


def test_gradebook_url_waits_for_the_lock():
    assert parallel.with_lock_wait("sqlite:////c/gradebook.db") == (
        f"sqlite:////c/gradebook.db?timeout={parallel.LOCK_WAIT}"
    )
    assert parallel.with_lock_wait("postgresql://db/x") == "postgresql://db/x"
    assert parallel.sqlite_file("sqlite:////c/gradebook.db?timeout=5") == "/c/gradebook.db"
    assert parallel.sqlite_file("sqlite:///:memory:") is None


def test_progress_bar():
    assert parallel.bar(0, 4, width=4) == "[....] 0/4"
    assert parallel.bar(2, 4, width=4) == "[##..] 2/4"
    assert parallel.bar(4, 4, width=4) == "[####] 4/4"


def test_the_launcher_copies_folders_and_regular_files_only(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "data").mkdir(parents=True)
    dst.mkdir()
    (src / "ps1.ipynb").write_text("{}")
    (src / "data" / "x.csv").write_text("1,2")
    (src / "link").symlink_to("/etc/passwd")
    os.mkfifo(src / "fifo")
    assert copy_tree(str(src), str(dst)) == 5
    assert sorted(p.name for p in dst.rglob("*")) == ["data", "ps1.ipynb", "x.csv"]
    assert not (dst / "link").exists()


def test_doctor_names_a_grader_that_cannot_start_the_sandbox(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from coursehub.doctor import checks

    plan = derive(parse_site(site_data()), str(tmp_path), isolated=False)
    ctx = SimpleNamespace(plan=plan)
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    [problem] = checks.check_grading_sandbox(ctx)
    assert "not installed" in problem.what and "bubblewrap" in problem.fix
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: "/bin/false")
    problems = checks.check_grading_sandbox(ctx)
    assert [p.what.split()[0] for p in problems] == ["grader-algebra", "grader-biology"]
    assert all("user namespaces" in p.fix for p in problems)


def _notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1 + 1"), nbformat.v4.new_markdown_cell("text")]
    return nb


def _manager_failing_with(error: Exception):
    from jupyter_client.manager import AsyncKernelManager

    class Failing(AsyncKernelManager):
        async def start_kernel(self, **kw):
            raise error

    return Failing


def test_a_sandbox_that_cannot_start_grades_nothing_rather_than_zero(tmp_path):
    from coursehub.grading.execute import LimitedExecute
    from coursehub.grading.provisioner import SandboxUnavailable

    ex = LimitedExecute(
        kernel_manager_class=_manager_failing_with(SandboxUnavailable("no bubblewrap"))
    )
    with pytest.raises(SandboxUnavailable):
        ex.preprocess(_notebook(), {"metadata": {"path": str(tmp_path)}})


def test_a_submission_whose_kernel_never_answers_is_graded_with_the_reason(tmp_path):
    from coursehub.grading.execute import LIMIT_ENAME, LimitedExecute

    ex = LimitedExecute(kernel_manager_class=_manager_failing_with(RuntimeError("died")))
    nb, _ = ex.preprocess(_notebook(), {"metadata": {"path": str(tmp_path)}})
    [out] = nb.cells[0].outputs
    assert out.ename == LIMIT_ENAME and "died" in out.evalue
    assert "outputs" not in nb.cells[1]  # markdown untouched


def test_a_course_folder_or_a_home_is_not_a_submission(tmp_path, monkeypatch):
    from coursehub.grading.provisioner import _not_a_submission

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".jupyter").mkdir(parents=True)
    course = tmp_path / "home" / "c1"
    (course / "source").mkdir(parents=True)
    (course / "gradebook.db").write_text("")
    sub = course / "submitted" / "ada" / "ps1"
    (sub / "source").mkdir(parents=True)  # a student's own folder named 'source' is fine
    assert _not_a_submission(str(sub)) is None
    for folder in (course, tmp_path / "home", "/"):
        assert "a folder of its own" in _not_a_submission(str(folder))


@pytest.mark.parametrize(
    ("with_proc", "without_proc", "procfs"),
    [
        (None, None, True),  # one machine: a /proc of its own
        ("bwrap: Can't mount proc on /newroot/proc: Operation not permitted", None, False),
        # any other failure is not a masked /proc: the real start fails and says why
        ("bwrap: setting up uid map: Permission denied", None, True),
        ("Command '...' timed out after 30 seconds", None, True),
        ("bwrap: Can't mount proc on /newroot/proc: Operation not permitted", "no", True),
    ],
)
def test_the_sandbox_goes_without_proc_only_where_proc_cannot_be_mounted(
    monkeypatch, with_proc, without_proc, procfs
):
    import logging

    from coursehub.grading import provisioner

    monkeypatch.setattr(provisioner, "_PROCFS", {})
    monkeypatch.setattr(
        provisioner, "_probe", lambda argv: with_proc if "--proc" in argv else without_proc
    )
    assert provisioner._procfs("/usr/bin/bwrap", logging.getLogger("test")) is procfs
