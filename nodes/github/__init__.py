"""GitHub nodes (PyGithub, run off the event loop). All HTTP goes through ``transport``."""

from nodes.github import issues, pulls, read_file, write_file  # noqa: F401 - registration by import
