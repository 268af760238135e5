"""coursehub: one site file becomes a running, secure, multi-course JupyterHub + nbgrader."""

__version__ = "0.1.0"
