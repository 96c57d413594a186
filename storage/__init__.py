"""Switchboard's own tables (SQLAlchemy 2 async): workflows and their versions, the audit log.

The same code runs on the embedded SQLite default and on Postgres.
"""
