"""What runs inside JupyterHub: the configuration loader, authenticators, spawners,
the home page, live course loading. Imports the Plan, coursehub.lti and
coursehub.hosting; never a target (it asks the target's Host instead)."""
