"""The supervisor process of a local installation (`coursehub _supervise`): the
processes it runs and what it does between their health checks (students the
formgrader added, submission receipts, grades back to the LMS)."""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable

from ...exchange.receipts import SCAN_SECONDS, scan_argv
from ...lti.grades import AutoPush
from .host import LocalHost
from .reconcile import adopt_formgrader_students
from .runtime import Installation, process_specs, run_as_grader, terminal_safe
from .supervisor import Supervisor


class ReceiptScan:
    """Every `interval` seconds, as each course's grader: note the submissions coursehub
    has not seen yet (coursehub.exchange.receipts), so that when a submission counts as
    made is coursehub's record from soon after it was made, not the student's word."""

    interval = SCAN_SECONDS

    def __init__(self, inst: Installation):
        self.inst = inst
        self.last = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        plan = self.inst.plan()
        python = os.path.join(self.inst.runtime()["user_env"], "bin", "python")
        for cid, g in plan.courses.items():
            if not g.students:
                continue
            argv = scan_argv(python, f"{plan.paths.exchange}/{cid}/inbound", g.receipts)
            proc = run_as_grader(self.inst, cid, argv, capture=True)
            if proc.returncode != 0:
                logging.getLogger(__name__).warning(
                    "receipts of %s: %s", cid, terminal_safe(proc.stderr.strip()[-300:])
                )


def build_supervisor(
    inst: Installation, on_event: Callable[[str], None] | None = None
) -> Supervisor:
    grades = AutoPush(
        LocalHost(inst.data_dir)
    )  # LMS sites: new autograded scores go back by themselves
    receipts = ReceiptScan(inst)

    def periodic() -> None:
        adopt_formgrader_students(inst)
        receipts.tick()
        if inst.plan().auth.is_lti:
            grades.tick()

    return Supervisor(
        inst.data_dir,
        process_specs(inst),
        str(inst.state_file),
        on_event,
        respec=lambda: process_specs(inst),
        periodic=periodic,
    )


def supervise(inst: Installation) -> int:
    """Run the supervisor in this process until SIGTERM/SIGINT. Holds the lock."""
    inst.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(inst.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"coursehub is already running for {inst.data_dir}", file=sys.stderr)
        return 1
    logging.basicConfig(
        filename=inst.log_file,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    for handler in logging.getLogger().handlers:  # the log file basicConfig opened
        if isinstance(handler, logging.FileHandler):
            os.fchmod(handler.stream.fileno(), 0o600)
    sup = build_supervisor(inst)
    try:
        sup.start_all()
        sup.run()
    finally:
        sup.stopping = True
        if any(c.alive for c in sup.children.values()):
            sup.stop_all()
        os.close(fd)
    return 0
