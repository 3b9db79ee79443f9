"""Fixtures for the compression tests: tiny GPT-SoVITS models with random weights."""

from __future__ import annotations

import pytest
from compress_helpers import randomize_

from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
from autocompress.models.gpt_sovits.voice import Voice


@pytest.fixture(scope="module")
def tiny_gpt() -> Text2SemanticGPT:
    return randomize_(Text2SemanticGPT(gpt_tiny()), seed=1)


@pytest.fixture(scope="module")
def tiny_sovits() -> SynthesizerTrn:
    return randomize_(SynthesizerTrn(sovits_tiny(), include_enc_q=False), seed=2)


@pytest.fixture(scope="module")
def tiny_voice(tiny_gpt: Text2SemanticGPT, tiny_sovits: SynthesizerTrn) -> Voice:
    return Voice(gpt=tiny_gpt, sovits=tiny_sovits)
