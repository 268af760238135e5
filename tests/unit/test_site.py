"""Every site-file error gets one clear message naming the field and the fix."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sites import two_course_data

from coursehub.plan import SERVICE_NAME, derive
from coursehub.site import Auth, Course, Hub, Site, SiteError, load_site, parse_site

# Words that tell the reader what to do about a problem.
FIX_HINT = re.compile(
    r"\b(add|remove|use|write it as|keep|choose|list it once|did you mean|must be|"
    r"at least|at most|one of|for example)\b"
)

DELETE = object()


def course(**fields: Any) -> dict[str, Any]:
    """A valid course 'c1' (ana teaches, bob learns) with some fields replaced."""
    data: dict[str, Any] = {
        "id": "c1",
        "title": "Course One",
        "instructors": ["ana"],
        "students": ["bob"],
    }
    for key, value in fields.items():
        if value is DELETE:
            del data[key]
        else:
            data[key] = value
    return data


def site(**top: Any) -> dict[str, Any]:
    """A valid one-course site with some top-level keys replaced (DELETE removes one)."""
    data: dict[str, Any] = {
        "org": "Test School",
        "auth": {"type": "first-use"},
        "people": ["ana", "bob"],
        "courses": [course()],
    }
    for key, value in top.items():
        if value is DELETE:
            del data[key]
        else:
            data[key] = value
    return data


def problems_of(data: Any) -> list[str]:
    with pytest.raises(SiteError) as info:
        parse_site(data)
    return info.value.problems


GOOD_USER_PASSWORD = "long-enough-pw"


def shared(user_password: str | None = GOOD_USER_PASSWORD, admin_password: str | None = None):
    """A shared-password auth block; None leaves a password out."""
    auth: dict[str, Any] = {"type": "shared-password"}
    if user_password is not None:
        auth["user_password"] = user_password
    if admin_password is not None:
        auth["admin_password"] = admin_password
    return auth


# (site data, where the problem is, a fragment of its message)
CASES = [
    pytest.param(
        site(colour="blue"),
        "(top level)",
        "unknown key 'colour'",
        id="unknown-top-level-key",
    ),
    pytest.param(
        site(hub={"prot": 8000}),
        "hub",
        "unknown key 'prot' (did you mean 'port'?)",
        id="unknown-hub-key",
    ),
    pytest.param(
        site(courses=[course(titel="Algebra")]),
        "courses[0]",
        "unknown key 'titel' (did you mean 'title'?)",
        id="unknown-course-key",
    ),
    pytest.param(
        site(hub={"port": "8000"}),
        "hub.port",
        "must be an integer",
        id="port-as-string",
    ),
    pytest.param(site(org=DELETE), "(top level)", "'org'", id="missing-org"),
    pytest.param(site(auth=DELETE), "(top level)", "'auth'", id="missing-auth"),
    pytest.param(site(courses=DELETE), "(top level)", "'courses'", id="missing-courses"),
    pytest.param(
        site(courses=[course(id=DELETE)]),
        "courses[0]",
        "'id' is a required property",
        id="missing-course-id",
    ),
    pytest.param(
        site(auth={"type": "oauth"}),
        "auth.type",
        "'oauth' is not one of 'first-use', 'shared-password'",
        id="auth-type-not-in-enum",
    ),
    pytest.param(
        site(auth={"type": "first-use", "user_password": GOOD_USER_PASSWORD}),
        "auth.user_password",
        "belongs to auth type 'shared-password', not 'first-use'",
        id="shared-option-with-first-use",
    ),
    pytest.param(
        site(auth={**shared(), "min_password_length": 12}),
        "auth.min_password_length",
        "belongs to auth type 'first-use', not 'shared-password'",
        id="first-use-option-with-shared-password",
    ),
    pytest.param(
        site(courses=[course(), course(title="Again")]),
        "courses[1].id",
        "is already the id of courses[0]",
        id="duplicate-course-id",
    ),
    pytest.param(
        site(people=["ana", "bob", "ana"]),
        "people",
        "'ana' is listed twice",
        id="duplicate-person",
    ),
    pytest.param(
        site(courses=[course(students=["bob", "bob"])]),
        "courses[0].students",
        "'bob' is listed twice",
        id="student-listed-twice",
    ),
    pytest.param(
        site(courses=[course(students=["bob", "Carl"])]),
        "courses[0].students[1]",
        "'Carl'",
        id="member-name-not-lower-case",
    ),
    pytest.param(
        site(courses=[course(students=["bob", "ana"])]),
        "courses[0]",
        "'ana' is both instructor and student of 'c1'",
        id="instructor-and-student",
    ),
    pytest.param(
        site(auth=shared(user_password="short")),
        "auth.user_password",
        "at least 8 characters",
        id="short-user-password",
    ),
    pytest.param(
        site(auth=shared(user_password=None)),
        "auth.user_password",
        "required for auth type 'shared-password'",
        id="missing-user-password",
    ),
    pytest.param(
        site(admins=["ada"], auth=shared()),
        "auth.admin_password",
        "at least 32 characters",
        id="admins-without-admin-password",
    ),
    pytest.param(
        site(admins=["ada"], auth=shared(admin_password="too-short-admin-pw")),
        "auth.admin_password",
        "at least 32 characters",
        id="admins-with-short-admin-password",
    ),
    *(
        pytest.param(
            site(hub={"base_url": url}),
            "hub.base_url",
            "must start and end with '/'",
            id=f"base-url-{url.strip('/') or 'empty'}-{i}",
        )
        for i, url in enumerate(["hub/", "/hub", "hub", ""])
    ),
    *(
        pytest.param(
            site(courses=[course(id=cid)]),
            "courses[0].id",
            fragment,
            id=f"unsafe-course-id-{label}",
        )
        for cid, label, fragment in [
            ("intro 101", "space", "may only use a-z"),
            ("a/b", "slash", "may only use a-z"),
            ("..", "dotdot", "may only use a-z"),
            ("../etc", "traversal", "may only use a-z"),
            ("Intro101", "upper-case", "write it as 'intro101'"),
            ("a" * 30, "too-long", "is 30 characters long; use at most 25"),
        ]
    ),
    *(
        pytest.param(
            site(people=["ana", "bob", name]),
            "people[2]",
            fragment,
            id=f"unsafe-username-{label}",
        )
        for name, label, fragment in [
            ("a b", "space", "may only use a-z"),
            ("../x", "traversal", "may only use a-z"),
            ("grader-x", "grader-prefix", "starts with 'grader-'"),
            ("root", "reserved", "is reserved"),
            ("a" * 40, "too-long", "is 40 characters long; use at most 32"),
        ]
    ),
    pytest.param(
        site(courses=[course(students=["b b"])]),
        "courses[0].students[0]",
        "may only use a-z",
        id="unsafe-username-in-course",
    ),
]


@pytest.mark.parametrize(("data", "where", "fragment"), CASES)
def test_each_mistake_gives_exactly_one_problem_naming_the_field(data, where, fragment):
    """One mistake, one problem line, starting with the path of the field."""
    problems = problems_of(data)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{where}: "), problems
    assert fragment in problems[0], problems


@pytest.mark.parametrize(("data", "where", "fragment"), CASES)
def test_each_problem_says_how_to_fix_it(data, where, fragment):
    """Every problem line tells the reader what to do, not only what is wrong."""
    (problem,) = problems_of(data)
    assert FIX_HINT.search(problem), f"no fix in: {problem}"


def test_unknown_key_lists_the_allowed_keys():
    (problem,) = problems_of(site(courses=[course(titel="Algebra")]))
    assert "allowed keys here are id, instructors, students, title" in problem


def test_missing_required_key_says_add_it():
    (problem,) = problems_of(site(org=DELETE))
    assert problem == "(top level): 'org' is a required property; add it"


def test_case_clash_is_refused_with_the_lower_case_fix():
    """'Bob' next to 'bob': the upper case is refused and the clash is named."""
    problems = problems_of(site(people=["ana", "bob", "Bob"]))
    assert len(problems) == 2, problems
    assert any(p.startswith("people[2]: ") and "write it as 'bob'" in p for p in problems)
    assert any(
        p.startswith("people: ") and "differ only in case" in p and "keep one" in p
        for p in problems
    )


def test_every_problem_is_reported_at_once():
    """Independent mistakes in different places all show up in one error."""
    data = site(people=["ana", "bob", "root"])
    data["courses"] = [course(id="Bad Id", students=["bob", "Zed"])]
    problems = problems_of(data)
    assert any(p.startswith("people[2]: ") for p in problems)
    assert any(p.startswith("courses[0].id: ") for p in problems)
    assert any(p.startswith("courses[0].students[1]: ") for p in problems)


def test_empty_and_non_mapping_data_are_refused():
    assert "empty" in problems_of(None)[0]
    assert problems_of(["org"])[0].startswith("(top level): must be a mapping")


def test_site_error_says_nothing_was_started_or_written():
    with pytest.raises(SiteError) as info:
        parse_site(site(org=DELETE), source="my-site.yaml")
    text = str(info.value)
    assert text.startswith("my-site.yaml: 1 problem(s)")
    assert "nothing was started or written" in text
    assert "  - (top level): 'org' is a required property; add it" in text


def test_valid_site_parses_into_the_right_site_object():
    """Two courses, one instructor teaching both, one student in both."""
    data = {
        "org": "Test School",
        "hub": {"port": 9000, "base_url": "/hub/"},
        "auth": {"type": "first-use", "min_password_length": 10},
        "admins": ["ada"],
        "people": ["ines", "sam"],
        "courses": [
            {"id": "algebra", "title": "Algebra", "instructors": ["ines"], "students": ["sam"]},
            {"id": "biology", "instructors": ["ines"], "students": ["sam"]},
        ],
    }
    assert parse_site(data) == Site(
        org="Test School",
        auth=Auth(type="first-use", min_password_length=10),
        hub=Hub(ip="127.0.0.1", port=9000, base_url="/hub/"),
        admins=("ada",),
        people=("ines", "sam"),
        courses=(
            Course(id="algebra", title="Algebra", instructors=("ines",), students=("sam",)),
            Course(id="biology", title="biology", instructors=("ines",), students=("sam",)),
        ),
    )


def test_sample_site_parses_and_everyone_is_admins_then_people():
    parsed = parse_site(two_course_data())
    assert parsed.everyone == ("ada", "ines", "sam", "tom", "pat")
    assert parsed.course("biology").students == ("sam", "tom")


def test_admin_in_a_course_does_not_need_to_be_in_people():
    """Admins may log in, so they may be in a course without being in 'people'."""
    data = site(admins=["ada"])
    data["courses"] = [course(instructors=["ada"])]
    assert parse_site(data).course("c1").instructors == ("ada",)


def test_passwords_do_not_show_in_the_site_repr():
    parsed = parse_site(site(auth=shared(user_password="hidden-user-pw")))
    assert "hidden-user-pw" not in repr(parsed)


# Through a file.


def test_load_site_reads_a_yaml_file(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(
        "org: Test School\n"
        "auth:\n"
        "  type: first-use\n"
        "people: [ana, bob]\n"
        "courses:\n"
        "  - id: c1\n"
        "    instructors: [ana]\n"
        "    students: [bob]\n",
        encoding="utf-8",
    )
    loaded = load_site(path)
    assert loaded.people == ("ana", "bob")
    assert loaded.courses == (Course(id="c1", title="c1", instructors=("ana",), students=("bob",)),)


def test_load_site_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("org: X\nauth:\n  type: first-use: x\ncourses: []\n", encoding="utf-8")
    with pytest.raises(SiteError) as info:
        load_site(path)
    (problem,) = info.value.problems
    assert problem.startswith("line 3, column ")
    assert "not valid YAML" in problem
    assert info.value.source == str(path)


def test_load_site_missing_file_says_how_to_get_one(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SiteError) as info:
        load_site(path)
    (problem,) = info.value.problems
    assert "no such file" in problem
    assert "coursehub init" in problem
    assert str(path) in str(info.value)


def test_load_site_empty_file(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SiteError) as info:
        load_site(path)
    assert "the file is empty" in info.value.problems[0]


def test_load_site_reports_schema_problems_with_the_file_name(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(
        "org: X\nauth: {type: first-use}\ncourses:\n  - id: c1\n    titel: Algebra\n",
        encoding="utf-8",
    )
    with pytest.raises(SiteError) as info:
        load_site(path)
    assert info.value.problems == [
        "courses[0]: unknown key 'titel' (did you mean 'title'?); allowed keys here are "
        "id, instructors, students, title"
    ]
    assert str(info.value).startswith(f"{path}: 1 problem(s)")


def test_course_id_may_not_take_the_automation_service_name():
    """A course id becomes a hub service name; 'coursehub' is coursehub's own service.

    Accepting it makes two services named 'coursehub', and the course's grader
    token then gets the automation role (list:users, delete:servers).
    """
    problems = problems_of(site(courses=[course(id=SERVICE_NAME)]))
    assert len(problems) == 1, problems
    assert problems[0].startswith("courses[0].id: ")
    assert FIX_HINT.search(problems[0])


def test_course_members_may_log_in_without_being_listed_in_people():
    """Being in a course is being allowed to log in; `people` is for those in none."""
    data = site(
        admins=["ada"],
        people=["visitor"],
        courses=[
            course(instructors=["ines"], students=["sam", "tom"]),
            course(id="c2", instructors=["ines"], students=["sam", "uma"]),
        ],
    )
    loaded = parse_site(data)
    assert loaded.everyone == ("ada", "visitor", "ines", "sam", "tom", "uma")
    plan = derive(loaded, "/srv/x", isolated=True)
    assert set(plan.people) == {"ada", "visitor", "ines", "sam", "tom", "uma"}
    assert len({p.account.uid for p in plan.people.values()}) == 6
