"""``autocompress synth``: speak with an exported bundle (onnxruntime and numpy only), or with
the built-in demo teacher (``--demo``, PyTorch).

Text comes as ``--text`` (English, through the front end in
:mod:`autocompress.models.gpt_sovits.text`, which needs no PyTorch) or as ``--phones``. Another
text source: register its flags in :func:`register` and turn them into phone ids in
:func:`phone_ids`; the rest of the command does not change.
"""

from __future__ import annotations

import argparse

from autocompress.cli.argtypes import check_output_file, non_negative_float, positive_int, seed, user_text
from autocompress.exceptions import ConfigError, DataError
from autocompress.models.gpt_sovits.text import MAX_PIECE_PHONES, PIECE_PAUSE_SECONDS


def register(subparsers) -> None:  # noqa: ANN001
    parser = subparsers.add_parser(
        "synth", help="synthesise a wav from an ONNX bundle (no PyTorch needed) or from the demo teacher",
        description="Speak text (or phones) with an exported ONNX bundle, or with the built-in demo voice's "
        "teacher, a sentence at a time; prints the length, the codes and the measured real-time factor.",
    )
    voice = parser.add_mutually_exclusive_group(required=True)
    voice.add_argument("--bundle", type=user_text, help="bundle folder written by export")
    voice.add_argument("--demo", action="store_true",
                       help="the built-in demo voice's teacher (PyTorch), prompted with its reference item")
    parser.add_argument("--out", required=True, type=user_text,
                        help="output wav (16-bit PCM at the voice's rate, 32 kHz)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--text", help="English text to speak (numbers and punctuation are read; CMUdict phones)")
    text.add_argument("--phones", help="text as phone symbols ('HH AH0 L OW1') or ids ('12,40,7')")
    parser.add_argument("--sample", type=int, default=0,
                        help="bundle: stored sample giving the voice prompt (default 0)")
    reference = parser.add_mutually_exclusive_group()
    reference.add_argument("--ref-wav", type=user_text,
                           help="bundle: a recording of the new voice (WAV/FLAC, any rate, mono or stereo; "
                           "a few seconds of speech) whose spectrogram replaces the sample's. It changes the "
                           "SoVITS style (timbre) only: the GPT still continues the sample's prompt (its "
                           "phones and codes), which steers rhythm and intonation")
    reference.add_argument("--ref-spec", type=user_text,
                           help="bundle: as --ref-wav, given as the reference's linear spectrogram "
                           ".npy [1025, T] (32 kHz)")
    parser.add_argument("--ref-sv", type=user_text,
                        help="bundle (v2Pro/v2ProPlus): the new reference's speaker vector: a .npy [20480], or "
                        "GPT-SoVITS's 7-sv_cn/<name>.pt itself (read with PyTorch); needed with --ref-wav or --ref-spec")
    parser.add_argument("--seed", type=seed, default=0, help="sampling and prior-noise seed (default 0)")
    parser.add_argument("--top-k", type=positive_int,
                        help="sampler top-k (1 = greedy; default: the bundle's, greedy for --demo)")
    parser.add_argument("--temperature", type=non_negative_float,
                        help="sampler temperature (default: the bundle's, 1 for --demo)")
    parser.add_argument("--noise-scale", type=non_negative_float,
                        help="prior noise scale (0 = deterministic; default: the bundle's, 0 for --demo)")
    parser.add_argument("--max-tokens", type=positive_int,
                        help="most semantic codes to generate (default: the bundle's; --demo: 3 per phone + 25)")
    parser.add_argument("--max-piece-phones", type=int, default=MAX_PIECE_PHONES, metavar="N",
                        help="speak the text sentence by sentence, a sentence of more than N phones cut at its "
                        f"commas (--text: a clause still longer, between words), with {PIECE_PAUSE_SECONDS} s of "
                        "silence between pieces "
                        f"(default {MAX_PIECE_PHONES}; 0: the whole text at once)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--provider", choices=("auto", "tensorrt", "cuda", "cpu"), default="auto",
                       help="bundle: onnxruntime provider. auto (default): CUDA when it works here, else the CPU; "
                       "tensorrt: TensorRT (int8 graphs as int8, the runtime GPU targets' latency assumes; needs "
                       "TensorRT's libraries, builds engines for minutes on first use, cached in "
                       "~/.cache/autocompress/tensorrt), CUDA for the nodes it does not take; cuda; cpu. "
                       "tensorrt and cuda are refused where they cannot start")
    where.add_argument("--cpu", action="store_true", help="bundle: never use the CUDA provider (--provider cpu)")
    parser.add_argument("--threads", type=positive_int, help="onnxruntime (or, with --demo, torch) intra-op threads")
    parser.set_defaults(func=run)


