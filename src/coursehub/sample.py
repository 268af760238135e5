"""A small nbgrader assignment, for the demo and the tests."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def _cell(kind, source: str, grade_id: str, *, solution=False, grade=False, points=0, locked=False):
    cell = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
    meta = {
        "grade_id": grade_id,
        "solution": solution,
        "grade": grade,
        "locked": locked,
        "schema_version": 3,
    }
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def sample_notebook() -> nbformat.NotebookNode:
    """Two autograded points and one manually graded answer."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        _cell(
            "markdown", "# Squares\nWrite `square(x)` that returns `x * x`.", "intro", locked=True
        ),
        _cell(
            "code",
            "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
            "square",
            solution=True,
        ),
        _cell(
            "code",
            "assert square(3) == 9\nassert square(-2) == 4",
            "test_square",
            grade=True,
            points=2,
            locked=True,
        ),
        _cell(
            "markdown",
            "Explain in one sentence why `square(-2)` is positive.",
            "why_prompt",
            locked=True,
        ),
        _cell(
            "markdown",
            "### BEGIN SOLUTION\nA negative number times itself is positive.\n### END SOLUTION",
            "why",
            solution=True,
            grade=True,
            points=1,
        ),
    ]
    return nb


def write_sample(path: str) -> None:
    """Write the sample notebook at `path` (as whoever calls it: coursehub itself has the
    grader write it into a course, see `coursehub sample`)."""
    nbformat.write(sample_notebook(), path)
