"""Audio quality of a student against its teacher, one composite score, and the release floor.

The teacher side of every comparison (its audio on the evaluation set, its MOS, its speaker
embeddings) does not depend on the trial: :func:`build_reference` computes it once per study
and :func:`compare_audio` scores each trial's audio against it. Audio must be synthesised
deterministically on both sides (noise scale 0, greedy decoding), so that differences come from
compression and not from sampling.

The composite score and the floor are defined in ``docs/quality.md``; in short::

    quality = (0.5 * mos_term + 0.25 * speaker_term + 0.25 * mcd_term) / (sum of weights present)
    mos_term     = clip((DistillMOS - 1) / 4, 0, 1)
    speaker_term = clip((cosine - 0.75) / 0.25, 0, 1)
    mcd_term     = clip(1 - MCD_dB / 10, 0, 1)

and a student may be released when its DistillMOS is at least ``min_mos`` (3.8), or, when the
teacher itself scores below ``min_mos``, when it is at most ``max_drop`` (0.3) below the teacher;
and, where the speaker encoder ran, when its speaker cosine to the teacher is at least
``min_speaker_cos`` (0.85); and when no single sentence clearly fails (silent, 0.6-1.5x the
teacher's duration, a speaker cosine or a MOS far below the floor: see :class:`ReleaseFloor`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from autocompress.exceptions import ConfigError, DataError
from autocompress.score.fidelity import fidelity_metrics
from autocompress.score.metric import Metric, host_device, measured
from autocompress.score.mos import SilentAudioError, get_scorer

# Composite weights and the anchors that map each figure to [0, 1].
COMPOSITE_WEIGHTS: Mapping[str, float] = {"mos": 0.5, "speaker": 0.25, "mcd": 0.25}
SPEAKER_ANCHOR = 0.75  # Resemblyzer cosine of another voice (field notes: <= 0.76)
# MCD at which the fidelity term falls to 1/e; it never reaches 0, so every student ranks (a
# linear term reaching 0 at 10 dB scored all of a demo search's students 0: they lie at 22-68 dB)
MCD_SCALE_DB = 20.0
# A student sentence whose peak lies this far below the teacher's is silent, whether or not the
# speaker encoder ran (its voice-activity check catches quieter hiss: collapsed demo students at
# 23-36 dB below the teacher).
SILENT_BELOW_TEACHER_DB = 40.0


@dataclass(frozen=True)
class ReleaseFloor:
    """The minimum quality a student must reach to be released.

    The first three apply to means over the evaluation sentences; the rest to every sentence on
    its own, so that a student that fails one sentence in ten is not released on its mean. A
    sentence fails when it is silent (the speaker encoder finds no voice in it, or its peak is
    more than :data:`SILENT_BELOW_TEACHER_DB` below the teacher's), when its duration is outside
    ``min_length_ratio``-``max_length_ratio`` times the teacher's for the same sentence (a GPT
    that stops early, or runs on past the end: a run-on can raise DistillMOS, 4.48 against the
    teacher's 3.77 in one trial), when its speaker cosine is under ``min_sentence_speaker_cos``,
    or when its DistillMOS is more than ``sentence_mos_margin`` below the floor that sentence's
    teacher MOS sets (``min_mos``, or the teacher's less ``max_drop`` where that is lower).
    Healthy students of a demo search lie at 0.99-1.11x the teacher's duration and a speaker
    cosine of 0.93-0.94 on every sentence; its collapsed ones at 0.16-0.30x (silent) and 1.96x
    (a run-on, cosine 0.55).

    Attributes:
        min_mos: absolute DistillMOS floor.
        max_drop: for a teacher below ``min_mos``: the largest allowed drop below it.
        min_speaker_cos: the student must still be the teacher's voice: the mean Resemblyzer
            cosine to the teacher's speech of the same sentences (field notes: 0.94-0.96 is the
            same voice on other text, 0.76 or less another voice; a silent student scores 0).
            A MOS proxy alone passes a broken student of a low-MOS teacher.
        min_length_ratio: shortest allowed duration of a sentence, relative to the teacher's.
        max_length_ratio: longest allowed duration of a sentence, relative to the teacher's.
        min_sentence_speaker_cos: lowest speaker cosine of any one sentence (another voice
            scores 0.76 or less).
        sentence_mos_margin: how far below its floor one sentence's DistillMOS may lie.
    """

    min_mos: float = 3.8
    max_drop: float = 0.3
    min_speaker_cos: float = 0.85
    min_length_ratio: float = 0.6
    max_length_ratio: float = 1.5
    min_sentence_speaker_cos: float = 0.75
    sentence_mos_margin: float = 1.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.min_mos <= 5.0 or self.max_drop < 0 or not 0.0 <= self.min_speaker_cos <= 1.0:
            raise ConfigError(
                "ReleaseFloor needs 1 <= min_mos <= 5, max_drop >= 0 and 0 <= min_speaker_cos <= 1, got "
                f"{self.min_mos}, {self.max_drop}, {self.min_speaker_cos}"
            )
        if not (
            0.0 < self.min_length_ratio <= 1.0 <= self.max_length_ratio
            and 0.0 <= self.min_sentence_speaker_cos <= 1.0 and self.sentence_mos_margin >= 0
        ):
            raise ConfigError(
                "ReleaseFloor needs 0 < min_length_ratio <= 1 <= max_length_ratio, 0 <= min_sentence_speaker_cos "
                f"<= 1 and sentence_mos_margin >= 0, got {self.min_length_ratio}, {self.max_length_ratio}, "
                f"{self.min_sentence_speaker_cos}, {self.sentence_mos_margin}"
            )

    def check(
        self, student_mos: float, teacher_mos: float | None = None, speaker_cos: float | None = None
    ) -> tuple[bool, str]:
        """(passes, reason) for a student's mean MOS, its teacher's, and its speaker cosine to the
        teacher (None: not measured, so not checked)."""
        if math.isnan(student_mos):
            return False, "no MOS proxy for the student"
        mos_ok, mos_reason = self._check_mos(student_mos, teacher_mos)
        if speaker_cos is not None and not speaker_cos >= self.min_speaker_cos:  # NaN fails too
            voice = f"speaker cosine {speaker_cos:.2f} < {self.min_speaker_cos:.2f}: not the teacher's voice"
            return False, voice if mos_ok else f"{voice}; {mos_reason}"  # every floor that fails
        return mos_ok, mos_reason

    def _check_mos(self, student_mos: float, teacher_mos: float | None) -> tuple[bool, str]:
        if student_mos >= self.min_mos:
            return True, f"MOS {student_mos:.2f} >= {self.min_mos:.2f}"
        if teacher_mos is not None and not math.isnan(teacher_mos) and teacher_mos < self.min_mos:
            ok = student_mos >= teacher_mos - self.max_drop
            rel = ">=" if ok else "<"
            return ok, f"MOS {student_mos:.2f} {rel} teacher {teacher_mos:.2f} - {self.max_drop:.2f}"
        return False, f"MOS {student_mos:.2f} < {self.min_mos:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sentence_mos_floor(self, teacher_mos: float | None) -> float:
        """The lowest DistillMOS one sentence may score, given the teacher's on that sentence."""
        floor = self.min_mos
        if teacher_mos is not None and not math.isnan(teacher_mos):
            floor = min(floor, teacher_mos - self.max_drop)
        return floor - self.sentence_mos_margin

    def check_sentences(self, sentences: Sequence[SentenceFigures]) -> list[str]:
        """One line for each per-sentence floor that some sentence fails (empty: all pass); each
        names the worst sentence and how many more fail it. A silent sentence is named as silent only."""
        n = len(sentences)
        found: dict[str, list[tuple[float, int, str]]] = {}  # kind -> (badness, sentence number, line)

        def fail(kind: str, badness: float, i: int, line: str) -> None:
            found.setdefault(kind, []).append((badness, i, line))

        for i, s in enumerate(sentences, 1):
            if s.silent:
                fail("silent", 0.0, i, "silent")
                continue
            r = s.length_ratio
            if not r <= self.max_length_ratio:  # NaN fails too
                fail("long", r if not math.isnan(r) else math.inf, i,
                     f"runs on past the teacher's end: {r:.2f}x its duration > {self.max_length_ratio:.2f}x")
            elif r < self.min_length_ratio:
                fail("short", -r, i, f"stops early: {r:.2f}x the teacher's duration < {self.min_length_ratio:.2f}x")
            if s.speaker_cos is not None and not s.speaker_cos >= self.min_sentence_speaker_cos:
                fail("voice", -s.speaker_cos if not math.isnan(s.speaker_cos) else math.inf, i,
                     f"is not the teacher's voice: speaker cosine {s.speaker_cos:.2f} < "
                     f"{self.min_sentence_speaker_cos:.2f}")
            if s.mos is not None:
                floor = self.sentence_mos_floor(s.teacher_mos)
                if not s.mos >= floor:
                    fail("mos", -s.mos if not math.isnan(s.mos) else math.inf, i,
                         f"MOS {s.mos:.2f} < {floor:.2f}: more than {self.sentence_mos_margin:.2f} under the floor")
        lines = []
        for kind in ("silent", "long", "short", "voice", "mos"):
            if kind not in found:
                continue
            hits = found[kind]
            if kind == "silent":
                numbers = ", ".join(str(i) for _, i, _ in hits)
                lines.append(f"sentence{'s' if len(hits) > 1 else ''} {numbers} of {n} silent")
                continue
            _, i, line = max(hits, key=lambda h: (h[0], -h[1]))
            more = f" ({len(hits) - 1} more sentence{'s' if len(hits) > 2 else ''} too)" if len(hits) > 1 else ""
            lines.append(f"sentence {i} of {n} {line}{more}")
        return lines

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseFloor:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"ReleaseFloor: unknown fields {unknown}; expected {', '.join(sorted(fields))}")
        return cls(**dict(data))