# Audio formats other than WAV, which an --out name may ask for but synth does not write.
OTHER_AUDIO_SUFFIXES = frozenset({".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff"})


def phone_ids(args: argparse.Namespace, table: list[str]) -> list[int] | None:
    """The text to speak as ids of ``table``, or None for a bundle sample's own text."""
    from autocompress.runtime.inputs import parse_phones

    if args.text is None:
        return None if args.phones is None else [int(i) for i in parse_phones(args.phones, table)]
    return _text_ids(args.text, table)[0]


def _text_ids(text: str, table: list[str]) -> tuple[list[int], list[int]]:
    """``--text`` as ids of ``table``, and the index of each word's first phone among them."""
    from autocompress.models.gpt_sovits.text import PUNCTUATION, english_to_word_phones  # torch-free

    words = english_to_word_phones(text)
    phones = [p for word in words for p in word]
    if not any(p[0].isalpha() for p in phones):
        foreign = any(c.isalpha() and not c.isascii() for c in text)
        hint = (
            "; --text reads English only: give other languages as --phones, the phones GPT-SoVITS's own "
            "text front end gives (as in 2-name2text.txt)" if foreign else ""
        )
        raise DataError(f"--text {text!r} has no words to speak{hint}")
    index = {symbol: i for i, symbol in enumerate(table)}
    unknown = sorted({p for p in phones if p not in index})
    if unknown:
        raise DataError(f"the voice's symbol table lacks the phones {unknown} of --text")
    starts, at = [], 0
    for word in words:
        if word[0] not in PUNCTUATION:
            starts.append(at)
        at += len(word)
    return [index[p] for p in phones], starts


def phone_pieces(args: argparse.Namespace, table: list[str]) -> list[list[int]] | None:
    """The text to speak as pieces of ids (:func:`split_phones`; one piece with
    ``--max-piece-phones 0``), or None for a bundle sample's own text."""
    from autocompress.models.gpt_sovits.text import split_phones

    ids, word_starts = _text_ids(args.text, table) if args.text is not None else (phone_ids(args, table), [])
    if ids is None:
        return None
    limit = getattr(args, "max_piece_phones", MAX_PIECE_PHONES)
    if limit < 0:
        raise ConfigError(f"--max-piece-phones must be >= 0, got {limit}")
    if limit == 0:
        pieces = [ids]
    else:
        pieces, start = [], 0
        for piece in split_phones([table[i] for i in ids], limit, word_starts):
            pieces.append(ids[start : start + len(piece)])
            start += len(piece)
    return [assemble_piece(piece, table) for piece in pieces] if args.text is not None else pieces


MIN_PIECE_PHONES = 6  # upstream's inference reads a shorter text with a "." in front


def assemble_piece(ids: list[int], table: list[str]) -> list[int]:
    """A piece of text as upstream's inference assembles it: a "." after it when it does not
    end in a mark, and a "." in front when it is then still under :data:`MIN_PIECE_PHONES`."""
    from autocompress.models.gpt_sovits.text import PUNCTUATION

    stop = table.index(".")
    if table[ids[-1]] not in PUNCTUATION:
        ids = [*ids, stop]
    return [stop, *ids] if len(ids) < MIN_PIECE_PHONES else ids


def join_pieces(wavs: list, sampling_rate: int):  # noqa: ANN201
    """One waveform: the pieces' audio with :data:`PIECE_PAUSE_SECONDS` of silence between them."""
    import numpy as np

    gap = np.zeros(round(PIECE_PAUSE_SECONDS * sampling_rate), dtype=np.float32)
    parts = []
    for i, wav in enumerate(wavs):
        parts += [gap, np.asarray(wav, dtype=np.float32)] if i else [np.asarray(wav, dtype=np.float32)]
    return np.concatenate(parts)


