"""The course of the last LMS launch comes first in the Assignments panel's menu."""

from __future__ import annotations

import json
from pathlib import Path

from coursehub.launched_course import LAUNCH_FILE, launched_course, launched_first


def test_the_launched_course_comes_first_and_nothing_is_lost():
    assert launched_first(["algebra", "biology", "chem"], "biology") == [
        "biology",
        "algebra",
        "chem",
    ]


def test_without_a_launch_or_for_an_unlisted_course_the_order_stays():
    assert launched_first(["algebra", "biology"], None) == ["algebra", "biology"]
    assert launched_first(["algebra", "biology"], "geo") == ["algebra", "biology"]


def test_launch_file_read_from_the_home(tmp_path: Path):
    assert launched_course(tmp_path) is None
    path = tmp_path / LAUNCH_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"course": "biology"}))
    assert launched_course(tmp_path) == "biology"
    for broken in ["not json", "[]", json.dumps({"course": 3}), json.dumps({"course": ""})]:
        path.write_text(broken)
        assert launched_course(tmp_path) is None, broken
