"""Targets: each turns a Plan into something running (local: processes on this machine;
compose: a Docker host). A target may import everything else; nothing imports a target
but the CLI and the `coursehub.hosts` entry points."""
