"""The site file's LMS auth sections (lti11, lti13)."""

from __future__ import annotations

import pytest

from coursehub.site import SiteError, parse_site, site_to_data


def site(auth: dict) -> dict:
    return {"org": "LMS U", "auth": auth, "courses": []}


def problems(auth: dict) -> list[str]:
    with pytest.raises(SiteError) as err:
        parse_site(site(auth))
    return err.value.problems


def test_lti11_with_key_and_secret_and_pins():
    s = parse_site(
        site(
            {
                "type": "lti11",
                "consumer_key": "coursehub",
                "shared_secret": "s" * 32,
                "contexts": {"abc123": "intro101"},
            }
        )
    )
    assert s.auth.consumer_key == "coursehub"
    assert s.auth.contexts == (("abc123", "intro101"),)
    assert "s" * 32 not in repr(s.auth)  # never printed with the site
    assert parse_site(site_to_data(s)).auth == s.auth


def test_lti11_key_and_secret_may_come_from_the_environment():
    assert parse_site(site({"type": "lti11"})).auth.shared_secret is None


def test_lti11_short_secret_is_refused():
    [problem] = problems({"type": "lti11", "consumer_key": "k", "shared_secret": "short"})
    assert problem.startswith("auth.shared_secret: must be at least 16")


def test_lti11_pin_to_a_bad_course_id():
    [problem] = problems({"type": "lti11", "contexts": {"ctx": "Bad Id"}})
    assert problem.startswith("auth.contexts.ctx: course id 'Bad Id'")


def test_lti13_needs_its_platform():
    found = problems({"type": "lti13"})
    for key in ("issuer", "client_id", "jwks_url", "authorize_url"):
        assert any(p.startswith(f"auth.{key}: required for auth type 'lti13'") for p in found)


def test_lti13_urls_are_https_except_on_loopback():
    auth = {
        "type": "lti13",
        "issuer": "http://lms.example.edu",
        "client_id": "10000000000001",
        "jwks_url": "https://lms.example.edu/api/lti/security/jwks",
        "authorize_url": "http://127.0.0.1:9000/auth",
    }
    [problem] = problems(auth)
    assert problem.startswith("auth.issuer: 'http://lms.example.edu' must be an https:// URL")
    auth["issuer"] = "https://lms.example.edu"
    s = parse_site(site(auth))
    assert s.auth.client_id == "10000000000001"
    assert parse_site(site_to_data(s)).auth == s.auth


def test_options_of_another_auth_type_are_refused():
    found = problems({"type": "lti11", "issuer": "https://x"})
    assert found == ["auth.issuer: belongs to auth type 'lti13', not 'lti11'; remove it"]


LTI13 = {
    "type": "lti13",
    "issuer": "https://lms.example.edu",
    "client_id": "10000000000001",
    "jwks_url": "https://lms.example.edu/api/lti/security/jwks",
    "authorize_url": "https://lms.example.edu/api/lti/authorize_redirect",
}


def test_lti13_deployment_ids_are_kept_and_written_back():
    s = parse_site(site({**LTI13, "deployment_ids": ["1:abc", "2:def"]}))
    assert s.auth.deployment_ids == ("1:abc", "2:def")
    assert site_to_data(s)["auth"]["deployment_ids"] == ["1:abc", "2:def"]
    assert parse_site(site_to_data(s)).auth == s.auth
    assert parse_site(site(LTI13)).auth.deployment_ids == ()  # every deployment


def test_lti13_bad_deployment_ids_name_the_field():
    for bad in ["1:abc", [], [""], [3]]:
        found = problems({**LTI13, "deployment_ids": bad})
        assert found and all(p.startswith("auth.deployment_ids") for p in found), (bad, found)
    assert problems({"type": "lti11", "deployment_ids": ["x"]}) == [
        "auth.deployment_ids: belongs to auth type 'lti13', not 'lti11'; remove it"
    ]
