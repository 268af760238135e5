"""CourseLocalSpawner.start returns once the server listens, so the hub's first check finds it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

from coursehub.hub.spawner import CourseLocalSpawner

LATE_LISTENER = """
import socket, sys, time
time.sleep(float(sys.argv[2]))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(30)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _spawner(proc: subprocess.Popen, timeout: float = 20) -> CourseLocalSpawner:
    spawner = CourseLocalSpawner(http_timeout=int(timeout))
    spawner.proc = proc
    return spawner


def test_waits_until_the_server_listens():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", LATE_LISTENER, str(port), "0.8"])
    try:
        assert not _connects(port)
        asyncio.run(_spawner(proc)._listening("127.0.0.1", port))
        assert _connects(port), "returned before the server listened"
    finally:
        proc.kill()
        proc.wait()


def test_returns_when_the_server_dies_instead_of_waiting_out_the_timeout():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        t0 = time.monotonic()
        asyncio.run(_spawner(proc, timeout=60)._listening("127.0.0.1", port))
        assert time.monotonic() - t0 < 30
        assert proc.poll() is not None
    finally:
        proc.kill()
        proc.wait()
