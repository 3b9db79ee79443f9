"""Runtime tests run bundles written by the export tests' shared helpers (one export per session)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _export_helpers():  # noqa: ANN202
    """tests/export/export_helpers.py, as the same module object the export tests use."""
    name = "export_helpers"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "export" / "export_helpers.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module", autouse=True)
def _tiny_models_on_one_thread(one_torch_thread):  # noqa: ANN001, ANN202
    """Every module here runs tiny models (see the root conftest's ``one_torch_thread``)."""


@pytest.fixture(scope="module")
def helpers():  # noqa: ANN201
    return _export_helpers()


@pytest.fixture(scope="module")
def bundle_fp32(helpers):  # noqa: ANN001, ANN201
    return helpers.shared_bundle("fp32")
