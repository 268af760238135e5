"""LMS launches into the hub: ltiauthenticator's LTI classes with coursehub's rules.

ltiauthenticator checks the launch (consumer key, required fields, timestamp
window, OAuth 1 signature). On top of it coursehub:

- refuses a replayed nonce durably (SQLite in the state folder, recorded only
  after the signature checked, so a hub restart forgets nothing);
- decides the person, the course and the role with coursehub.lti.launch (the
  LMS user id and the signed roles only; custom parameters never decide);
- writes membership changes back to the site file and applies them to the
  running hub (users, groups, gradebook) without a restart;
- creates the course of an instructor's first launch from an unknown context:
  site file, then `coursehub up` applies it (folders, gradebook, the course's
  roles, groups and service loaded into this running hub, its grader server
  started: no restart, nobody's session dropped); the person is logged in
  already and a page waits for the course, then opens its formgrader; a launch
  over auth.course_creation's limits (per LMS an hour, in all) is refused with a
  page that says so (coursehub.lti.limits), before anything is written;
- notes where a student's grades go, logging at once a URL whose host the grade
  policy refuses (coursehub.lti.hosts; the sender checks it again each time);
- sends the person where they work: students to their server's Assignments
  panel on the launch's course (a server that started before the launch joined
  them to the course is restarted, or it could not read the course), instructors
  to the course's formgrader.

LTI 1.3 (CourseLTI13Authenticator): ltiauthenticator runs the OIDC login
(state and nonce cookies) and checks the id_token (signature against the
platform's JWKS, RS256 only, issuer, audience, expiry, age, required claims);
coursehub checks the deployment id against the site file's auth.deployment_ids
(when listed), adds the durable nonce store and serves its own public key
(GET /hub/lti13/jwks) for the LMS to check grade-passback requests.

A direct visit to /hub/login shows a page that says to open coursehub from
the LMS: there is no password to type.

`authenticators` holds the two authenticators, `handlers` their pages and `config`
their settings from the Plan. They import ltiauthenticator, coursehub.lti (the pure
launch and grade logic) and coursehub.hub; what a launch changes is applied by the
target's Host, never by importing a target.
"""

# What the hub's configuration names (coursehub.hub.lti.CourseLTI11Authenticator...).
from .authenticators import CourseLTI11Authenticator, CourseLTI13Authenticator
from .config import lti_config
from .handlers import lti11_config_xml

__all__ = ["CourseLTI11Authenticator", "CourseLTI13Authenticator", "lti11_config_xml", "lti_config"]
