"""The hub's services as coursehub defines them: one grader service per course, and
coursehub's own scope. Pure (Plan in, JupyterHub's service spec out), shared by the
configuration the hub starts with and by the live loading of new courses."""

from __future__ import annotations

from ..plan import LOAD_COURSES_SCOPE, Plan

CUSTOM_SCOPES = {
    LOAD_COURSES_SCOPE: {
        "description": "Load the site file's new courses into the running hub (roles, "
        "groups, grader services) without a restart.",
    },
}


def course_service(plan: Plan, course_id: str, token: str) -> dict:
    """The hub service of a course's grader server (external: coursehub starts it)."""
    g = plan.courses[course_id]
    return {
        "name": course_id,
        "url": g.url,
        "api_token": token,
        "oauth_client_id": g.oauth_client_id,
        "oauth_redirect_uri": g.oauth_callback,
        "oauth_no_confirm": True,
        "display": True,
        "info": {"title": g.title, "kind": "nbgrader grader service"},
    }
