"""The first program inside a grading sandbox (coursehub.sandbox): set the limits, copy
the submission into the scratch folder, then become the kernel.

Standard library only, run as a file with ``python -I``: it imports nothing from the
submission or the environment, and it runs before any student code.
"""

from __future__ import annotations

import argparse
import os
import resource
import stat
import sys

SUBMISSION = "/submission"
SCRATCH = "/scratch"
MAX_ENTRIES = 10_000  # files and folders copied from one submission


def set_limits(nproc: int, memory: int, fsize: int, cpu: int) -> None:
    # RLIMIT_NPROC is set here, inside the new user namespace, so it counts this
    # sandbox's processes and threads only (not the grader's others, not other sandboxes)
    for which, value in (
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_FSIZE, fsize),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 1024),  # open files each hold memory no other limit counts
    ):
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # a limit can only be lowered here
        resource.setrlimit(which, (value, value))


def copy_tree(src: str, dst: str) -> int:
    """Copy folders and regular files (nothing else) from src into dst; return the count."""
    count = 0
    stack = [(src, dst)]
    while stack:
        s, d = stack.pop()
        with os.scandir(s) as entries:
            for entry in entries:
                count += 1
                if count > MAX_ENTRIES:
                    raise OSError(f"the submission has more than {MAX_ENTRIES} files")
                target = os.path.join(d, entry.name)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(target, 0o755)
                    stack.append((entry.path, target))
                elif stat.S_ISREG(st.st_mode):
                    with open(entry.path, "rb") as fin, open(target, "xb") as fout:
                        while chunk := fin.read(1 << 20):
                            fout.write(chunk)
    return count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coursehub-sandbox")
    p.add_argument("--nproc", type=int, required=True)
    p.add_argument("--memory", type=int, required=True)
    p.add_argument("--fsize", type=int, required=True)
    p.add_argument("--cpu", type=int, required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no kernel command")
    set_limits(args.nproc, args.memory, args.fsize, args.cpu)
    try:
        copy_tree(SUBMISSION, SCRATCH)
    except OSError as err:
        # the grader side reports this line as the reason the notebook was not graded
        print(f"coursehub-sandbox: cannot copy the submission: {err}", file=sys.stderr)
        return 3
    for folder in ("home", "ipython", "matplotlib"):
        os.makedirs(os.path.join("/tmp", folder), exist_ok=True)  # noqa: S108 - its own tmpfs
    os.execv(cmd[0], cmd)  # noqa: S606 - the kernel's command, from the kernel spec
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
