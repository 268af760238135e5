"""uids and gids: stable within an installation, unique across the machine's installations."""

from coursehub.ids import COURSE_GID_BASE, GRADER_UID_BASE, PERSON_UID_BASE, Ids, allocate, merge


def test_first_installation_starts_at_the_bases():
    ids = allocate(["ana", "ben"], ["c1", "c2"], Ids())
    assert ids.people == {"ana": PERSON_UID_BASE, "ben": PERSON_UID_BASE + 1}
    assert [ids.grader_uid(c) for c in ("c1", "c2")] == [GRADER_UID_BASE, GRADER_UID_BASE + 1]
    assert [ids.course_gid(c) for c in ("c1", "c2")] == [COURSE_GID_BASE, COURSE_GID_BASE + 1]
    assert ids.courses == {"c1": 0, "c2": 1}


def test_a_second_installation_shares_no_number_with_the_first():
    first = allocate(["ana", "ben"], ["c1"], Ids())
    second = allocate(["ana", "cleo"], ["c1"], Ids(), taken=merge([first]))
    assert set(second.people) == {"ana", "cleo"}  # numbers to compare, not an empty set
    assert not set(first.people.values()) & set(second.people.values())
    assert first.grader_uid("c1") != second.grader_uid("c1")
    assert first.course_gid("c1") != second.course_gid("c1")
    assert second.courses == {"c1": 0}  # its port slot is its own


def test_numbers_never_move_and_leavers_keep_theirs():
    ids = allocate(["ana", "ben"], ["c1"], Ids())
    again = allocate(["aaron", "ben"], ["c0", "c1"], ids, taken=merge([Ids(people={"x": 20500})]))
    assert again.people["ben"] == ids.people["ben"] and again.people["ana"] == ids.people["ana"]
    assert again.people["aaron"] == 20501
    assert again.grader_uid("c1") == ids.grader_uid("c1")
    assert again.courses["c0"] == 1


def test_ids_written_before_graders_were_recorded_keep_their_numbers():
    old = Ids.from_json('{"people": {"ana": 20001}, "courses": {"c1": 3}}')
    assert old.grader_uid("c1") == GRADER_UID_BASE + 3
    assert old.course_gid("c1") == COURSE_GID_BASE + 3
    new = allocate(["ana"], ["c1", "c2"], old)
    assert new.grader_uid("c1") == GRADER_UID_BASE + 3
    assert new.grader_uid("c2") == GRADER_UID_BASE + 4
    assert Ids.from_json(new.to_json()) == new


def test_uids_and_course_gids_never_overlap_however_many_people():
    """People's uids start at 20001 and course gids at 30001: 12,000 people run past
    30001, yet no number is both a person's and a course's."""
    people = [f"p{i}" for i in range(12_000)]
    ids = allocate(people, ["c1", "c2"], Ids())
    uids = set(ids.people.values())
    assert len(uids) == len(people)
    course_numbers = {ids.course_gid(c) for c in ("c1", "c2")} | {
        ids.grader_uid(c) for c in ("c1", "c2")
    }
    assert course_numbers and not uids & course_numbers
    # a course added later finds its numbers free too
    more = allocate(people, ["c1", "c2", "c3"], ids)
    assert more.course_gid("c3") not in set(more.people.values())
    more2 = allocate([*people, "late"], ["c1", "c2", "c3"], more)
    assert more2.people["late"] not in {more2.course_gid(c) for c in more2.courses}


def test_numbers_the_host_uses_are_never_handed_out():
    host = {PERSON_UID_BASE, PERSON_UID_BASE + 1, GRADER_UID_BASE, COURSE_GID_BASE + 0}
    ids = allocate(["ana", "ben"], ["c1"], Ids(), host_taken=host.__contains__)
    assert ids.people == {"ana": PERSON_UID_BASE + 2, "ben": PERSON_UID_BASE + 3}
    assert ids.grader_uid("c1") == GRADER_UID_BASE + 1
    assert ids.course_gid("c1") == COURSE_GID_BASE + 1


def test_the_hosts_own_accounts_are_seen():
    from coursehub.ids import host_taken

    assert host_taken(0)  # root, and its group
    assert not host_taken(2**31 - 7)


def test_running_out_of_numbers_is_a_clear_error():
    import pytest

    from coursehub.ids import IdsExhaustedError

    with pytest.raises(IdsExhaustedError, match="no free number left for person 'c'"):
        allocate(["a", "b", "c"], [], Ids(), limit=PERSON_UID_BASE + 1)
