"""GPT-SoVITS experiment folders (``logs/<exp_name>/``): reading, datasets, writing.

- :class:`ExperimentFolder` opens and validates an upstream folder; its items are
  :class:`ExperimentItem`.
- :class:`GPTDataset` / :func:`gpt_collate` and :class:`SoVITSDataset` /
  :func:`sovits_collate` feed fine-tuning.
- :func:`write_experiment` writes the layout from :class:`ExperimentRecord` values;
  :func:`make_synthetic_experiment` makes a small seeded one for tests and searches.
"""

from __future__ import annotations

from autocompress.models.gpt_sovits.data._datasets import CODE_PAD
from autocompress.models.gpt_sovits.data._datasets import GPTBatch
from autocompress.models.gpt_sovits.data._datasets import GPTDataset
from autocompress.models.gpt_sovits.data._datasets import GPTSample
from autocompress.models.gpt_sovits.data._datasets import SoVITSBatch
from autocompress.models.gpt_sovits.data._datasets import SoVITSDataset
from autocompress.models.gpt_sovits.data._datasets import SoVITSSample
from autocompress.models.gpt_sovits.data._datasets import gpt_collate
from autocompress.models.gpt_sovits.data._datasets import gpt_collate_fn
from autocompress.models.gpt_sovits.data._datasets import sovits_collate
from autocompress.models.gpt_sovits.data._folder import BERT_DIR
from autocompress.models.gpt_sovits.data._folder import HUBERT_DIR
from autocompress.models.gpt_sovits.data._folder import NAME2TEXT
from autocompress.models.gpt_sovits.data._folder import SEMANTIC
from autocompress.models.gpt_sovits.data._folder import SV_DIR
from autocompress.models.gpt_sovits.data._folder import WAV_DIR
from autocompress.models.gpt_sovits.data._folder import ExperimentFolder
from autocompress.models.gpt_sovits.data._folder import ExperimentItem
from autocompress.models.gpt_sovits.data._folder import hubert_frames_for
from autocompress.models.gpt_sovits.data._folder import load_tensor
from autocompress.models.gpt_sovits.data._writer import ExperimentRecord
from autocompress.models.gpt_sovits.data._writer import make_synthetic_experiment
from autocompress.models.gpt_sovits.data._writer import write_experiment

__all__ = [
    "BERT_DIR",
    "CODE_PAD",
    "HUBERT_DIR",
    "NAME2TEXT",
    "SEMANTIC",
    "SV_DIR",
    "WAV_DIR",
    "ExperimentFolder",
    "ExperimentItem",
    "ExperimentRecord",
    "GPTBatch",
    "GPTDataset",
    "GPTSample",
    "SoVITSBatch",
    "SoVITSDataset",
    "SoVITSSample",
    "gpt_collate",
    "gpt_collate_fn",
    "hubert_frames_for",
    "load_tensor",
    "make_synthetic_experiment",
    "sovits_collate",
    "write_experiment",
]
