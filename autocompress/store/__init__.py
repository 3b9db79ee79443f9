"""The project's own tables beside Optuna's: runs, labelled trial metrics, bundles, migrations."""

from __future__ import annotations

from autocompress.store.engine import (
    DEFAULT_STORAGE,
    create_store_engine,
    database_reason,
    display_url,
    driver_hint,
    engine_kwargs,
    exclusive,
    mask_password,
    parse_url,
    prepare_storage,
    require_database,
    sqlite_path,
)
from autocompress.store.hashing import hash_folder
from autocompress.store.migrations import MIGRATIONS, Migration, migrate, schema_version
from autocompress.store.models import (
    Base,
    BundleRecord,
    MetricRecord,
    SchemaMigration,
    SearchRun,
    TrialRecord,
    utcnow,
)
from autocompress.store.repository import MetricLike, Objectives, Store, as_utc, pid_alive

__all__ = [
    "Base",
    "BundleRecord",
    "DEFAULT_STORAGE",
    "MIGRATIONS",
    "MetricLike",
    "MetricRecord",
    "Migration",
    "Objectives",
    "SchemaMigration",
    "SearchRun",
    "Store",
    "TrialRecord",
    "as_utc",
    "create_store_engine",
    "database_reason",
    "display_url",
    "driver_hint",
    "engine_kwargs",
    "exclusive",
    "hash_folder",
    "mask_password",
    "migrate",
    "parse_url",
    "pid_alive",
    "prepare_storage",
    "require_database",
    "schema_version",
    "sqlite_path",
    "utcnow",
]
