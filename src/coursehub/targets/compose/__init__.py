"""The compose target: a folder that runs a site on a Docker host.

``render`` holds the pure renderers (Plan in, file contents out), ``hubconfig``
what runs inside the hub container, ``versions`` and ``wheel`` what goes into
the images, ``writer`` the only code that touches the output folder, ``changes``
what rendering again does to a running stack (pure), and ``host`` what the hub's
code may ask of a Docker host.
"""
