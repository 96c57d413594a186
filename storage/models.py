"""Switchboard's tables. Prefect keeps per-task state; these keep what Prefect does not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: DateTime(timezone=True),
    }


class WorkflowRow(Base):
    """A workflow by name; its content lives in immutable versions."""

    __tablename__ = "workflows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)

    versions: Mapped[list[WorkflowVersionRow]] = relationship(back_populates="workflow")


class WorkflowVersionRow(Base):
    """One immutable version of a workflow definition."""

    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)

    workflow: Mapped[WorkflowRow] = relationship(back_populates="versions")


class AuditRow(Base):
    """Who did what, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RunRow(Base):
    """One workflow run: ours to list and retry; node detail stays in Prefect."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_workflow_started", "workflow", "started_at"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_parent_run_id", "parent_run_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    workflow: Mapped[str] = mapped_column(String(100))
    version: Mapped[int | None] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(40))
    triggered_by: Mapped[str | None] = mapped_column(String(100))
    slack_channel: Mapped[str | None] = mapped_column(String(40))
    slack_thread: Mapped[str | None] = mapped_column(String(40))
    slack_message: Mapped[str | None] = mapped_column(String(40))
    #: The Slack workspace (team id) of the message; None: the single workspace.
    slack_team: Mapped[str | None] = mapped_column(String(40), default=None)
    #: When the bot last wrote the run's final state into its Slack message (None: not yet).
    slack_reported_at: Mapped[datetime | None] = mapped_column(default=None)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    resumed_from: Mapped[str | None] = mapped_column(String(32))
    #: The run whose ``core.workflow`` node started this one (None: a top-level run).
    parent_run_id: Mapped[str | None] = mapped_column(String(32), default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    #: The run result (``RunResult.to_dict()``, node outputs included) once the run has ended;
    #: deferred: listing runs never loads it.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, deferred=True)
    #: What the run's model calls spent (from the result's ``usage``; None: it made none).
    total_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    #: Their estimated cost in USD by the price table (None: none made, or none priced).
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)


class MemoryMessageRow(Base):
    """One chat turn in a memory session (oldest first by id)."""

    __tablename__ = "memory_messages"
    __table_args__ = (Index("ix_memory_messages_session", "session", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class StateRow(Base):
    """A key-value pair kept across runs, per workflow (or a named scope)."""

    __tablename__ = "kv_state"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CredentialRow(Base):
    """An encrypted credential. ``owner`` is a Slack user id, or "" for the shared one."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("name", "owner", name="uq_credentials_name_owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(100), default="")
    provider: Mapped[str] = mapped_column(String(40))
    base_url: Mapped[str | None] = mapped_column(String(500))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FileRow(Base):
    """A file's metadata; its bytes live in the content-addressed blob store by ``sha256``."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
