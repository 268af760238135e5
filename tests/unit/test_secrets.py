"""Secrets: generated once, stored 0600, reused, and refused when others can read them."""

from __future__ import annotations

import json
import re
import stat

import pytest

from coursehub.secrets import (
    COOKIE_SECRET_FILE,
    SECRETS_FILE,
    SecretFileError,
    ensure_secrets,
    load_secrets,
    secret_names,
    write_private,
)

EXPECTED = {
    "cookie_secret",
    "crypt_key",
    "proxy_auth_token",
    "automation_token",
    "service_token:a",
    "service_token:b",
}


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_secrets_creates_private_files_with_every_secret(tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    secrets = ensure_secrets(secrets_dir, ["a", "b"])

    assert set(secrets) == EXPECTED
    for name, value in secrets.items():
        assert re.fullmatch(r"[0-9a-f]{64}", value), name
    assert len(set(secrets.values())) == len(secrets)

    store = secrets_dir / SECRETS_FILE
    cookie = secrets_dir / COOKIE_SECRET_FILE
    assert mode_of(store) == 0o600
    assert mode_of(cookie) == 0o600
    assert json.loads(store.read_text()) == secrets
    assert cookie.read_text().strip() == secrets["cookie_secret"]


def test_ensure_secrets_twice_gives_the_same_values(tmp_path):
    first = ensure_secrets(tmp_path, ["a", "b"])
    second = ensure_secrets(tmp_path, ["a", "b"])
    assert second == first
    assert load_secrets(tmp_path) == first


def test_adding_a_course_adds_only_its_token(tmp_path):
    before = ensure_secrets(tmp_path, ["a", "b"])
    after = ensure_secrets(tmp_path, ["a", "b", "c"])
    assert set(after) - set(before) == {"service_token:c"}
    assert {k: after[k] for k in before} == before
    assert after["service_token:c"] not in before.values()


def test_removing_a_course_changes_no_secret(tmp_path):
    before = ensure_secrets(tmp_path, ["a", "b"])
    assert ensure_secrets(tmp_path, ["a"]) == before


def test_lost_cookie_file_is_written_again_from_the_store(tmp_path):
    secrets = ensure_secrets(tmp_path, ["a"])
    (tmp_path / COOKIE_SECRET_FILE).unlink()
    ensure_secrets(tmp_path, ["a"])
    cookie = tmp_path / COOKIE_SECRET_FILE
    assert cookie.read_text().strip() == secrets["cookie_secret"]
    assert mode_of(cookie) == 0o600


def test_readable_secrets_file_is_refused_with_the_fix(tmp_path):
    ensure_secrets(tmp_path, ["a", "b"])
    store = tmp_path / SECRETS_FILE
    store.chmod(0o644)
    for call in (lambda: load_secrets(tmp_path), lambda: ensure_secrets(tmp_path, ["a", "b"])):
        with pytest.raises(SecretFileError) as info:
            call()
        assert f"chmod 600 {store}" in str(info.value)
    # the refusal changed nothing
    assert mode_of(store) == 0o644


def test_readable_cookie_file_is_refused(tmp_path):
    ensure_secrets(tmp_path, ["a"])
    cookie = tmp_path / COOKIE_SECRET_FILE
    cookie.chmod(0o640)
    with pytest.raises(SecretFileError, match="chmod 600"):
        ensure_secrets(tmp_path, ["a"])


def test_secret_names_order():
    assert secret_names(["x", "y"]) == [
        "cookie_secret",
        "crypt_key",
        "proxy_auth_token",
        "automation_token",
        "service_token:x",
        "service_token:y",
    ]


def test_write_private_leaves_no_temp_file(tmp_path):
    target = tmp_path / "token"
    write_private(target, "one\n")
    write_private(target, "two\n")
    assert [p.name for p in tmp_path.iterdir()] == ["token"]
    assert target.read_text() == "two\n"
    assert mode_of(target) == 0o600


def test_write_private_fixes_the_mode_of_an_existing_file(tmp_path):
    target = tmp_path / "token"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, "new")
    assert mode_of(target) == 0o600
    assert target.read_text() == "new"


def test_write_private_cleans_up_when_it_fails(tmp_path):
    """When the final rename fails, the temp file is removed and the error raised."""
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("x")  # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        write_private(target, "secret")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_ensure_secrets_leaves_no_temp_file(tmp_path):
    ensure_secrets(tmp_path, ["a", "b"])
    ensure_secrets(tmp_path, ["a", "b", "c"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([SECRETS_FILE, COOKIE_SECRET_FILE])
