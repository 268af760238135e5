"""Sample site data shared by the unit tests (plain dicts, as loaded from YAML)."""

from __future__ import annotations

from typing import Any

DATA_DIR = "/srv/ch-test"
HUB_PORT = 8100

USER_PASSWORD = "open-sesame-user-7419"
ADMIN_PASSWORD = "admin-passphrase-0123456789-abcdefghij"


def two_course_data(auth: dict[str, Any] | None = None) -> dict[str, Any]:
    """algebra and biology: ines teaches both, sam takes both, tom only biology.

    ada is an admin; pat may log in but is in no course.
    """
    return {
        "org": "Test School",
        "hub": {"ip": "127.0.0.1", "port": HUB_PORT, "base_url": "/"},
        "auth": auth or {"type": "first-use"},
        "admins": ["ada"],
        "people": ["ines", "sam", "tom", "pat"],
        "courses": [
            {
                "id": "algebra",
                "title": "Algebra",
                "instructors": ["ines"],
                "students": ["sam"],
            },
            {
                "id": "biology",
                "title": "Biology",
                "instructors": ["ines"],
                "students": ["sam", "tom"],
            },
        ],
    }


def shared_password_data() -> dict[str, Any]:
    """The two-course site with shared passwords (admins listed, so both are set)."""
    return two_course_data(
        {
            "type": "shared-password",
            "user_password": USER_PASSWORD,
            "admin_password": ADMIN_PASSWORD,
        }
    )
