"""Schedules -> Prefect deployments, and the flow those deployments run.

* :mod:`deployments.entrypoint` — the ``run-workflow`` flow: runs a *stored* workflow by name
  (and version) the way :func:`switchboard.arun` does; the entrypoint of every deployment.
* :mod:`deployments.sync` — makes Prefect's deployments match the stored schedules.
"""
