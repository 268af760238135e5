"""What an LMS launch brings (person, role, course) and what goes back (grades).

Pure pieces live here and are tested without a hub: who the person is, their
role in the course, which course the LMS context is, durable replay
protection and grade passback. The authenticators that use them are in
coursehub.hub.lti. Imports the Plan and coursehub.hosting, never a target or
coursehub.hub.
"""
