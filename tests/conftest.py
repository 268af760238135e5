"""The order test files start in: the longest first, so that with two at a time
(make test, with --no-loadscope-reorder) no long file runs alone at the end. Each
file's own tests keep their order."""

from __future__ import annotations

# The files that take minutes, longest first (the slowest durations of a run).
LONGEST_FIRST = (
    "tests/integration/test_docker_host.py",
    "tests/test_bench_tiny.py",
    "tests/integration/test_ansible.py",
    "tests/integration/test_grading_sandbox.py",
    "tests/integration/test_doctor.py",
    "tests/integration/test_lti13.py",
    "tests/integration/test_lti11.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}

    def key(indexed):
        i, item = indexed
        path = item.nodeid.split("::", 1)[0]
        return (rank.get(path, len(rank)), i)

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]
