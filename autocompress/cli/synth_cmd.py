"""``autocompress synth``: speak with an exported bundle, using onnxruntime and numpy only.

Adding another text source (for example ``--demo --text "..."``): register its flags in
:func:`register` and turn them into a :class:`~autocompress.runtime.inputs.SynthInput` in
:func:`make_input`; the rest of the command does not change.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:  # noqa: ANN001
    parser = subparsers.add_parser("synth", help="synthesise a wav from an ONNX bundle (no PyTorch needed)")
    parser.add_argument("--bundle", required=True, help="bundle folder written by export")
    parser.add_argument("--out", required=True, help="output wav (16-bit PCM at the bundle's rate, 32 kHz)")
    parser.add_argument("--phones", help="text as phone symbols ('HH AH0 L OW1') or ids ('12,40,7')")
    parser.add_argument("--sample", type=int, default=0, help="stored sample giving the voice prompt (default 0)")
    parser.add_argument("--ref-spec", help="reference spectrogram .npy [1025, T] replacing the sample's")
    parser.add_argument("--seed", type=int, default=0, help="sampling and prior-noise seed")
    parser.add_argument("--top-k", type=int, help="sampler top-k (1 = greedy; default: the bundle's)")
    parser.add_argument("--temperature", type=float, help="sampler temperature (default: the bundle's)")
    parser.add_argument("--noise-scale", type=float, help="prior noise scale (0 = deterministic)")
    parser.add_argument("--max-tokens", type=int, help="most semantic codes to generate (default: the bundle's)")
    parser.add_argument("--cpu", action="store_true", help="never use the CUDA provider")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    parser.set_defaults(func=run)


def make_input(args: argparse.Namespace, runner):  # noqa: ANN001, ANN201
    """The utterance the flags describe (the extension point for other text sources)."""
    import numpy as np

    ref = np.load(args.ref_spec, allow_pickle=False) if args.ref_spec else None
    return runner.make_input(args.sample, args.phones, ref)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from autocompress.runtime import BundleRunner, write_wav

    runner = BundleRunner(args.bundle, prefer_gpu=not args.cpu, threads=args.threads)
    sampling = runner.sampling
    if args.top_k is not None:
        sampling = dataclasses.replace(sampling, top_k=args.top_k)
    if args.temperature is not None:
        sampling = dataclasses.replace(sampling, temperature=args.temperature)
    out = runner.synthesize(make_input(args, runner), sampling, args.noise_scale, args.seed, args.max_tokens)
    write_wav(args.out, out.wav, out.sampling_rate)
    print(
        f"wrote {args.out}: {out.audio_seconds:.2f} s, {out.codes.size} codes ({out.stop_reason}), "
        f"RTF {out.rtf:.3f} on {runner.device}"
    )
    return 0
