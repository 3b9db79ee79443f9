"""The project's own tables beside Optuna's: runs, labelled trial metrics, bundles, migrations.

Names are imported from their modules on first access, so that reading ``DEFAULT_STORAGE``
(the CLI's help) does not load SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autocompress._lazy import lazy_attributes

if TYPE_CHECKING:
    from autocompress.store.engine import create_store_engine
    from autocompress.store.engine import database_reason
    from autocompress.store.engine import display_url
    from autocompress.store.engine import driver_hint
    from autocompress.store.engine import engine_kwargs
    from autocompress.store.engine import exclusive
    from autocompress.store.engine import parse_url
    from autocompress.store.engine import prepare_storage
    from autocompress.store.engine import require_database
    from autocompress.store.engine import sqlite_path
    from autocompress.store.hashing import hash_folder
    from autocompress.store.migrations import MIGRATIONS
    from autocompress.store.migrations import Migration
    from autocompress.store.migrations import migrate
    from autocompress.store.migrations import schema_version
    from autocompress.store.models import Base
    from autocompress.store.models import BundleRecord
    from autocompress.store.models import MetricRecord
    from autocompress.store.models import SchemaMigration
    from autocompress.store.models import SearchRun
    from autocompress.store.models import TrialRecord
    from autocompress.store.models import utcnow
    from autocompress.store.repository import MetricLike
    from autocompress.store.repository import Objectives
    from autocompress.store.repository import Store
    from autocompress.store.repository import as_utc
    from autocompress.store.repository import pid_alive
    from autocompress.store.urls import DEFAULT_STORAGE
    from autocompress.store.urls import mask_password

_LOCATIONS = {
    "create_store_engine": "autocompress.store.engine",
    "database_reason": "autocompress.store.engine",
    "display_url": "autocompress.store.engine",
    "driver_hint": "autocompress.store.engine",
    "engine_kwargs": "autocompress.store.engine",
    "exclusive": "autocompress.store.engine",
    "parse_url": "autocompress.store.engine",
    "prepare_storage": "autocompress.store.engine",
    "require_database": "autocompress.store.engine",
    "sqlite_path": "autocompress.store.engine",
    "hash_folder": "autocompress.store.hashing",
    "MIGRATIONS": "autocompress.store.migrations",
    "Migration": "autocompress.store.migrations",
    "migrate": "autocompress.store.migrations",
    "schema_version": "autocompress.store.migrations",
    "Base": "autocompress.store.models",
    "BundleRecord": "autocompress.store.models",
    "MetricRecord": "autocompress.store.models",
    "SchemaMigration": "autocompress.store.models",
    "SearchRun": "autocompress.store.models",
    "TrialRecord": "autocompress.store.models",
    "utcnow": "autocompress.store.models",
    "MetricLike": "autocompress.store.repository",
    "Objectives": "autocompress.store.repository",
    "Store": "autocompress.store.repository",
    "as_utc": "autocompress.store.repository",
    "pid_alive": "autocompress.store.repository",
    "DEFAULT_STORAGE": "autocompress.store.urls",
    "mask_password": "autocompress.store.urls",
}


__getattr__ = lazy_attributes(__name__, _LOCATIONS)

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