def stop_summary(reasons: list[str]) -> str:
    """How generation ended, over all pieces: ``eos``, or which pieces hit the code limit."""
    capped = [i + 1 for i, r in enumerate(reasons) if r != "eos"]
    if not capped:
        return "eos"
    if len(reasons) == 1:
        return "max_new_tokens"
    return f"max_new_tokens in piece{'s' if len(capped) > 1 else ''} {_ranges(capped)} of {len(reasons)}"


def _ranges(numbers: list[int]) -> str:
    """Ascending numbers with each run written as its ends: ``1-3, 7``."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def make_inputs(args: argparse.Namespace, runner) -> list:  # noqa: ANN001
    """The bundle utterances the flags describe: one per piece of the text."""
    ref_wav = getattr(args, "ref_wav", None)
    if getattr(args, "ref_sv", None) and not (args.ref_spec or ref_wav):  # ignored for the sample's own
        raise ConfigError(
            "--ref-sv is the speaker vector of a new reference: give that reference with --ref-spec or --ref-wav"
        )
    if (ref_wav or args.ref_spec) and runner.needs_speaker_vector and not getattr(args, "ref_sv", None):
        raise ConfigError(
            f"{'--ref-wav' if ref_wav else '--ref-spec'} gives a {runner.manifest.model['sovits_version']} bundle the "
            "new reference's spectrogram only; pass its speaker vector too with --ref-sv (GPT-SoVITS's "
            "7-sv_cn/<name>.pt, or a .npy of its values)"
        )
    ref = _load_npy(args.ref_spec, "--ref-spec") if args.ref_spec else None
    if ref_wav:
        ref = runner.reference_spec(ref_wav)
    sv = load_speaker_vector(args.ref_sv) if getattr(args, "ref_sv", None) else None
    pieces = phone_pieces(args, runner.symbols())
    if pieces is None:
        return [runner.make_input(args.sample, None, ref, sv)]
    return [runner.make_input(args.sample, " ".join(map(str, ids)), ref, sv) for ids in pieces]


SV_VALUES = 20480  # a v2Pro/v2ProPlus speaker vector (7-sv_cn/<name>.pt holds [1, 20480])
NPY_MAGIC = b"\x93NUMPY"


def _load_npy(path: str, flag: str):  # noqa: ANN202
    import numpy as np

    try:
        with open(path, "rb") as f:
            if f.read(6) != NPY_MAGIC:  # np.load calls any other file "pickled data"
                raise DataError(f"{flag} {path}: not a .npy file (write it with numpy.save)")
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:  # missing, unreadable, or a pickled object
        raise DataError(f"{flag} {path}: cannot be read as a .npy array ({str(e).splitlines()[0][:120]})") from None


def load_speaker_vector(path: str, flag: str = "--ref-sv"):  # noqa: ANN201 - a numpy array
    """The speaker vector in ``path``: a ``.npy`` array, or a tensor file of GPT-SoVITS's ``7-sv_cn``
    (read with PyTorch, when it is installed, as plain tensor data: no pickled code runs).

    Raises:
        DataError: the file cannot be read, is a ``.pt`` without PyTorch, or holds no vector of
            :data:`SV_VALUES` values.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DataError(f"{flag} {path}: cannot be read ({e.strerror or e})") from None
    if head == NPY_MAGIC:
        return _load_npy(path, flag)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save's zip, or its legacy pickle
        raise DataError(f"{flag} {path}: not a .npy file (write it with numpy.save) nor a PyTorch .pt tensor file")
    try:
        import torch
    except ImportError:
        raise DataError(
            f"{flag} {path}: a PyTorch .pt file, which needs PyTorch to read; install torch, or convert it to "
            ".npy with numpy.save where torch is installed"
        ) from None
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several unrelated types for a bad file
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DataError(f"{flag} {path}: cannot be loaded as a tensor file ({first})") from None
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        what = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
        raise DataError(f"{flag} {path}: holds {what}, expected a float tensor [1, {SV_VALUES}] (7-sv_cn/<name>.pt)")
    if value.numel() != SV_VALUES or sum(d > 1 for d in value.shape) > 1:
        raise DataError(
            f"{flag} {path}: a tensor of shape {list(value.shape)}, expected one speaker vector of {SV_VALUES} "
            "values ([1, 20480], as in 7-sv_cn/<name>.pt)"
        )
    return value.detach().float().reshape(-1).numpy()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if Path(args.out).is_dir():  # checked before the voice speaks, not when the wav is written
        raise ConfigError(f"--out {args.out} is a folder; give the path of the wav file to write")
    check_output_file(args.out, "--out")
    if Path(args.out).suffix.lower() in OTHER_AUDIO_SUFFIXES:  # a .mp3 holding WAV data misleads players
        raise ConfigError(f"--out {args.out}: synth writes WAV (16-bit PCM) only; name the file .wav")
    if args.demo:
        return run_demo(args)
    import dataclasses

    from autocompress.runtime import BundleRunner
    from autocompress.runtime.manifest import MANIFEST_NAME

    if not (Path(args.bundle) / MANIFEST_NAME).is_file():  # a wrong path is a usage error (exit 2)
        raise DataError(f"--bundle {args.bundle}: {_not_a_bundle(Path(args.bundle))}")
    provider = "cpu" if args.cpu else getattr(args, "provider", "auto")
    runner = BundleRunner(args.bundle, threads=args.threads, provider=provider)
    sampling = runner.sampling
    if args.top_k is not None:
        sampling = dataclasses.replace(sampling, top_k=args.top_k)
    if args.temperature is not None:
        sampling = dataclasses.replace(sampling, temperature=args.temperature)
    outs = [
        runner.synthesize(item, sampling, args.noise_scale, args.seed, args.max_tokens)
        for item in make_inputs(args, runner)
    ]
    write_pieces(
        args.out, [o.wav for o in outs], runner.sampling_rate, [o.codes.size for o in outs],
        [o.stop_reason for o in outs], sum(o.gpt_seconds + o.sovits_seconds for o in outs),
        f"measured on {runner.device}",
    )  # fmt: skip
    return 0


