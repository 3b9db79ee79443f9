"""Fixtures over the shared tiny-voice export (see export_helpers)."""

from __future__ import annotations

import pytest
import torch
from export_helpers import shared_bundle, shared_export, shared_inputs, shared_voice

from autocompress.export import Bundle, VoiceExport


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():  # noqa: ANN202
    """Tiny models run faster on one thread than on two contended ones; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def voice():  # noqa: ANN201
    return shared_voice()


@pytest.fixture(scope="module")
def inputs():  # noqa: ANN201
    return list(shared_inputs())


@pytest.fixture(scope="module")
def export() -> VoiceExport:
    return shared_export()


@pytest.fixture(scope="module")
def bundle_fp32() -> Bundle:
    return shared_bundle("fp32")
