"""Fixtures for the unit tests: the sample site, its Plan and fake secrets."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sites import DATA_DIR, two_course_data  # noqa: E402

from coursehub.plan import Plan, derive  # noqa: E402
from coursehub.secrets import secret_names  # noqa: E402
from coursehub.site import Site, parse_site  # noqa: E402


@pytest.fixture
def site() -> Site:
    return parse_site(two_course_data())


@pytest.fixture
def plan(site: Site) -> Plan:
    return derive(site, DATA_DIR, isolated=True)


@pytest.fixture
def fake_secrets(plan: Plan) -> dict[str, str]:
    """One distinct 64-hex-digit value per secret name, as ensure_secrets makes them."""
    return {
        name: hashlib.sha256(name.encode()).hexdigest() for name in secret_names(list(plan.courses))
    }
