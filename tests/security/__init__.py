"""Security tests: each reproduces an attack on Switchboard (see docs/security.md)."""