@dataclass(frozen=True)
class TeacherReference:
    """The teacher's side of every comparison, computed once per study.

    Attributes:
        sr: sample rate of the audio.
        audios: teacher waveforms, one per evaluation item.
        mos: DistillMOS per item (None when MOS was not requested).
        dnsmos: (OVRL, P.808) per item, or None.
        embeddings: speaker d-vectors per item, or None.
    """

    sr: int
    audios: tuple[np.ndarray, ...]
    mos: tuple[float, ...] | None = None
    dnsmos: tuple[tuple[float, float], ...] | None = None
    embeddings: tuple[np.ndarray, ...] | None = None

    @property
    def mean_mos(self) -> float:
        return float(np.mean(self.mos)) if self.mos else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain values and float32 torch tensors: loadable with ``torch.load(weights_only=True)``."""
        import torch

        return {
            "sr": self.sr,
            "audios": [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in self.audios],
            "mos": None if self.mos is None else list(self.mos),
            "dnsmos": None if self.dnsmos is None else [list(d) for d in self.dnsmos],
            "embeddings": None if self.embeddings is None
            else [torch.from_numpy(np.asarray(e, dtype=np.float32)) for e in self.embeddings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TeacherReference:
        unknown = sorted(set(data) - {"sr", "audios", "mos", "dnsmos", "embeddings"})
        if unknown:
            raise ConfigError(f"TeacherReference.from_dict: unknown fields {unknown}")

        def arrays(items: Any) -> tuple[np.ndarray, ...]:
            return tuple(np.asarray(x, dtype=np.float32).reshape(-1) for x in items)

        return cls(
            sr=int(data["sr"]),
            audios=arrays(data["audios"]),
            mos=None if data.get("mos") is None else tuple(float(v) for v in data["mos"]),
            dnsmos=None if data.get("dnsmos") is None
            else tuple((float(a), float(b)) for a, b in data["dnsmos"]),
            embeddings=None if data.get("embeddings") is None else arrays(data["embeddings"]),
        )


@dataclass(frozen=True)
class SentenceFigures:
    """The figures of one evaluation sentence that the per-sentence release floor reads.

    Attributes:
        length_ratio: the student's duration over the teacher's for this sentence.
        mos: the student's DistillMOS (None: not scored).
        teacher_mos: the teacher's DistillMOS (None: not scored).
        speaker_cos: speaker cosine to the teacher's speech (None: not scored; 0 when silent).
        silent: no voice in the student's audio.
    """

    length_ratio: float
    mos: float | None = None
    teacher_mos: float | None = None
    speaker_cos: float | None = None
    silent: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SentenceFigures:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown or "length_ratio" not in data:
            raise ConfigError(
                f"SentenceFigures.from_dict: unknown fields {unknown} or no length_ratio; expected {sorted(names)}"
            )
        ratio = data["length_ratio"]
        return cls(**{**data, "length_ratio": math.nan if ratio is None else float(ratio)})


@dataclass(frozen=True)
class QualityReport:
    """Quality figures of one student (means over the evaluation set), all :class:`Metric`.

    Attributes:
        metrics: every figure, the composite ``quality`` included.
        passes_floor: whether the release floor holds.
        floor_reason: one line explaining the floor decision.
        sentences: the per-sentence figures the floor read, in evaluation order (empty in a
            report made before they were kept).
    """

    metrics: tuple[Metric, ...]
    passes_floor: bool
    floor_reason: str
    sentences: tuple[SentenceFigures, ...] = ()

    def get(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"no metric {name!r}; have {[m.name for m in self.metrics]}")

    @property
    def quality(self) -> float:
        return self.get("quality").value

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": [m.to_dict() for m in self.metrics],
            "passes_floor": self.passes_floor,
            "floor_reason": self.floor_reason,
            "sentences": [s.to_dict() for s in self.sentences],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityReport:
        """The inverse of :meth:`to_dict`; a report stored without ``sentences`` loads with none."""
        unknown = sorted(set(data) - {"metrics", "passes_floor", "floor_reason", "sentences"})
        if unknown:
            raise ConfigError(f"QualityReport.from_dict: unknown fields {unknown}")
        return cls(
            metrics=tuple(Metric.from_dict(m) for m in data["metrics"]),
            passes_floor=bool(data["passes_floor"]),
            floor_reason=str(data["floor_reason"]),
            sentences=tuple(SentenceFigures.from_dict(s) for s in data.get("sentences") or ()),
        )


def build_reference(
    audios: Sequence[np.ndarray], sr: int, mos: bool = True, dnsmos: bool = False, speaker: bool = True
) -> TeacherReference:
    """Score the teacher's audio once: MOS proxies and speaker embeddings as requested."""
    if not audios:
        raise DataError("build_reference needs at least one teacher waveform")
    clips = tuple(np.asarray(a, dtype=np.float32).reshape(-1) for a in audios)
    return TeacherReference(
        sr=sr,
        audios=clips,
        mos=tuple(get_scorer("distillmos").score(a, sr)["distillmos"] for a in clips) if mos else None,
        dnsmos=tuple(_dnsmos(a, sr) for a in clips) if dnsmos else None,
        embeddings=tuple(get_scorer("speaker").embed(a, sr) for a in clips) if speaker else None,
    )