def write_pieces(
    out: str, wavs: list, sampling_rate: int, n_codes: list[int], reasons: list[str], wall_s: float, where: str
) -> None:
    """Write the pieces as one wav (:func:`join_pieces`) and say what it holds and its measured RTF;
    warn when a piece's GPT stopped at its code limit (:func:`cut_short_line`)."""
    import sys

    from autocompress.runtime import write_wav

    wav = join_pieces(wavs, sampling_rate)
    seconds = wav.size / sampling_rate
    write_wav(out, wav, sampling_rate)
    pieces = f" in {len(wavs)} pieces" if len(wavs) > 1 else ""
    print(f"wrote {out}: {seconds:.2f} s, {sum(n_codes)} codes{pieces} ({stop_summary(reasons)}), "
          f"RTF {wall_s / max(seconds, 1e-9):.3f} {where}")
    line = cut_short_line(n_codes, reasons)
    if line:
        print(f"warning: {line}", file=sys.stderr, flush=True)


def cut_short_line(n_codes: list[int], reasons: list[str]) -> str:
    """One line saying which pieces the GPT's code limit cut short and how to raise it; "" when none was."""
    capped = [i + 1 for i, r in enumerate(reasons) if r != "eos"]
    if not capped:
        return ""
    most = max(n_codes[i - 1] for i in capped)
    if len(reasons) == 1:
        where, whose = "the text", "the"
    else:
        many = len(capped) > 1
        where, whose = f"piece{'s' if many else ''} {_ranges(capped)} of {len(reasons)}", "their" if many else "its"
    return (f"the GPT stopped at its code limit ({most} codes) before the end of {where}, so {whose} audio is cut "
            f"short; raise the limit with --max-tokens (more than {most})")


