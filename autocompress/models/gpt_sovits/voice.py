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



def check_pair(gpt_config, sovits_config) -> None:  # noqa: ANN001
    """Raise ``DataError`` unless the GPT and the SoVITS read phones from the same symbol table.

    Upstream writes a v1 GPT (512 phone ids) for v1 voices and a v2 GPT (732) for v2, v2Pro
    and v2ProPlus; the phone ids of one table mean other phones in the other.
    """
    from autocompress.exceptions import DataError

    table = "v1" if sovits_config.version == "v1" else "v2"
    if gpt_config.version != table:
        raise DataError(
            f"the GPT is a {gpt_config.version} model ({gpt_config.phoneme_vocab_size} phone ids) but the SoVITS is "
            f"{sovits_config.version}, whose phones come from the {table} symbol table; pair it with a {table} GPT "
            "(the GPT and SoVITS files of one GPT-SoVITS training)"
        )


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
