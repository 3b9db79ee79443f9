"""Fixtures over the shared tiny-voice export (see export_helpers)."""

from __future__ import annotations

import pytest
from export_helpers import shared_bundle, shared_export, shared_inputs, shared_voice

from autocompress.export import Bundle, VoiceExport


@pytest.fixture(scope="module", autouse=True)
def _tiny_models_on_one_thread(one_torch_thread):  # noqa: ANN001, ANN202
    """Every module here runs tiny models (see the root conftest's ``one_torch_thread``)."""


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
