"""Helpers every test directory (and bench/) shares: polling for a condition
(:mod:`tests.helpers.polling`), real processes and the process table
(:mod:`tests.helpers.processes`), a real bot server on a fake Slack
(:mod:`tests.helpers.bot_server`) and the fixtures built on them (:mod:`tests.helpers.fixtures`,
registered in ``tests/conftest.py``)."""
