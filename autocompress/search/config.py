"""What a search is asked to do (:class:`SearchConfig`) and the checked, defaulted form of it.

The CLI builds a :class:`SearchConfig` from its flags; :func:`resolve` checks every input
(target, voice files, search space, numbers) before anything heavy is loaded, fills the
defaults (demo voice, the space's trials and steps, study name, output folder, artifact
folder) and returns a :class:`ResolvedSearch`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocompress.exceptions import CheckpointError, ConfigError, DataError
from autocompress.search.space import SearchSpace, load_space
from autocompress.search.paths import artifacts_dir, check_export_dir, check_writable_dir
from autocompress.store import DEFAULT_STORAGE, parse_url

DEMO_SPACE = "demo.toml"
USER_SPACE = "gpt_sovits_v2.toml"
DEVICES = ("auto", "cpu", "cuda")  # auto: cuda where torch sees a CUDA device, else cpu
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
MAX_SEED = 2**31 - 1  # samplers take 0..2**32 - 1; the rest is room for the daemon's per-run offsets


@dataclass(frozen=True)
class SearchConfig:
    """The inputs of one search, as given (None = default)."""

    target: str
    gpt: Path | None = None
    sovits: Path | None = None
    data: Path | None = None
    trials: int | None = None
    timeout_s: float | None = None
    steps: int | None = None
    study: str | None = None
    storage: str = DEFAULT_STORAGE
    out: Path | None = None
    space: str | None = None
    device: str = "auto"
    seed: int = 0
    artifacts: Path | None = None
    export: bool = True
    export_format: str = "onnx"  # or "checkpoint"


@dataclass(frozen=True)
class VoiceSource:
    """Where the teacher voice and its experiment data are."""

    gpt: Path
    sovits: Path
    data: Path
    demo: bool
    eval_names: tuple[str, ...] = ()  # held-out items; empty = split the folder
    reference_name: str = ""  # the utterance used as the synthesis prompt; empty = the first item
    # A voice built on the DSP stand-in for HuBERT (the demo): its version, so that the prompt can
    # be coded as upstream's inference codes one (0.6 s of silence appended). 0: HuBERT codes.
    standin_version: int = 0

    def describe(self) -> str:
        return "demo" if self.demo else f"gpt={self.gpt} sovits={self.sovits} data={self.data}"

    def to_dict(self) -> dict[str, Any]:
        """The voice as a study records it: absolute paths, so that a later ``export`` run from
        another folder finds the files (a baseline's student is rebuilt from them)."""
        return {"demo": self.demo, "gpt": str(self.gpt.absolute()), "sovits": str(self.sovits.absolute()),
                "data": str(self.data.absolute())}


@dataclass(frozen=True)
class ResolvedSearch:
    """A checked search with every default filled in."""

    config: SearchConfig
    target: Any  # autocompress.targets.Target
    voice: VoiceSource
    space: SearchSpace
    study: str
    n_trials: int
    steps: int
    out: Path
    artifacts: Path
    device: str


def demo_voice() -> VoiceSource:
    """The shipped demo voice.

    Raises:
        DataError: when its files are not installed.
    """
    from autocompress.models.gpt_sovits.demo import demo_voice_manifest, demo_voice_paths

    paths, manifest = demo_voice_paths(), demo_voice_manifest()
    return VoiceSource(
        gpt=paths.gpt_path, sovits=paths.sovits_path, data=paths.exp_dir, demo=True,
        eval_names=tuple(paths.eval_names), reference_name=str(manifest["reference_name"]),
        standin_version=int(manifest["standin_version"]),
    )


def resolve(config: SearchConfig) -> ResolvedSearch:
    """Check a search's inputs and fill its defaults.

    Raises:
        ConfigError: bad numbers, unknown target, device or space, malformed study name or URL.
        CheckpointError: a model file that does not exist.
        DataError: an experiment folder that does not exist, or a missing demo voice.
    """
    from autocompress.targets import load_target

    if config.trials is not None and config.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {config.trials}")
    if config.steps is not None and config.steps < 0:
        raise ConfigError(f"--steps must be 0 or more, got {config.steps}")
    if not 0 <= config.seed <= MAX_SEED:
        raise ConfigError(f"--seed must be 0 to {MAX_SEED}, got {config.seed}")
    if config.timeout_s is not None and not config.timeout_s > 0:
        raise ConfigError(f"--timeout must be more than 0 seconds, got {config.timeout_s:g}")
    if config.export_format not in ("onnx", "checkpoint"):
        raise ConfigError(f"--export-format must be onnx or checkpoint, got {config.export_format!r}")
    if config.device not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {config.device!r}")
    try:
        parse_url(config.storage)
    except Exception as e:  # StoreError: report as a usage error, the flag is wrong
        raise ConfigError(str(e)) from e
    target = load_target(config.target)  # ConfigError listing the valid names
    device = config.device
    # A measured target is measured on the device of its kind: its latency is this machine's.
    wanted = ("cuda" if target.kind == "gpu" else "cpu") if target.measured else None
    if device == "auto" and wanted == "cpu":
        device = "cpu"
    if device != "cpu":
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here; hint: use --device cpu")
    if wanted is not None and device != wanted:
        raise ConfigError(
            f"target {target.name!r} is measured on this machine's {target.kind.upper()}, so it needs --device "
            f"{wanted} (got {device}); hint: pick a projected target to search on this device for another"
        )

    voice = _voice(config)
    space = load_space(config.space or (DEMO_SPACE if voice.demo else USER_SPACE))
    study = config.study or ("demo" if voice.demo else _default_study(voice))
    if not _STUDY_NAME.match(study):
        raise ConfigError(
            f"--study {study!r}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    out = config.out or Path("exports") / study / target.name
    artifacts = artifacts_dir(config.storage, config.artifacts)
    check_writable_dir(artifacts, "--artifacts")  # now, not after hours of trials
    if config.export:
        check_export_dir(out, "--out", study, target.name)
    return ResolvedSearch(
        config=config,
        target=target,
        voice=voice,
        space=space,
        study=study,
        n_trials=config.trials or space.trials,
        steps=space.steps if config.steps is None else config.steps,
        out=out,
        artifacts=artifacts,
        device=device,
    )


def _voice(config: SearchConfig) -> VoiceSource:
    gpt, sovits, data = config.gpt, config.sovits, config.data
    if gpt is None and sovits is None and data is None:
        return demo_voice()
    if gpt is None or sovits is None or data is None:
        missing = [flag for flag, v in (("--gpt", gpt), ("--sovits", sovits), ("--data", data)) if v is None]
        raise ConfigError(
            f"a voice needs --gpt, --sovits and --data together; missing {', '.join(missing)} "
            "(leave all three out for the built-in demo voice)"
        )
    for flag, path in (("--gpt", gpt), ("--sovits", sovits)):
        if path.is_dir():
            raise CheckpointError(f"{flag} {path} is a folder; give the {'.ckpt' if flag == '--gpt' else '.pth'} file")
        if not path.is_file():
            raise CheckpointError(f"{flag} {path}: no such file")
    if data.exists() and not data.is_dir():
        raise DataError(f"--data {data} is a file; give the experiment folder logs/<exp> that holds it")
    if not data.is_dir():
        raise DataError(f"--data {data}: no such folder; expected an experiment folder logs/<exp>")
    return VoiceSource(gpt=gpt, sovits=sovits, data=data, demo=False)


def _default_study(voice: VoiceSource) -> str:
    """The experiment folder's name as a study name; a name with characters a study name cannot
    hold (Chinese, say) gets a short hash of the whole name, so two such folders get two studies."""
    folder = voice.data.resolve().name
    name = re.sub(r"[^A-Za-z0-9_.\-]", "-", folder)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name).rstrip("-.") or "voice"  # a study name starts with a letter or digit
    if not folder.isascii():
        digest = hashlib.sha256(folder.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        return f"{name[:119]}-{digest}"
    return name[:128]


__all__ = [
    "DEMO_SPACE",
    "DEVICES",
    "ResolvedSearch",
    "SearchConfig",
    "USER_SPACE",
    "VoiceSource",
    "demo_voice",
    "resolve",
]
