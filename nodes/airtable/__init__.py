"""Airtable nodes (pyairtable, run off the event loop). All HTTP goes through ``transport``."""

from nodes.airtable import records  # noqa: F401 - registration by import
