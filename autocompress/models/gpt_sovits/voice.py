"""A GPT-SoVITS voice: the GPT and SoVITS models that speak together.

This is the unit the rest of the system moves around: compression maps a ``Voice`` to a new
``Voice``, scoring and export read one. The teacher voice is never modified in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn

# Module groups the search explores, each with a stable name used in plans, the store and
# search-space files: the GPT, and the SoVITS text encoder, flow, HiFi-GAN decoder and
# reference (style) encoder.
MODULE_GROUPS: tuple[str, ...] = ("gpt", "enc_p", "flow", "dec", "ref_enc")

# The SoVITS modules of each group: its own submodule, and for v2Pro/v2ProPlus the top-level
# layers that its ONNX graph runs (``sv_emb`` and ``prelu`` finish the style vector,
# ``ge_to512`` maps it for the text encoder). A group's plan quantizes, casts and fine-tunes
# them all, as the export and the cost projection do.
SOVITS_GROUP_MEMBERS: dict[str, tuple[str, ...]] = {
    "enc_p": ("enc_p", "ge_to512"),
    "flow": ("flow",),
    "dec": ("dec",),
    "ref_enc": ("ref_enc", "sv_emb", "prelu"),
}


def group_modules(root, group: str) -> list:  # noqa: ANN001, ANN201 - a GPT or SoVITS model; nn.Modules
    """The modules of ``group`` in ``root`` (a GPT: itself for ``gpt``; a SoVITS: those of
    :data:`SOVITS_GROUP_MEMBERS` it has)."""
    if group == "gpt":
        return [root]
    if group not in SOVITS_GROUP_MEMBERS:
        raise KeyError(f"unknown module group {group!r}; expected one of {MODULE_GROUPS}")
    return [m for name in SOVITS_GROUP_MEMBERS[group] if (m := getattr(root, name, None)) is not None]


def check_phone_coverage(gpt_config, phones: Iterable[str], version: str) -> None:  # noqa: ANN001
    """Raise ``DataError`` when the GPT has no trained embedding for some of ``phones``.

    The v2 symbol table extends the v1 table in place, so a v1 GPT reads the v1 symbols of a
    v2 voice's text correctly (upstream allows the pair); only the symbols v2 added (ids from
    322 on) were never seen by a v1 GPT.
    """
    from autocompress.exceptions import DataError
    from autocompress.models.gpt_sovits.text import phones_to_ids, symbols

    unique = sorted(set(phones))
    limit = len(symbols("v1")) if gpt_config.version == "v1" else gpt_config.phoneme_vocab_size
    unseen = [p for p, i in zip(unique, phones_to_ids(unique, version)) if i >= limit]
    if unseen:
        needed = "v1" if version == "v1" else "v2"  # v2, v2Pro and v2ProPlus SoVITS models speak with a v2 GPT
        raise DataError(
            f"the {gpt_config.version} GPT ({gpt_config.phoneme_vocab_size} phone ids) was never trained on the "
            f"phones {unseen[:5]} of this {version} voice's text; pair it with a {needed} GPT, the GPT version of "
            f"a {version} SoVITS"
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

    def modules(self, group: str) -> list:  # noqa: ANN201 - nn.Modules
        """All modules of a group, the Pro layers its graph runs included (:func:`group_modules`)."""
        return group_modules(self.gpt if group == "gpt" else self.sovits, group)
