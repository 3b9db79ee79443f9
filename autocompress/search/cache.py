"""What the teacher does on the evaluation set, computed once per study and kept on disk.

- the held-out items and the teacher's teacher-forced outputs on them (GPT logits, SoVITS
  latents and decoder mel slices): the targets of the *teacher distance*;
- the prompt (reference) utterance and its style vector, the reference every synthesis uses;
- the teacher's end-to-end speech for a few held-out sentences (greedy GPT, noise-free
  SoVITS): what a student's speech is scored against.

The file is keyed by a fingerprint of the teacher files, the data and the settings, and holds
the items it was built on: a file whose fingerprint or items (names, phones, BERT features,
codes, reference) differ from the study's is stale and rebuilt. It holds only tensors and
plain values and is read with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autocompress.exceptions import ScoringError, SearchError
from autocompress.runtime.files import sha256_file
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.score.quality import TeacherReference, build_reference
from autocompress.search.distill import EvalTargets, SoVITSTargets, VoiceItem, eval_targets
from autocompress.search.study import SCORING_VERSION
from autocompress.search.synth import Speech, synthesize

CACHE_VERSION = 2
# Held-out sentences a bundle is calibrated on (its static int8 ranges); scoring calibrates on the same.
CALIBRATION_SENTENCES = 3


@dataclass
class TeacherCache:
    """The teacher's outputs a study reuses in every trial."""

    fingerprint: str
    targets: EvalTargets  # teacher-forced outputs on the held-out items
    prompt: VoiceItem  # the reference utterance every synthesis is conditioned on
    style: Tensor  # [1, gin, 1] the teacher's style vector of the prompt's reference
    sentences: list[VoiceItem]  # held-out sentences spoken end to end for scoring
    speech: list[Speech]  # the teacher's speech for each sentence
    reference: TeacherReference  # the teacher's side of the quality comparison (MOS, speaker vectors)

    # ------------------------------------------------------------------ build / load
    @classmethod
    def build(
        cls,
        teacher: Voice,
        eval_items: list[VoiceItem],
        prompt: VoiceItem,
        sentences: list[VoiceItem],
        fingerprint: str,
        seed: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> TeacherCache:
        """Run the teacher on the items; ``progress`` gets a line as each step starts (a
        full-size voice speaks each sentence for seconds to minutes)."""
        say = progress or (lambda line: None)
        say(f"building the teacher cache (once per study): the teacher on {len(eval_items)} held-out item(s) ...")
        targets = eval_targets(teacher, eval_items, teacher.sovits.segment_frames, seed=seed)
        with torch.no_grad():
            style = teacher.sovits.style(prompt.refer, prompt.sv)
        speech = []
        for i, s in enumerate(sentences, 1):
            say(f"teacher cache: speaking sentence {i} of {len(sentences)} ...")
            speech.append(synthesize(teacher, prompt, s, style))
        say("teacher cache: scoring the teacher's speech (MOS, speaker vectors) ...")
        reference = _reference([s.wav.numpy() for s in speech], speech[0].sample_rate)
        return cls(fingerprint, targets, prompt, style, sentences, speech, reference)

    @classmethod
    def load_or_build(
        cls,
        path: Path,
        teacher: Voice,
        eval_items: list[VoiceItem],
        prompt: VoiceItem,
        sentences: list[VoiceItem],
        fingerprint: str,
        seed: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> TeacherCache:
        """Read the study's cache when it matches ``fingerprint`` and was built on the same
        items (``eval_items``, ``prompt``, ``sentences``), else build and save it (``progress``
        gets a line as each step of the build starts).

        Raises:
            SearchError: the cache was built but cannot be saved (a full disk, a read-only folder).
        """
        device = prompt.codes.device
        if path.is_file():
            try:  # read on the CPU: the teacher's speech and speaker vectors are scored there
                data = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt, never trusted
                data = None
            if (
                isinstance(data, dict) and data.get("version") == CACHE_VERSION and data.get("fingerprint") == fingerprint
                and _same_items(data, eval_items, prompt, sentences)
            ):
                return cls.from_dict(data, device)
        cache = cls.build(teacher, eval_items, prompt, sentences, fingerprint, seed, progress=progress)
        _save(cache.to_dict(), path)
        return cache

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "fingerprint": self.fingerprint,
            "eval_items": [_item_dict(i) for i in self.targets.items],
            "gpt_logits": list(self.targets.gpt_logits),
            "sovits": [t.to_dict() for t in self.targets.sovits],
            "prompt": _item_dict(self.prompt),
            "style": self.style,
            "sentences": [_item_dict(i) for i in self.sentences],
            "speech": [s.to_dict() for s in self.speech],
            "reference_mos": list(self.reference.mos or ()),
            "reference_embeddings": [torch.from_numpy(np.asarray(e)) for e in self.reference.embeddings or ()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], device: torch.device | str | None = None) -> TeacherCache:
        """The cache :meth:`to_dict` wrote, loaded on the CPU; with ``device``, what the trials
        compute with (items, teacher outputs, style vector) moves there; the speech stays on the CPU."""
        speech = [Speech(**s) for s in d["speech"]]
        reference = TeacherReference(
            sr=speech[0].sample_rate,
            audios=tuple(s.wav.numpy() for s in speech),
            mos=tuple(float(m) for m in d["reference_mos"]) or None,
            embeddings=tuple(e.numpy() for e in d["reference_embeddings"]) or None,
        )

        def to(t: Any) -> Any:
            return t.to(device) if device is not None and isinstance(t, Tensor) else t

        def moved(kind: type, fields: dict[str, Any]) -> Any:
            return kind(**{k: to(v) for k, v in fields.items()})

        targets = EvalTargets(
            items=[moved(VoiceItem, i) for i in d["eval_items"]],
            gpt_logits=[to(t) for t in d["gpt_logits"]],
            sovits=[moved(SoVITSTargets, t) for t in d["sovits"]],
        )
        return cls(
            fingerprint=d["fingerprint"], targets=targets, prompt=moved(VoiceItem, d["prompt"]), style=to(d["style"]),
            sentences=[moved(VoiceItem, i) for i in d["sentences"]], speech=speech, reference=reference,
        )


def _save(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` to ``path`` whole or not at all (no partial file is left behind).

    Raises:
        SearchError: the folder cannot be made or the file cannot be written (a full disk).
    """
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not isinstance(e, (OSError, RuntimeError)):  # an interrupt: passed on as it is
            raise
        # torch reports a failed write (a full disk) as a RuntimeError naming its own source line
        why = e.strerror if isinstance(e, OSError) and e.strerror else "the write failed (is the disk full?)"
        raise SearchError(
            f"cannot write the teacher cache {path}: {why}; free space there, or choose another folder with --artifacts"
        ) from e


def _reference(audios: list[np.ndarray], sr: int) -> TeacherReference:
    """MOS and speaker vectors of the teacher's speech; without speaker vectors when it has no voiced part."""
    try:
        return build_reference(audios, sr, mos=True, speaker=True)
    except ScoringError:  # voice-activity trimming left nothing (an untrained or noisy teacher)
        return build_reference(audios, sr, mos=True, speaker=False)


def _item_dict(item: VoiceItem) -> dict[str, Any]:
    return dict(item.__dict__)


def _same_items(
    data: dict[str, Any], eval_items: list[VoiceItem], prompt: VoiceItem, sentences: list[VoiceItem]
) -> bool:
    """Whether a saved cache was built on these items, field by field (the data may change under the same names)."""
    saved = [data.get("eval_items"), [data.get("prompt")], data.get("sentences")]
    given = [eval_items, [prompt], sentences]
    try:
        return all(
            len(s) == len(g) and all(_same_item(a, _item_dict(b)) for a, b in zip(s, g)) for s, g in zip(saved, given)
        )
    except (TypeError, AttributeError, KeyError, RuntimeError):  # a malformed file: rebuilt
        return False


def _same_item(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for key, x in a.items():
        y = b[key]
        if isinstance(x, Tensor) and isinstance(y, Tensor):
            if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y.to(x.device)):
                return False
        elif isinstance(x, Tensor) or isinstance(y, Tensor) or x != y:
            return False
    return True


def fingerprint(files: list[Path], names: list[str], settings: dict[str, Any]) -> str:
    """Hash of the teacher files' contents, the item names, the settings a cache depends on and
    the scoring version (the cache holds the teacher's MOS and speaker vectors, made by the scorers)."""
    h = hashlib.sha256()
    for f in files:
        h.update(sha256_file(f, memo=True).encode())  # memoised: the study's voice identity hashed these already
    h.update(repr(sorted(names)).encode())
    h.update(repr(sorted(settings.items())).encode())
    h.update(str(CACHE_VERSION).encode())
    h.update(f"scoring {SCORING_VERSION}".encode())
    return h.hexdigest()


__all__ = ["CACHE_VERSION", "CALIBRATION_SENTENCES", "TeacherCache", "fingerprint"]
