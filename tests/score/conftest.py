"""Fixtures of the scoring tests: one utterance of speech, tiny models on one thread."""

from __future__ import annotations

import numpy as np
import pytest
from _speech import HAS_ESPEAK, espeak, formant_speech


@pytest.fixture(scope="session")
def speech() -> tuple[np.ndarray, int]:
    """One utterance: espeak-ng when available, else the formant signal."""
    return espeak() if HAS_ESPEAK else formant_speech()


@pytest.fixture(autouse=True, scope="module")
def _tiny_models_on_one_thread(one_torch_thread):  # noqa: ANN001, ANN202
    """Tiny models run fastest on one intra-op thread (the root conftest's ``one_torch_thread``)."""
