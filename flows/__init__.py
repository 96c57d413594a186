"""Definitions -> validated plan -> the runner (one Prefect flow, one task per node)."""
