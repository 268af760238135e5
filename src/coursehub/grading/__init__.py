"""Grading students' notebooks: the sandboxed kernel, the Execute step that records
limits, and the parallel autograder (``coursehub autograde``)."""
