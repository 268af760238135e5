"""The CLI refuses what cannot work, says what to do, and writes nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import coursehub, free_port_block

GOOD = """\
org: Test
hub: {{ip: 127.0.0.1, port: {port}}}
auth: {{type: first-use}}
people: [ana]
courses:
  - id: c1
    instructors: [ana]
"""


def test_init_writes_a_site_that_checks(tmp_path):
    site = tmp_path / "coursehub.yaml"
    coursehub("init", str(site))
    assert "courses:" in site.read_text()
    assert coursehub("check", "--site", str(site)).returncode == 0
    again = coursehub("init", str(site), check=False)
    assert again.returncode != 0 and "--force" in again.stderr


def test_bad_site_file_starts_and_writes_nothing(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        "org: X\nauth: {type: first-use}\ncourses:\n  - id: 'Intro 101'\n    titel: x\n"
    )
    data = tmp_path / "data"
    r = coursehub("up", "--site", str(site), "--data-dir", str(data), "--detach", check=False)
    assert r.returncode == 2
    assert "courses[0].id" in r.stderr and "courses[0]: unknown key 'titel'" in r.stderr
    assert "did you mean 'title'" in r.stderr
    assert "nothing was started or written" in r.stderr
    assert not data.exists()


def test_port_in_use_is_named_and_nothing_is_written(open_tmp):
    port = free_port_block(23000)
    site = open_tmp / "site.yaml"
    site.write_text(GOOD.format(port=port))
    data = open_tmp / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port + 2))
        s.listen()
        r = coursehub("up", "--site", str(site), "--data-dir", str(data), "--detach", check=False)
    assert r.returncode == 1
    assert f"{port + 2} (the hub (hub.port + 2))" in r.stderr
    assert not data.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="reachability matters only with one uid per person")
def test_unreachable_data_folder_is_refused_with_the_fix(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(GOOD.format(port=free_port_block(24000)))
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    r = coursehub(
        "up", "--site", str(site), "--data-dir", str(closed / "data"), "--detach", check=False
    )
    assert r.returncode == 1
    assert str(closed) in r.stderr and "chmod o+x" in r.stderr
    assert not (closed / "data").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_not_root_warns_loudly(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("org: X\n")  # invalid on purpose: the warning comes first
    tmp_path.chmod(0o755)
    site.chmod(0o644)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "coursehub",
            "up",
            "--site",
            str(site),
            "--data-dir",
            "/tmp/nowhere",
        ],
        capture_output=True,
        text=True,
        user=65534,
        group=65534,
        cwd="/tmp",
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        check=False,
    )
    assert "not running as root" in r.stderr and "isolation" not in r.stdout
    assert "students can read each other's files" in r.stderr
    assert not Path("/tmp/nowhere").exists()
