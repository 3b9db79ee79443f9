"""A GPT-SoVITS voice: the GPT and SoVITS models that speak together.

This is the unit the rest of the system moves around: compression maps a ``Voice`` to a new
``Voice``, scoring and export read one. The teacher voice is never modified in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn

# Module groups the search explores, each with a stable name used in plans, the store and
# search-space files: the GPT, and the SoVITS text encoder, flow, HiFi-GAN decoder and
# reference (style) encoder.
MODULE_GROUPS: tuple[str, ...] = ("gpt", "enc_p", "flow", "dec", "ref_enc")


@dataclass
class Voice:
    """A GPT (text -> semantic tokens) and a SoVITS (tokens -> waveform) of one speaker."""

    gpt: Text2SemanticGPT
    sovits: SynthesizerTrn

    def module(self, group: str):  # noqa: ANN201
        """Return the ``nn.Module`` of a module group (see :data:`MODULE_GROUPS`)."""
        if group == "gpt":
            return self.gpt
        if group in ("enc_p", "flow", "dec", "ref_enc"):
            return getattr(self.sovits, group)
        raise KeyError(f"unknown module group {group!r}; expected one of {MODULE_GROUPS}")
