"""The commented starter site file written by 'coursehub init'."""

STARTER_SITE = """\
# coursehub site file: courses, people, roles and how they log in.
# Check it with 'coursehub check --site FILE'; start it with 'coursehub up --site FILE'.

# Your organisation's name, shown on the login page.
org: My School

# Where the hub listens. coursehub also uses the next ports:
# port + 1 (proxy API), port + 2 (hub), port + 10 and up (one grader server per course).
hub:
  ip: 127.0.0.1      # 0.0.0.0 to listen on every interface (put TLS in front of it)
  port: 8000
  base_url: /

# How people log in.
#   first-use:       each student sets their password at their first login; admins and
#                    instructors get a link: 'coursehub password-link NAME'.
#   shared-password: one password for everyone (demos only); admins need admin_password.
auth:
  type: first-use
  min_password_length: 8

# Hub administrators (they may log in too; list them here, not in people).
admins:
  - ada

# People in no course who may log in too (course members below may log in
# already: do not repeat them here). Usernames: lower-case a-z, 0-9, '.', '_', '-'.
people: []

# Courses. The id becomes the course's URL (/services/<id>/), hub groups
# nbgrader-<id> and formgrade-<id>, and its grader account grader-<id>.
# Everyone listed as an instructor or a student may log in.
courses:
  - id: intro101
    title: Introduction to Programming
    instructors: [grace]
    students: [alan, barbara]
"""
