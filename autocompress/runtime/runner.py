"""Synthesise speech from a bundle with onnxruntime and numpy only (no torch).

Pipeline per utterance: style vector from the reference spectrogram (``ref_enc``, cached per
voice), semantic codes from the GPT loop (``gpt_prefill`` + ``gpt_decode``, see
:mod:`autocompress.runtime.gpt_loop`), prior from ``enc_p``, the prior sample
``z_p = m_p + noise * exp(logs_p) * noise_scale`` drawn here, then ``flow`` and ``dec``.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from autocompress.exceptions import ConfigError, DataError, ExportError
from autocompress.runtime.gpt_loop import GenerationOutput, GPTLoop
from autocompress.runtime.inputs import SynthInput, load_inputs, parse_phones
from autocompress.runtime.manifest import MANIFEST_NAME, Manifest, read_manifest
from autocompress.runtime.reference import reference_spectrogram
from autocompress.runtime.sampling import SamplingConfig
from autocompress.runtime.session import (
    PROVIDER_CHOICES,
    available_providers,
    bundle_cache_key,
    device_of,
    open_session,
    tensorrt_cache_root,
)

_NUMPY_OF_ORT = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}
GRAPHS = ("gpt_prefill", "gpt_decode", "ref_enc", "enc_p", "flow", "dec")  # the graphs a bundle runs
MODEL_KEYS = (  # the manifest's model entries the runner reads
    "sampling_rate", "samples_per_frame", "frames_per_code", "eos", "pe_rows", "max_tokens",
    "noise_scale", "spec_channels", "inputs", "symbols", "sovits_version",
)  # fmt: skip
V1_GPT_PHONES = 322  # phone ids a v1 GPT was trained on (the v1 symbol table; later tables extend it)
STYLES_KEPT = 64  # style vectors cached per runner (one per reference; the oldest is dropped first)
# model entries read as whole numbers, with the least each may be
_MODEL_COUNTS = {
    "sampling_rate": 1, "samples_per_frame": 1, "frames_per_code": 1, "eos": 0, "pe_rows": 1, "max_tokens": 1,
    "spec_channels": 1,
}  # fmt: skip


@dataclass
class Synthesis:
    """One synthesised utterance and what it cost.

    Attributes:
        wav: float32 waveform ``[N]`` at ``sampling_rate``.
        sampling_rate: samples per second.
        codes: the semantic codes the GPT produced ``[n]``.
        stop_reason: how the GPT loop ended (``eos`` or ``max_new_tokens``).
        gpt_seconds: prefill + decode wall time.
        sovits_seconds: style (0 when cached) + enc_p + flow + dec wall time.
    """

    wav: np.ndarray
    sampling_rate: int
    codes: np.ndarray
    stop_reason: str
    gpt_seconds: float
    sovits_seconds: float

    @property
    def audio_seconds(self) -> float:
        return self.wav.size / self.sampling_rate

    @property
    def rtf(self) -> float:
        """End-to-end real-time factor (wall time / audio time)."""
        return (self.gpt_seconds + self.sovits_seconds) / max(self.audio_seconds, 1e-9)


class BundleRunner:
    """Load a bundle's graphs once and synthesise any number of utterances.

    One runner may serve several threads at once: each call keeps its own KV cache and bindings,
    and onnxruntime sessions run concurrently (checked on the CPU provider).

    Args:
        bundle_dir: folder written by ``export_bundle``.
        prefer_gpu: use onnxruntime's CUDA provider when it works here (False: the CPU one).
        threads: intra-op threads per session (None: onnxruntime's default).
        verify: check every file's SHA-256 against the manifest first.
        provider: ``auto`` (CUDA when it works, else CPU; ``cpu`` when ``prefer_gpu`` is False),
            ``tensorrt`` (TensorRT, then CUDA for the nodes it does not take: int8 QDQ graphs run
            as int8, engines cached under ``~/.cache/autocompress/tensorrt``), ``cuda`` or
            ``cpu``. ``tensorrt`` and ``cuda`` are refused where they do not start.

    Raises:
        ConfigError: an unknown provider, or one other than ``cpu`` with ``prefer_gpu=False``.
        ExportError: a damaged bundle, or ``tensorrt``/``cuda`` cannot run here.
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        prefer_gpu: bool = True,
        threads: int | None = None,
        verify: bool = True,
        provider: str = "auto",
    ) -> None:
        if provider not in PROVIDER_CHOICES:
            raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDER_CHOICES)}")
        if not prefer_gpu and provider not in ("auto", "cpu"):
            raise ConfigError(f"prefer_gpu=False asks for the CPU provider, and provider={provider!r} for another")
        self.dir = Path(bundle_dir)
        self.manifest: Manifest = read_manifest(self.dir, verify=verify)
        lacking = [g for g in GRAPHS if g not in self.manifest.graphs]
        lacking += [f"model.{k}" for k in MODEL_KEYS if k not in self.manifest.model]
        if lacking:
            raise ExportError(f"the manifest of bundle {self.dir} lacks {', '.join(lacking)}; re-export the bundle")
        _check_model_entries(self.dir, self.manifest)
        providers = available_providers(prefer_gpu, provider)
        cache = tensorrt_cache_root() / bundle_cache_key(self.dir / MANIFEST_NAME) if provider == "tensorrt" else None
        self.sessions: dict[str, ort.InferenceSession] = {}
        for name, entry in self.manifest.graphs.items():
            session = open_session(self.dir / entry.file, providers, threads, cache / name if cache else None)
            if provider == "cuda" and device_of(session) != "cuda":
                raise ExportError(
                    f"--provider cuda: onnxruntime could not start CUDA for graph {name} and would run it on "
                    "the CPU; check the GPU with nvidia-smi, or use --provider auto or cpu"
                )
            if providers[0] != "CPUExecutionProvider" and device_of(session) == "cpu":
                providers = ["CPUExecutionProvider"]  # CUDA is listed but not usable here
            self.sessions[name] = session
        self.device = device_of(next(iter(self.sessions.values())))
        model = self.manifest.model
        self.sampling_rate = int(model["sampling_rate"])
        self.samples_per_code = int(model["samples_per_frame"]) * int(model["frames_per_code"])
        self.gpt = GPTLoop(self.sessions["gpt_prefill"], self.sessions["gpt_decode"], int(model["eos"]), int(model["pe_rows"]))
        self._styles: dict[str, np.ndarray] = {}  # at most STYLES_KEPT, oldest first
        self._styles_lock = threading.Lock()
        # Pro voices (v2Pro, v2ProPlus): the style graph also takes the reference's speaker vector.
        self.needs_speaker_vector = any(i.name == "ref_sv" for i in self.sessions["ref_enc"].get_inputs())

    # ----- inputs

    @property
    def sampling(self) -> SamplingConfig:
        """The bundle's default sampler settings."""
        return SamplingConfig.from_dict(self.manifest.sampling)

    def sample_inputs(self) -> list[SynthInput]:
        """The evaluation inputs stored in the bundle (``inputs.npz``)."""
        return load_inputs(self.dir / self.manifest.model["inputs"])

    def symbols(self) -> list[str]:
        """The phone symbol table (index = id) the bundle's models use."""
        return json.loads((self.dir / self.manifest.model["symbols"]).read_text(encoding="utf-8"))

    def make_input(
        self,
        sample: int = 0,
        phones: str | None = None,
        ref_spec: np.ndarray | None = None,
        ref_sv: np.ndarray | None = None,
    ) -> SynthInput:
        """An utterance built from stored sample ``sample``, optionally with new text or reference.

        Args:
            sample: which stored input supplies the voice prompt (phones, codes, reference).
            phones: text to speak as phone symbols or ids (see :func:`parse_phones`); None
                keeps the sample's own text. Its BERT features are zeros (non-Chinese text); the
                prompt keeps the sample's.
            ref_spec: a reference spectrogram ``[bins, T]`` replacing the sample's (see
                :meth:`reference_spec`). It changes the SoVITS style (timbre) only: the GPT
                prompt keeps the sample's phones and semantic codes.
            ref_sv: the new reference's speaker vector (Pro bundles need one with ``ref_spec``).

        Raises:
            DataError: no such sample, bad phones, or a reference of the wrong shape.
        """
        items = self.sample_inputs()
        if not 0 <= sample < len(items):
            raise DataError(f"--sample {sample} does not exist; the bundle stores samples 0..{len(items) - 1}")
        item = items[sample]
        for name, value in (("reference spectrogram", ref_spec), ("speaker vector", ref_sv)):
            if value is not None and value.dtype.kind not in "biuf":  # not bool, integer or float
                raise DataError(f"the {name} must hold real numbers, got an array of {value.dtype}")
        if ref_spec is not None:
            bins = int(self.manifest.model["spec_channels"])
            if ref_spec.ndim != 2 or ref_spec.shape[0] != bins:
                raise DataError(f"reference spectrogram must be [{bins}, T], got {list(ref_spec.shape)}")
            if self.needs_speaker_vector and ref_sv is None:
                raise DataError(
                    f"this {self.manifest.model['sovits_version']} bundle needs the new reference's speaker "
                    "vector too (ref_sv: the [20480] values of GPT-SoVITS's 7-sv_cn/<name>.pt)"
                )
        if ref_sv is not None and not self.needs_speaker_vector:
            raise DataError(f"a {self.manifest.model['sovits_version']} bundle takes no speaker vector")
        if ref_sv is not None and ref_spec is None:  # it would be dropped for the sample's own
            raise DataError("ref_sv is the speaker vector of a new reference: pass that reference's ref_spec too")
        if ref_sv is not None and sum(d > 1 for d in ref_sv.shape) > 1:  # [D], [1, D] or [D, 1] only
            raise DataError(f"the speaker vector must be one vector ([D] or [1, D]), got an array of {list(ref_sv.shape)}")
        if phones is None and ref_spec is None:
            return item
        text = item.text if phones is None else parse_phones(phones, self.symbols())
        bert = item.bert if phones is None else _prompt_bert(item, text.size)
        ref = item.ref_spec if ref_spec is None else ref_spec.astype(np.float32)
        sv = item.ref_sv if ref_spec is None else (None if ref_sv is None else ref_sv.reshape(-1).astype(np.float32))
        return SynthInput(item.prompt_phones, text, item.prompt_codes, ref, bert, sv)

    def reference_spec(self, wav_path: str | Path, flag: str = "--ref-wav") -> np.ndarray:
        """The reference spectrogram ``[bins, T]`` of a recording, at the bundle's rate and STFT sizes,
        as the PyTorch model computes it (see :mod:`autocompress.runtime.reference`); pass it to
        :meth:`make_input` as ``ref_spec``. It sets the SoVITS style only: the GPT prompt stays the sample's.

        Raises:
            DataError: an unreadable, empty, silent or too short recording.
        """
        n_fft, hop, win = self._stft_sizes()
        return reference_spectrogram(wav_path, self.sampling_rate, n_fft, hop, win, flag)

    def _stft_sizes(self) -> tuple[int, int, int]:
        """``(n_fft, hop, window)`` of the voice's spectrogram: the manifest's SoVITS config, or for a
        manifest without one, those its spectrogram bins and frame size imply."""
        model = self.manifest.model
        config = model.get("sovits_config")
        config = config if isinstance(config, dict) else {}
        n_fft = int(config.get("filter_length", 2 * (int(model["spec_channels"]) - 1)))
        hop = int(config.get("hop_length", model["samples_per_frame"]))
        return n_fft, hop, int(config.get("win_length", n_fft))

    # ----- stages

    def style(self, ref_spec: np.ndarray, ref_sv: np.ndarray | None = None) -> np.ndarray:
        """Style vector ``[1, gin, 1]`` of a reference spectrogram ``[bins, T]`` (and, for a Pro
        bundle, its speaker vector ``[sv_dim]``), cached per reference."""
        feeds = {"ref_spec": ref_spec[None].astype(np.float32)}
        if self.needs_speaker_vector and ref_sv is not None:  # a missing one: _run names the input
            feeds["ref_sv"] = ref_sv.reshape(1, -1).astype(np.float32)
        digest = hashlib.sha1()
        for name, value in feeds.items():
            digest.update(name.encode() + str(value.shape).encode() + np.ascontiguousarray(value).tobytes())
        key = digest.hexdigest()
        with self._styles_lock:
            known = self._styles.get(key)
        if known is not None:
            return known
        ge = self._run("ref_enc", feeds)[0]
        if not np.isfinite(ge).all():
            peak = float(np.max(np.abs(feeds["ref_spec"])))
            raise DataError(
                f"the style graph overflows on this reference (spectrogram values up to {peak:.3g}); "
                "pass the linear magnitude spectrogram GPT-SoVITS computes from the reference wav"
            )
        with self._styles_lock:
            ge = self._styles.setdefault(key, ge)
            while len(self._styles) > STYLES_KEPT:
                self._styles.pop(next(iter(self._styles)))
        return ge

    def generate(
        self,
        item: SynthInput,
        sampling: SamplingConfig | None = None,
        max_new_tokens: int | None = None,
        seed: int = 0,
        keep_logits: bool = False,
    ) -> GenerationOutput:
        """Semantic codes for one utterance (``top_k=1`` in ``sampling`` is greedy).

        Raises:
            DataError: a phone id the bundle's GPT has no trained embedding for.
        """
        self._check_gpt_phones(item.phones)
        return self.gpt.generate(
            item.phones,
            item.bert_features(),
            item.prompt_codes.astype(np.int64),
            sampling or self.sampling,
            int(self.manifest.model["max_tokens"] if max_new_tokens is None else max_new_tokens),
            _rng(seed),
            keep_logits=keep_logits,
        )

    def vocode(
        self,
        codes: np.ndarray,
        text: np.ndarray,
        ge: np.ndarray,
        noise_scale: float | None = None,
        seed: int = 0,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """Waveform ``[N]`` from codes ``[n]``, target phones ``[Nt]`` and a style vector.

        Args:
            noise_scale: prior sample scale (None: the bundle's default; 0: deterministic).
            seed: seed of the standard-normal prior noise.
            noise: explicit noise ``[1, inter, 2 n]`` instead of the seeded draw.
        """
        if codes.size == 0:
            raise DataError("no semantic codes to vocode; the GPT stopped at once (try another seed)")
        scale = float(self.manifest.model["noise_scale"] if noise_scale is None else noise_scale)
        if not (math.isfinite(scale) and scale >= 0):
            raise ConfigError(f"noise_scale must be a finite number >= 0, got {scale}")
        m_p, logs_p = self._run(
            "enc_p", {"codes": codes.reshape(1, 1, -1).astype(np.int64), "text": text.reshape(1, -1).astype(np.int64), "ge": ge}
        )
        if noise is None:
            noise = _rng(seed).standard_normal(m_p.shape).astype(np.float32)
        z_p = (m_p + noise * np.exp(logs_p) * scale).astype(np.float32)
        z = self._run("flow", {"z_p": z_p, "ge": ge})[0]
        wav = self._run("dec", {"z": z, "ge": ge})[0]
        return wav.reshape(-1).astype(np.float32)

    def synthesize(
        self,
        item: SynthInput,
        sampling: SamplingConfig | None = None,
        noise_scale: float | None = None,
        seed: int = 0,
        max_new_tokens: int | None = None,
    ) -> Synthesis:
        """Text (phones) + reference -> waveform, timing the GPT and SoVITS parts."""
        t0 = time.perf_counter()
        out = self.generate(item, sampling, max_new_tokens, seed)
        t1 = time.perf_counter()
        ge = self.style(item.ref_spec, item.ref_sv)
        wav = self.vocode(out.tokens, item.text, ge, noise_scale, seed)
        t2 = time.perf_counter()
        return Synthesis(wav, self.sampling_rate, out.tokens, out.stop_reason, t1 - t0, t2 - t1)

    # ----- plumbing

    def _check_gpt_phones(self, phones: np.ndarray) -> None:
        """Refuse phone ids beyond the GPT's trained vocabulary (a v1 GPT in a v2-table bundle)."""
        gpt = self.manifest.model.get("gpt_config")
        if not isinstance(gpt, dict) or phones.size == 0:
            return  # a bundle of an older manifest: onnxruntime reports an id beyond the table
        limit = V1_GPT_PHONES if gpt.get("version") == "v1" else int(gpt.get("phoneme_vocab_size", 0)) or None
        if limit is None or int(phones.max()) < limit:
            return
        table = self.symbols()
        bad = sorted({int(i) for i in phones if i >= limit})
        shown = [table[i] if i < len(table) else str(i) for i in bad[:5]]
        version = gpt.get("version")
        raise DataError(
            f"the bundle's {version} GPT was trained on phone ids 0..{limit - 1} only, and the prompt and text "
            f"hold {shown}; speak with phones of the {version} symbol table, or export a voice with a GPT of "
            f"the SoVITS's version ({self.manifest.model['sovits_version']})"
        )

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one graph, casting float inputs to the dtype the graph declares."""
        session = self.sessions[graph]
        typed = {}
        for spec in session.get_inputs():
            if spec.name not in feeds:
                raise DataError(f"graph {graph} needs input {spec.name!r}; got {sorted(feeds)}")
            _check_shape(graph, spec, feeds[spec.name])
            typed[spec.name] = feeds[spec.name].astype(_NUMPY_OF_ORT.get(spec.type, np.float32), copy=False)
        return [np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o for o in session.run(None, typed)]


def _check_model_entries(folder: Path, manifest: Manifest) -> None:
    """Refuse, in one line, manifest model entries and sampler settings the runner cannot use.

    Raises:
        ExportError: a size that is not a whole number (or below its least), a noise scale that
            is not a finite number >= 0, a file name that is not text, or bad sampler settings.
    """
    model, problems = manifest.model, []
    for key, least in _MODEL_COUNTS.items():
        value = model[key]
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole or (isinstance(value, float) and value.is_integer())) or value < least:
            problems.append(f"model.{key} is {value!r}, not a whole number >= {least}")
    scale = model["noise_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale >= 0):
        problems.append(f"model.noise_scale is {scale!r}, not a finite number >= 0")
    for key in ("inputs", "symbols"):
        if not isinstance(model[key], str):
            problems.append(f"model.{key} is {model[key]!r}, not a file name")
    try:
        SamplingConfig.from_dict(manifest.sampling)
    except (ConfigError, TypeError, ValueError) as e:
        problems.append(f"sampling: {e}")
    if problems:
        raise ExportError(f"the manifest of bundle {folder} is damaged: {'; '.join(problems)}; re-export the bundle")


def _prompt_bert(item: SynthInput, n_text: int) -> np.ndarray | None:
    """BERT features ``[1024, Np + n_text]`` for new text after ``item``'s prompt: the prompt's own
    (upstream computes them for a Chinese reference transcript), zeros for the text; None when
    the sample has none."""
    if item.bert is None:
        return None
    n_prompt = item.prompt_phones.size
    text_bert = np.zeros((item.bert.shape[0], n_text), dtype=np.float32)
    return np.concatenate([item.bert[:, :n_prompt], text_bert], axis=1)


def _check_shape(graph: str, spec: ort.NodeArg, value: np.ndarray) -> None:
    """Refuse an input whose rank or fixed sizes differ from the graph's (e.g. a speaker
    vector of the wrong length), in one line rather than onnxruntime's error."""
    want = list(spec.shape)
    fixed = [(i, d) for i, d in enumerate(want) if isinstance(d, int)]
    if value.ndim != len(want) or any(value.shape[i] != d for i, d in fixed):
        shown = ", ".join(str(d) if isinstance(d, int) else str(d or "?") for d in want)  # names: any size
        raise DataError(f"graph {graph} takes {spec.name} of shape [{shown}], got {list(value.shape)}")


def _rng(seed: int) -> np.random.Generator:
    """The random stream of ``seed``.

    Raises:
        ConfigError: a negative seed (numpy seeds only from non-negative integers).
    """
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(seed)


__all__ = ["BundleRunner", "Synthesis"]
