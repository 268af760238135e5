"""Rewriting the site file: comments kept, atomic, its mode kept (0600 once it holds a
secret), and never through a link for the file, its temporary file or its backup."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from coursehub.roster import add_member
from coursehub.sitefile import SiteFileError, change_site, read_raw

SITE = """\
# our site
org: Test School
auth:
  type: first-use
courses:
  - id: c1          # the first course
    instructors: [ana]
    students: [bob]
"""


def test_a_change_keeps_comments_mode_and_a_backup(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    site.chmod(0o640)
    change_site(site, lambda d: add_member(d, "c1", "cleo", "student"))
    text = site.read_text()
    assert "# the first course" in text and "cleo" in text
    assert stat.S_IMODE(site.stat().st_mode) == 0o640
    assert (tmp_path / "site.yaml.bak").read_text() == SITE
    assert stat.S_IMODE((tmp_path / "site.yaml.bak").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.yaml", "site.yaml.bak"]


def test_once_it_holds_a_secret_nobody_else_reads_it(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        SITE.replace("type: first-use", "type: lti11\n  shared_secret: s3cret-0123456789ab")
    )
    site.chmod(0o644)
    change_site(site, lambda d: add_member(d, "c1", "cleo", "student"))
    assert stat.S_IMODE(site.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "site.yaml.bak").stat().st_mode) == 0o600


def test_a_link_as_the_site_file_is_refused(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_text(SITE)
    link = tmp_path / "site.yaml"
    link.symlink_to(real)
    with pytest.raises(SiteFileError, match="symbolic link"):
        read_raw(link)
    with pytest.raises(SiteFileError, match="symbolic link"):
        change_site(link, lambda d: add_member(d, "c1", "cleo", "student"))
    assert real.read_text() == SITE


def test_a_link_planted_as_the_backup_is_replaced_not_followed(tmp_path):
    """Someone who may write the site file's folder plants FILE.bak -> a file of root's:
    the rewrite replaces the link, the victim keeps its content."""
    victim = tmp_path / "victim"
    victim.write_text("root's own\n")
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    (tmp_path / "site.yaml.bak").symlink_to(victim)
    change_site(site, lambda d: add_member(d, "c1", "cleo", "student"))
    assert victim.read_text() == "root's own\n"
    assert not (tmp_path / "site.yaml.bak").is_symlink()
    assert (tmp_path / "site.yaml.bak").read_text() == SITE


def test_init_writes_0600_and_never_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root's own\n")
    link = tmp_path / "coursehub.yaml"
    link.symlink_to(victim)
    cli = [sys.executable, "-m", "coursehub", "init"]
    out = subprocess.run([*cli, str(link)], capture_output=True, text=True, check=False)
    assert out.returncode != 0 and "exists" in out.stderr  # a dangling or live link counts
    out = subprocess.run([*cli, str(link), "--force"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert victim.read_text() == "root's own\n"
    assert not link.is_symlink() and "org:" in link.read_text()
    fresh = tmp_path / "new.yaml"
    subprocess.run([*cli, str(fresh)], capture_output=True, check=True)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert os.access(fresh, os.R_OK)
