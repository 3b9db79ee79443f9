"""Offline MOS proxies and the speaker encoder, loaded lazily and cached per process.

- ``distillmos`` (primary MOS proxy): DistillMOS, a small CNN-transformer distilled from
  XLS-R SQA models; tracks neural-TTS damage, band limiting included. 16 kHz input.
- ``dnsmos`` (secondary): Microsoft DNSMOS via ``speechmos``: OVRL (overall, ITU-T P.835
  model) and P.808 MOS. 16 kHz; clips shorter than 9 s are tiled by speechmos. Blind to band
  limiting, so it only complements DistillMOS.
- ``speaker``: Resemblyzer's 256-d d-vector (L2-normalised) for speaker similarity.

Weights ship inside those wheels; nothing is downloaded. Each model loads on first use and
stays for the life of the process (:func:`get_scorer`), so a worker pays the load once.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from typing import Protocol

import numpy as np

from autocompress.exceptions import ScoringError

MOS_SR = 16000


class AudioScorer(Protocol):
    """Scores one waveform without a reference.

    Lifecycle: construct cheaply; the model loads on the first :meth:`score` call and is
    reused; instances are shared per process through :func:`get_scorer` and must not keep
    per-call state.
    """

    name: str

    def score(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        """Figures for one mono waveform at ``sr`` Hz (names are stable metric names)."""
        ...


def resample_to(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Mono float32 at ``target_sr`` (polyphase, deterministic)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if sr != target_sr:
        r = Fraction(target_sr, int(sr))
        x = resample_poly(x, r.numerator, r.denominator)
    return x.astype(np.float32)


class _LazyModel:
    """Holds one model, built by :meth:`_build` on the first :meth:`_load` and kept."""

    def __init__(self) -> None:
        self._model = None

    def _load(self):  # noqa: ANN202
        if self._model is None:
            self._model = self._build()
        return self._model

    def _build(self):  # noqa: ANN202
        raise NotImplementedError


class DistillMOSScorer(_LazyModel):
    """DistillMOS on 16 kHz audio: ``{"distillmos": MOS in 1..5}``."""

    name = "distillmos"

    def _build(self):  # noqa: ANN202
        try:
            import distillmos
        except ImportError as e:
            raise ScoringError(f"distillmos is not installed ({e}); pip install distillmos") from e
        with contextlib.redirect_stdout(io.StringIO()):  # it prints where it loaded from
            model = distillmos.ConvTransformerSQAModel()
        return model.eval()

    def score(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        import torch

        model = self._load()
        x = torch.from_numpy(resample_to(audio, sr, MOS_SR))[None]  # [1, N]
        with torch.inference_mode():
            return {"distillmos": float(model(x)[0])}


class DNSMOSScorer(_LazyModel):
    """DNSMOS (speechmos) on 16 kHz audio: ``{"dnsmos_ovrl": ..., "dnsmos_p808": ...}``."""

    name = "dnsmos"

    def _build(self):  # noqa: ANN202
        try:
            import onnxruntime as ort
            from speechmos import dnsmos
        except ImportError as e:
            raise ScoringError(f"speechmos/onnxruntime missing ({e}); pip install speechmos onnxruntime") from e
        root = os.path.dirname(os.path.abspath(dnsmos.__file__))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        # Built here rather than by speechmos so that the CPU provider is explicit:
        # onnxruntime-gpu refuses to guess providers.
        model = object.__new__(dnsmos.DNSMOS)
        model.primary_model_path = os.path.join(root, "dnsmos_models", "sig_bak_ovr.onnx")
        cpu = ["CPUExecutionProvider"]
        model.onnx_sess = ort.InferenceSession(model.primary_model_path, options, providers=cpu)
        p808_path = os.path.join(root, "dnsmos_models", "model_v8.onnx")
        model.p808_onnx_sess = ort.InferenceSession(p808_path, options, providers=cpu)
        return model

    def score(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        x = np.clip(resample_to(audio, sr, MOS_SR), -1.0, 1.0)
        if x.size == 0:  # speechmos doubles the clip until it is 9 s long: forever
            raise ScoringError("DNSMOS: the audio is empty (0 samples); give it at least one sample")
        model = self._load()
        out = model(x, MOS_SR, False)
        return {"dnsmos_ovrl": float(out["ovrl_mos"]), "dnsmos_p808": float(out["p808_mos"])}


class SilentAudioError(ScoringError):
    """The audio has no voiced part to score."""


class SpeakerEncoder(_LazyModel):
    """Resemblyzer d-vectors: :meth:`embed` gives an L2-normalised ``[256]`` vector."""

    name = "speaker"

    def _build(self):  # noqa: ANN202
        try:
            from resemblyzer import VoiceEncoder
        except ImportError as e:
            raise ScoringError(
                f"resemblyzer is missing ({e}); pip install --no-deps resemblyzer==0.1.4 webrtcvad-wheels"
            ) from e
        return VoiceEncoder(device="cpu", verbose=False)

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        from resemblyzer import preprocess_wav

        wav = resample_to(audio, sr, MOS_SR)
        if not np.any(wav):  # its volume normalisation would scale digital silence by infinity (NaN)
            raise SilentAudioError("speaker embedding: the audio is digital silence")
        model = self._load()
        wav = preprocess_wav(wav, source_sr=None)
        if wav.size == 0:
            raise SilentAudioError("speaker embedding: the audio is silent after voice-activity trimming")
        return np.asarray(model.embed_utterance(wav), dtype=np.float64)


_SCORERS: dict[str, object] = {}
_LOCK = threading.Lock()
_FACTORIES = {"distillmos": DistillMOSScorer, "dnsmos": DNSMOSScorer, "speaker": SpeakerEncoder}


def get_scorer(name: str):  # noqa: ANN201
    """The process-wide instance of scorer ``name`` (``distillmos``, ``dnsmos``, ``speaker``)."""
    if name not in _FACTORIES:
        raise ScoringError(f"unknown scorer {name!r}; expected one of {sorted(_FACTORIES)}")
    with _LOCK:
        if name not in _SCORERS:
            _SCORERS[name] = _FACTORIES[name]()
        return _SCORERS[name]