def _not_a_bundle(folder) -> str:  # noqa: ANN001
    """Why ``folder``, which holds no manifest, is not a bundle, and what to pass instead."""
    from autocompress.runtime.manifest import MANIFEST_NAME

    if folder.is_file():  # a file of a bundle (its manifest, a graph): the folder holding it is the bundle
        if (folder.parent / MANIFEST_NAME).is_file():
            return f"a file, not a folder; pass the bundle folder that holds it, {folder.parent}"
        return "a file, not a folder; expected a bundle folder written by `export`"
    if not folder.exists():
        return "no such folder; expected a bundle folder written by `export`"
    if (folder / "pareto.json").is_file():  # the export folder itself: name one of its bundles
        bundles = sorted(p.name for p in folder.iterdir() if (p / MANIFEST_NAME).is_file())
        if not bundles:
            return "an export folder that holds no ONNX bundle (a checkpoint export, or no feasible trial)"
        return f"an export folder, not a bundle; pass one of its bundles ({', '.join(bundles)}), e.g. {folder / bundles[0]}"
    if (folder / "plan.json").is_file() and (folder / "gpt.ckpt").is_file():
        return ("a checkpoint export (.ckpt/.pth for GPT-SoVITS), not an ONNX bundle; "
                "export the study with --export-format onnx to speak with synth")
    return f"no {MANIFEST_NAME}; expected a bundle folder written by `export`"


def run_demo(args: argparse.Namespace) -> int:
    """Speak ``--text`` / ``--phones`` with the demo teacher in PyTorch (measured RTF on this CPU)."""
    if args.sample != 0 or args.ref_spec is not None or args.ref_wav is not None or args.ref_sv is not None:
        raise ConfigError(
            "--sample, --ref-wav, --ref-spec and --ref-sv choose a bundle's prompt; --demo always uses its reference item"
        )
    if getattr(args, "provider", "auto") != "auto":
        raise ConfigError("--provider chooses a bundle's onnxruntime provider; --demo runs the teacher in PyTorch on the CPU")
    if args.text is None and args.phones is None:
        raise ConfigError("--demo needs --text (or --phones) to speak")
    import time

    import torch

    from autocompress.models.gpt_sovits import ExperimentFolder, load_gpt, load_sovits
    from autocompress.models.gpt_sovits.demo import demo_prompt_codes, demo_voice_manifest, demo_voice_paths
    from autocompress.models.gpt_sovits.text import phones_to_ids, symbols
    from autocompress.models.gpt_sovits.voice import Voice
    from autocompress.search.synth import code_limit, reference_prompt, speak

    if args.threads:
        torch.set_num_threads(args.threads)
    paths, manifest = demo_voice_paths(), demo_voice_manifest()
    folder = ExperimentFolder(paths.exp_dir)
    pieces = phone_pieces(args, symbols(folder.version))  # bad text is refused before the voice loads
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    voice = Voice(load_gpt(paths.gpt_path).eval(), load_sovits(paths.sovits_path).eval())
    ref = folder[manifest["reference_name"]]
    wav = ref.load_wav()  # the prompt is coded as upstream's inference codes one (the teacher's figures too)
    codes = demo_prompt_codes(voice.sovits, wav, manifest["standin_version"])
    prompt = reference_prompt(voice, ref.name, phones_to_ids(ref.phones, folder.version), wav, codes)
    start = time.perf_counter()
    speeches, reasons = [], []
    for piece in pieces:
        ids = torch.tensor(piece, dtype=torch.long)
        limit = args.max_tokens if args.max_tokens is not None else code_limit(ids.numel())
        speech = speak(
            voice, prompt, ids,
            top_k=args.top_k if args.top_k is not None else 1,
            temperature=args.temperature if args.temperature is not None else 1.0,
            noise_scale=args.noise_scale if args.noise_scale is not None else 0.0,
            seed=args.seed, max_new_tokens=limit,
        )  # fmt: skip
        speeches.append(speech)
        reasons.append("max_new_tokens" if speech.codes.numel() >= limit else "eos")
    write_pieces(
        args.out, [s.wav.numpy() for s in speeches], speeches[0].sample_rate, [s.codes.numel() for s in speeches],
        reasons, time.perf_counter() - start, "measured on this CPU (demo teacher, PyTorch)",
    )  # fmt: skip
    return 0
