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
def _one_torch_thread():  # noqa: ANN202
    """Tiny models run faster on one thread than on two contended ones; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def helpers():  # noqa: ANN201
    return _export_helpers()


@pytest.fixture(scope="module")
def bundle_fp32(helpers):  # noqa: ANN001, ANN201
    return helpers.shared_bundle("fp32")
