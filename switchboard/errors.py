"""The errors front ends catch, in one place: the client's own, and those of the layers below
that reach callers (re-exported, so a front end never imports ``storage`` to catch them)."""

from __future__ import annotations

from flows.model import DefinitionError, InputError
from flows.usage import PriceError
from storage.credentials import CredentialError
from storage.crypto import SecretKeyError
from storage.migrate import SchemaBehindError
from storage.runs import RunRecordNotFoundError
from storage.workflows import WorkflowNotFoundError

__all__ = [
    "ClientClosedError",
    "CredentialError",
    "DefinitionError",
    "InputError",
    "PriceError",
    "RunRecordNotFoundError",
    "SchemaBehindError",
    "SecretKeyError",
    "SubWorkflowRefusedError",
    "WorkflowNotFoundError",
]


class ClientClosedError(RuntimeError):
    """The client has no database engine: use it as ``async with Client(settings) as client``."""

    def __init__(self, message: str = "the client is not open: use `async with Client(settings) as client:`") -> None:
        super().__init__(message)


class SubWorkflowRefusedError(PermissionError):
    """The user may not run a workflow that the workflow they started calls (``core.workflow``)."""
