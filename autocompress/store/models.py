"""The project's own tables, stored beside Optuna's in the same database.

Optuna keeps the optimisation state (studies, trials, parameters, objective values); these
tables keep what Optuna has no place for: one row per search run, every trial metric labelled
``measured`` or ``projected`` with its device, the plan and failure reason of every trial, and
one row per exported bundle. All names start with ``ac_`` so they never meet Optuna's.

The schema a database holds is built by :mod:`autocompress.store.migrations`, never by
``create_all`` on these classes; a test checks that both agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

METRIC_KINDS = ("measured", "projected")
RUN_STATUSES = ("running", "finished", "interrupted", "failed", "killed")
TRIAL_STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL")


def utcnow() -> datetime:
    """Return the current time in UTC (timezone-aware)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the ``ac_`` tables."""


class SchemaMigration(Base):
    """One applied forward migration; the highest version is the schema's version."""

    __tablename__ = "ac_schema_migrations"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SearchRun(Base):
    """One invocation of the search daemon (a study may span several runs after resumes)."""

    __tablename__ = "ac_search_runs"
    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES}", name="ck_ac_search_runs_status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_name: Mapped[str] = mapped_column(String(512), index=True)
    target: Mapped[str] = mapped_column(String(64))
    space_name: Mapped[str] = mapped_column(String(200))
    space_sha256: Mapped[str] = mapped_column(String(64))
    voice: Mapped[str] = mapped_column(Text)  # "demo" or the GPT / SoVITS / data paths
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # trials, steps, timeout, seed, device
    device_info: Mapped[dict[str, Any]] = mapped_column(JSON)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Written every few seconds while the run lives (schema 2): a run on another machine whose
    # beat stopped is dead. None for runs recorded before schema 2.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    trials: Mapped[list[TrialRecord]] = relationship(back_populates="run")
    bundles: Mapped[list[BundleRecord]] = relationship(back_populates="run")


class TrialRecord(Base):
    """What one Optuna trial tried and what came out of it."""

    __tablename__ = "ac_trials"
    __table_args__ = (
        UniqueConstraint("study_name", "trial_number", name="uq_ac_trials_study_number"),
        CheckConstraint(f"state IN {TRIAL_STATES}", name="ck_ac_trials_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ac_search_runs.id"), index=True)
    study_name: Mapped[str] = mapped_column(String(512), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    optuna_trial_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="RUNNING")
    baseline: Mapped[str | None] = mapped_column(String(64), nullable=True)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    plan_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Objective values, in the study's order: quality (max), latency (min), memory (min).
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    feasible: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    device_info: Mapped[dict[str, Any]] = mapped_column(JSON)
    finetune_steps: Mapped[int] = mapped_column(Integer, default=0)
    # [[step, progress]]: the mean teacher distance relative to step 0
    finetune_curve: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    run: Mapped[SearchRun] = relationship(back_populates="trials")
    metrics: Mapped[list[MetricRecord]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", order_by="MetricRecord.id"
    )


class MetricRecord(Base):
    """One labelled number of a trial: what, how much, in which unit, measured or projected, where,
    and its note."""

    __tablename__ = "ac_trial_metrics"
    __table_args__ = (
        UniqueConstraint("trial_id", "name", name="uq_ac_trial_metrics_trial_name"),
        CheckConstraint(f"kind IN {METRIC_KINDS}", name="ck_ac_trial_metrics_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("ac_trials.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # measured | projected
    device: Mapped[str] = mapped_column(String(128))  # "cpu", "cuda:0", or a target name
    # What the figure is of, or assumes (schema 3): e.g. a measured latency that ran the student
    # in fp32 without its quantization. None when the metric has no note or was stored before.
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    trial: Mapped[TrialRecord] = relationship(back_populates="metrics")


class BundleRecord(Base):
    """One exported model folder: where it is, what it hashes to, which target it is for."""

    __tablename__ = "ac_bundles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("ac_search_runs.id"), nullable=True, index=True)
    study_name: Mapped[str] = mapped_column(String(512), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # "onnx" bundle or "checkpoint" folder
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))  # over the folder's files, see store.hashing
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[SearchRun | None] = relationship(back_populates="bundles")


__all__ = [
    "Base",
    "BundleRecord",
    "METRIC_KINDS",
    "MetricRecord",
    "RUN_STATUSES",
    "SchemaMigration",
    "SearchRun",
    "TRIAL_STATES",
    "TrialRecord",
    "utcnow",
]
