"""Grading students' notebooks: the sandboxed kernel, the Execute step that records
limits, and the parallel autograder (``coursehub autograde``). Runs in the grader's
server and processes: imports nbgrader, jupyter_client and coursehub.sandbox only."""
