"""Schedules -> Prefect deployments, and the flow those deployments run.

* :mod:`deployments.entrypoint` — the ``run-workflow`` flow: runs a *stored* workflow by name
  (and version) the way :func:`switchboard.arun` does; the entrypoint of every deployment.
* :mod:`deployments.sync` — makes Prefect's deployments match the stored schedules.
"""

import switchboard  # noqa: F401 - Switchboard's Prefect defaults, before this package imports Prefect