def _dnsmos(audio: np.ndarray, sr: int) -> tuple[float, float]:
    out = get_scorer("dnsmos").score(audio, sr)
    return out["dnsmos_ovrl"], out["dnsmos_p808"]


def speaker_similarity(teacher_embedding: np.ndarray, student: np.ndarray, sr: int) -> float:
    """Cosine between a teacher d-vector and the student audio's (both L2-normalised)."""
    e = get_scorer("speaker").embed(student, sr)
    return float(np.dot(teacher_embedding, e) / (np.linalg.norm(teacher_embedding) * np.linalg.norm(e)))


def compare_audio(
    reference: TeacherReference,
    student_audios: Sequence[np.ndarray],
    sr: int | None = None,
    floor: ReleaseFloor = ReleaseFloor(),
) -> QualityReport:
    """Score a student's evaluation-set audio against the teacher reference.

    Args:
        reference: from :func:`build_reference` (what it computed decides what is scored).
        student_audios: one waveform per reference item, same order.
        sr: the students' sample rate (default: the reference's).
        floor: the release floor.

    Returns:
        A :class:`QualityReport` with means over items of ``distillmos`` (and the teacher's
        ``distillmos_teacher``, ``distillmos_drop``), ``dnsmos_ovrl``, ``dnsmos_p808``,
        ``log_mel_l1``, ``mrstft``, ``mcd_db``, ``stoi``, ``speaker_cos``, and the composite ``quality``;
        the per-sentence figures; and the floor's decision on both the means and every sentence.
    """
    sr = reference.sr if sr is None else sr
    if len(student_audios) != len(reference.audios):
        raise DataError(
            f"expected {len(reference.audios)} student waveforms (one per item), got {len(student_audios)}"
        )
    device = host_device()
    sums: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    silent = 0  # student sentences without a voiced part for the speaker encoder
    sentences: list[SentenceFigures] = []
    for i, (t, s) in enumerate(zip(reference.audios, student_audios)):
        s = np.asarray(s, dtype=np.float32).reshape(-1)
        bad = int(np.count_nonzero(~np.isfinite(s)))
        if bad:
            raise DataError(
                f"the student's audio of evaluation sentence {i + 1} of {len(student_audios)} has {bad} NaN or "
                "infinite samples: its compressed model is numerically broken"
            )
        if sr != reference.sr:
            from autocompress.score.mos import resample_to

            s = resample_to(s, sr, reference.sr)
        for m in fidelity_metrics(t, s, reference.sr):
            sums.setdefault(m.name, []).append(m.value)
            units[m.name] = m.unit
        mos = cos = None
        if reference.mos is not None:
            mos = get_scorer("distillmos").score(s, reference.sr)["distillmos"]
            sums.setdefault("distillmos", []).append(mos)
        if reference.dnsmos is not None:
            ovrl, p808 = _dnsmos(s, reference.sr)
            sums.setdefault("dnsmos_ovrl", []).append(ovrl)
            sums.setdefault("dnsmos_p808", []).append(p808)
        no_voice = _quiet(t, s)
        if reference.embeddings is not None:
            try:
                cos = speaker_similarity(reference.embeddings[i], s, reference.sr)
            except SilentAudioError:
                cos, silent, no_voice = 0.0, silent + 1, True  # nothing of the voice in this sentence
            sums.setdefault("speaker_cos", []).append(cos)
        sentences.append(SentenceFigures(
            length_ratio=s.size / max(t.size, 1), mos=mos,
            teacher_mos=None if reference.mos is None else reference.mos[i], speaker_cos=cos, silent=no_voice,
        ))
    means = {k: float(np.mean(v)) for k, v in sums.items()}
    notes = {"speaker_cos": f"{silent} of {len(student_audios)} sentences silent, scored 0"} if silent else {}
    metrics = [
        measured(k, v, units.get(k, "MOS" if "mos" in k else ""), device, notes.get(k, "")) for k, v in means.items()
    ]
    teacher_mos = reference.mean_mos
    if reference.mos is not None:
        metrics.append(measured("distillmos_teacher", teacher_mos, "MOS", device))
        metrics.append(measured("distillmos_drop", teacher_mos - means["distillmos"], "MOS", device))
    failed = [k for k in COMPOSITE_TERMS if k in means and math.isnan(means[k])]
    note = f"NaN: its {', '.join(failed)} term is NaN" if failed else "docs/quality.md"
    metrics.append(measured("quality", composite_quality(means), "", device, note))
    ok, reason = floor.check(means.get("distillmos", math.nan), teacher_mos, means.get("speaker_cos"))
    failed_sentences = floor.check_sentences(sentences)
    if failed_sentences:  # every floor that fails, the means' first
        reason = "; ".join(([] if ok else [reason]) + failed_sentences)
        ok = False
    return QualityReport(tuple(metrics), ok, reason, tuple(sentences))


