"""The LMS authenticator's settings from the Plan (pure: Plan and credentials in)."""

from __future__ import annotations

import json

from traitlets.config import Config

from ...lti.credentials import load_lti_credentials
from ...lti.keys import load_tool_key, public_jwks
from ...plan import Plan
from ...site import LTI11, LTI13


def lti_config(plan: Plan, plan_file: str, credentials: dict[str, str] | None) -> Config:
    """The LMS authenticator's settings from the Plan (and LTI 1.1's credentials)."""
    c = Config()
    p = plan.paths
    for cls in ("CourseLTI11Authenticator", "CourseLTI13Authenticator"):
        section = c[cls]
        section.plan_file = plan_file
        section.nonce_db = p.lti_nonces
        section.outcomes_db = p.lti_outcomes
        section.creations_db = p.lti_creations
        section.org = plan.org
    if plan.auth.type == LTI11:
        creds = credentials or load_lti_credentials(plan.paths.secrets)
        c.CourseLTI11Authenticator.consumers = {creds["consumer_key"]: creds["shared_secret"]}
        c.CourseLTI11Authenticator.config_title = plan.org
    if plan.auth.type == LTI13:
        a = c.CourseLTI13Authenticator
        a.issuer = plan.auth.issuer
        a.client_id = {plan.auth.client_id}
        a.jwks_endpoint = plan.auth.jwks_url
        a.authorize_url = plan.auth.authorize_url
        a.tool_name = plan.org
        a.tool_jwks = json.dumps(public_jwks(load_tool_key(plan.paths.secrets)))
    return c