def _quiet(teacher: np.ndarray, student: np.ndarray) -> bool:
    """Whether the student's peak lies :data:`SILENT_BELOW_TEACHER_DB` or more below the teacher's."""
    peak_t = float(np.max(np.abs(teacher))) if teacher.size else 0.0
    peak_s = float(np.max(np.abs(student))) if student.size else 0.0
    return peak_s <= peak_t * 10 ** (-SILENT_BELOW_TEACHER_DB / 20)


COMPOSITE_TERMS = ("distillmos", "speaker_cos", "mcd_db")  # the metrics composite_quality reads


def composite_quality(values: Mapping[str, float]) -> float:
    """The composite score in [0, 1] from ``distillmos``, ``speaker_cos`` and ``mcd_db`` (any present).

    Terms that are missing are left out and the weights renormalised; NaN when none is present,
    or when a present term is NaN (a scorer that failed must not read as a poor score).
    """
    if any(math.isnan(float(values[k])) for k in COMPOSITE_TERMS if k in values):
        return math.nan
    terms = {}
    if "distillmos" in values:
        terms["mos"] = _clip((values["distillmos"] - 1.0) / 4.0)
    if "speaker_cos" in values:
        terms["speaker"] = _clip((values["speaker_cos"] - SPEAKER_ANCHOR) / (1.0 - SPEAKER_ANCHOR))
    if "mcd_db" in values:
        terms["mcd"] = _clip(math.exp(-max(0.0, values["mcd_db"]) / MCD_SCALE_DB))
    if not terms:
        return math.nan
    weight = sum(COMPOSITE_WEIGHTS[k] for k in terms)
    return sum(COMPOSITE_WEIGHTS[k] * v for k, v in terms.items()) / weight


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))
