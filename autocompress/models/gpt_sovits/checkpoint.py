"""Read and write GPT-SoVITS model files: SoVITS ``.pth`` and GPT ``.ckpt`` (spec §6).

Files are unpickled with ``torch.load(weights_only=True)`` and one allow-listed global,
upstream's ``utils.HParams`` (mapped to the inert :class:`HParams` below), so a file can
never run code. Everything that can go wrong with a user's file becomes one
:class:`~autocompress.exceptions.CheckpointError` line naming the file, what was expected
and what was found.

Formats (what upstream writes and reads):

* SoVITS: ``{"weight": {key: fp16}, "config": utils.HParams tree, "info": "<E>epoch_<S>iteration"}``.
  Weight-norm layers are stored as ``weight_g`` / ``weight_v``; ``enc_q`` (training only)
  is dropped in user exports and kept in the pretrained files. v2Pro / v2ProPlus files have
  their first two bytes ``PK`` overwritten with a version tag (``05`` / ``06``).
* GPT: ``{"weight": {"model.<key>": fp16}, "config": dict, "info": "GPT-e<E>"}``.
* GPT training checkpoint (``logs/<exp>/logs_s1_*/ckpt/*.ckpt``, written by Lightning): the
  same ``model.<key>`` tensors (fp32) under ``state_dict``, the config under
  ``hyper_parameters.config`` next to ``output_dir``, a ``pathlib`` path (read as an inert
  :class:`_PathStandIn`), and the trainer's state, which is ignored.
* SoVITS training checkpoint (``logs/<exp>/logs_s2_<ver>/G_<step>.pth``, written by
  s2_train to resume): ``{"model": {key: fp32}, "iteration": epoch, "optimizer", "learning_rate"}``
  with ``enc_q`` and no config; the config is the experiment's ``config.json``, found beside
  the file or one folder up. Its discriminator twin ``D_<step>.pth`` is refused by name.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import re
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from autocompress.exceptions import CheckpointError, ConfigError
from autocompress.models.gpt_sovits.config import GPTConfig, SoVITSConfig
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn, from_upstream_keys, to_upstream_keys

_ZIP_MAGIC = b"PK\x03\x04"  # a zip archive's first bytes (torch.save's format)
LEGACY_TORCH_HEADER = b"\x80\x02"  # torch.save(..., _use_new_zipfile_serialization=False): pickle protocol 2
# First two bytes of a SoVITS file -> (symbol version, model version, is LoRA). b"PK" is
# a plain torch zip; upstream's saver writes 03..06, 00..02 are only recognised.
HEADER_VERSIONS: dict[bytes, tuple[str, str, bool]] = {
    b"00": ("v1", "v1", False),
    b"01": ("v2", "v2", False),
    b"02": ("v2", "v3", False),
    b"03": ("v2", "v3", True),
    b"04": ("v2", "v4", True),
    b"05": ("v2", "v2Pro", False),
    b"06": ("v2", "v2ProPlus", False),
}
VERSION_HEADERS = {"v2Pro": b"05", "v2ProPlus": b"06"}  # what we write; PK for v1 / v2
RESUME_CONFIG = "config.json"  # s2_train's copy of its config, in logs/<exp>/
GPT_PREFIX = "model."  # the Lightning wrapper's attribute name, part of every GPT key
ENC_Q_PREFIX = "enc_q."
V1_SYMBOLS = 322  # text_embedding rows of a v1 SoVITS (v2 and later: 732)
PROPLUS_CONV_PRE = 768  # dec.conv_pre output width of v2ProPlus (v2Pro: 512)
_BUFFER_PREFIXES = ("quantizer.",)  # SoVITS entries that are buffers, not parameters


# --------------------------------------------------------------------------- HParams


class HParams:
    """Inert stand-in for upstream's ``utils.HParams`` (an attribute bag of config values).

    It is allow-listed under the name ``utils.HParams`` when loading and pickled under that
    name when saving, so files stay readable by upstream. It has no behaviour beyond
    holding attributes; :func:`hparams_to_dict` turns a tree of them into plain dicts.
    """

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, HParams(**value) if isinstance(value, dict) else value)

    def keys(self):  # noqa: ANN201
        return self.__dict__.keys()

    def items(self):  # noqa: ANN201
        return self.__dict__.items()

    def values(self):  # noqa: ANN201
        return self.__dict__.values()

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def __len__(self) -> int:
        return len(self.__dict__)

    def __repr__(self) -> str:
        return f"HParams({self.__dict__!r})"


def hparams_to_dict(value: Any) -> Any:
    """Turn an HParams tree (or dicts / lists holding them) into plain dicts and lists."""
    if isinstance(value, HParams):
        value = value.__dict__
    if isinstance(value, dict):
        return {str(k): hparams_to_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [hparams_to_dict(v) for v in value]
    return value


class _UpstreamPickler(pickle._Pickler):  # type: ignore[name-defined]  # pure-Python pickler
    """Pickles :class:`HParams` as the global ``utils.HParams``, as upstream's files do."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is HParams:
            self.write(pickle.GLOBAL + b"utils\nHParams\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


# torch.save accepts any module-like object with a Pickler.
_UPSTREAM_PICKLE = types.SimpleNamespace(__name__="autocompress_upstream_pickle", Pickler=_UpstreamPickler)


class _PathStandIn:
    """Inert stand-in for the ``pathlib`` paths a Lightning checkpoint pickles (the
    ``output_dir`` of its ``hyper_parameters``): it keeps the parts as text, nothing more."""

    def __init__(self, *parts: Any) -> None:
        self.parts = tuple(str(part) for part in parts)

    def __repr__(self) -> str:
        return f"_PathStandIn({'/'.join(self.parts)!r})"


# Where pathlib's classes live in a pickle (Python 3.13 moved them to pathlib._local).
_PATH_GLOBALS = tuple(
    f"{module}.{name}"
    for module in ("pathlib", "pathlib._local")
    for name in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")
)
_SAFE_GLOBALS = [(HParams, "utils.HParams"), *((_PathStandIn, name) for name in _PATH_GLOBALS)]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CheckpointInfo:
    """What a model file says about itself (no model is built).

    Attributes:
        path: the file.
        kind: "sovits" or "gpt".
        version: v1 | v2 | v2Pro | v2ProPlus (GPT: v1 | v2, from the phone vocabulary).
        header: the file's first two bytes as stored (b"PK" or a version tag).
        info: the file's ``info`` string ("8epoch_200iteration", "GPT-e15").
        config: the model config the loader builds from the file.
        upstream_config: the file's config as plain dicts.
        has_enc_q: SoVITS only: the training-only posterior encoder is in the file.
        param_counts: stored parameter elements per top-level submodule.
        buffer_count: stored buffer elements (the SoVITS quantizer codebook).
        n_entries: tensors in the file.
        dtypes: stored tensor dtypes, e.g. ("float16",).
    """

    path: str
    kind: str
    version: str
    header: bytes
    info: str
    config: SoVITSConfig | GPTConfig
    upstream_config: dict[str, Any]
    has_enc_q: bool
    param_counts: dict[str, int]
    buffer_count: int
    n_entries: int
    dtypes: tuple[str, ...]

    @property
    def n_params(self) -> int:
        return sum(self.param_counts.values())


@dataclass
class SoVITSCheckpoint:
    """A loaded SoVITS model and what its file said."""

    model: SynthesizerTrn
    info: CheckpointInfo

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def config(self) -> SoVITSConfig:
        return self.info.config  # type: ignore[return-value]

    @property
    def has_enc_q(self) -> bool:
        return self.info.has_enc_q


@dataclass
class GPTCheckpoint:
    """A loaded GPT model and what its file said."""

    model: Text2SemanticGPT
    info: CheckpointInfo

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def config(self) -> GPTConfig:
        return self.info.config  # type: ignore[return-value]


# --------------------------------------------------------------------------- public API


def load_sovits(path: str | Path, map_location: str | torch.device | None = None) -> SynthesizerTrn:
    """Load a SoVITS ``.pth`` (v1, v2, v2Pro, v2ProPlus) as a float32 model in eval mode.

    Args:
        path: the file (user export or pretrained generator).
        map_location: device to move the model to (default CPU).

    Raises:
        CheckpointError: the file is not a loadable SoVITS checkpoint (the message says why).
    """
    return read_sovits(path, map_location).model


def load_gpt(path: str | Path, map_location: str | torch.device | None = None) -> Text2SemanticGPT:
    """Load a GPT ``.ckpt`` as a float32 model in eval mode (see :func:`load_sovits`)."""
    return read_gpt(path, map_location).model


def read_sovits(path: str | Path, map_location: str | torch.device | None = None) -> SoVITSCheckpoint:
    """Load a SoVITS file and return the model together with its :class:`CheckpointInfo`.

    The model has ``enc_q`` exactly when the file has it (pretrained generators do, user
    exports do not); every other key must match the config in name and shape.
    """
    path = Path(path)
    obj, header = _read(path)
    obj = _as_export(path, obj)
    _expect_kind(path, obj, "sovits")
    weights = _tensor_dict(path, obj["weight"])
    info = _sovits_info(path, obj, header, weights)
    model = _build(path, SynthesizerTrn, info.config, include_enc_q=info.has_enc_q)
    hint = None if obj.get("config") is not None else (
        f"the file has no 'config' entry, so upstream's {info.version} sizes were assumed and do not fit its "
        "weights; pass the .pth GPT-SoVITS exports to SoVITS_weights*/, which carries its config"
    )
    _load_strictly(path, model, weights, to_file=to_upstream_keys, from_file=from_upstream_keys, hint=hint)
    return SoVITSCheckpoint(model=_finish(model, map_location), info=info)


def read_gpt(path: str | Path, map_location: str | torch.device | None = None) -> GPTCheckpoint:
    """Load a GPT file and return the model together with its :class:`CheckpointInfo`."""
    path = Path(path)
    obj, header = _read(path)
    obj = _as_export(path, obj)
    _expect_kind(path, obj, "gpt")
    weights = _tensor_dict(path, obj["weight"])
    info = _gpt_info(path, obj, header, weights, check_shapes=False)  # _load_strictly checks them on the model
    model = _build(path, Text2SemanticGPT, info.config)
    _load_strictly(path, model, weights, to_file=_add_gpt_prefix, from_file=_strip_gpt_prefix)
    return GPTCheckpoint(model=_finish(model, map_location), info=info)


def inspect_checkpoint(path: str | Path) -> CheckpointInfo:
    """Describe a GPT or SoVITS file without building a model."""
    path = Path(path)
    obj, header = _read(path)
    obj = _as_export(path, obj)
    kind = _kind(obj)
    if kind not in ("sovits", "gpt"):
        raise CheckpointError(f"{path}: {_unknown_problem(obj) if kind == 'unknown' else _KIND_PROBLEMS[kind]}")
    weights = _tensor_dict(path, obj["weight"])
    if kind == "sovits":
        return _sovits_info(path, obj, header, weights)
    return _gpt_info(path, obj, header, weights)


def checkpoint_step(path: str | Path) -> int:
    """The training step a model file records in its ``info``: ``"<E>epoch_<S>iteration"`` (a
    SoVITS, upstream's form) or ``"GPT-e<S>"`` (a GPT, as the demo build writes it); 0 when it
    records none."""
    found = re.fullmatch(r"\d+epoch_(\d+)iteration|GPT-e(\d+)", inspect_checkpoint(path).info)
    return int(next(g for g in found.groups() if g is not None)) if found else 0


def save_sovits(
    model: SynthesizerTrn,
    path: str | Path,
    *,
    include_enc_q: bool = False,
    epoch: int = 0,
    step: int = 0,
    info: str | None = None,
    half: bool = True,
) -> Path:
    """Write a SoVITS model in upstream's exported-weights format.

    fp16 weights under upstream key names, the config as a ``utils.HParams`` tree, the
    info string, and the version tag in place of ``PK`` for v2Pro / v2ProPlus.

    Args:
        model: the model (any dtype or device; it is not modified).
        path: destination file.
        include_enc_q: keep the training-only posterior encoder (as pretrained files do).
        epoch, step: recorded in the info string ``"<epoch>epoch_<step>iteration"``.
        info: an info string to write instead.
        half: store fp16 as upstream's exporter does; False keeps the model's float dtype, so
            an fp32 (e.g. pretrained) file saves and loads back bitwise (upstream reads both).

    Returns:
        The path written.
    """
    config: SoVITSConfig = model.config
    weights = {k: v.cpu() for k, v in upstream_sovits_state_dict(model, include_enc_q, half).items()}
    payload = collections.OrderedDict(
        weight=weights,
        config=HParams(**config.to_upstream()),
        info=info if info is not None else f"{epoch}epoch_{step}iteration",
    )
    return _write(path, payload, VERSION_HEADERS.get(config.version, b"PK"))


def save_gpt(
    model: Text2SemanticGPT, path: str | Path, *, epoch: int = 0, info: str | None = None, half: bool = True
) -> Path:
    """Write a GPT model in upstream's ``.ckpt`` format (fp16, ``model.`` keys, config dict).

    ``half=False`` keeps the model's float dtype instead of fp16 (see :func:`save_sovits`).
    """
    weights = collections.OrderedDict((k, v.cpu()) for k, v in upstream_gpt_state_dict(model, half).items())
    payload = collections.OrderedDict(
        weight=weights,
        config=model.config.to_upstream(),
        info=info if info is not None else f"GPT-e{epoch}",
    )
    return _write(path, payload, b"PK")


def upstream_sovits_state_dict(
    model: SynthesizerTrn, include_enc_q: bool = False, half: bool = True
) -> dict[str, Tensor]:
    """The ``weight`` entry upstream would save: upstream key names, fp16, enc_q dropped."""
    return {
        k: v.detach().half() if half else v.detach()
        for k, v in to_upstream_keys(model.state_dict()).items()
        if include_enc_q or not k.startswith(ENC_Q_PREFIX)
    }


def upstream_gpt_state_dict(model: Text2SemanticGPT, half: bool = True) -> dict[str, Tensor]:
    """The ``weight`` entry upstream would save: ``model.``-prefixed keys, fp16."""
    return collections.OrderedDict(
        (GPT_PREFIX + k, v.detach().half() if half else v.detach()) for k, v in model.state_dict().items()
    )


def detect_sovits_version(
    shapes: dict[str, tuple[int, ...]], header: bytes = b"PK", hps: dict[str, Any] | None = None
) -> str:
    """Decide a SoVITS file's version from its keys (spec §6.2, key-based rule).

    ``cfm.*`` means v3/v4 (unsupported). ``sv_emb`` means Pro: ProPlus when the header tag
    or the config says so, else when ``dec.conv_pre`` is 768 wide. Otherwise 322 text
    embedding rows mean v1, anything else v2.

    Args:
        shapes: key -> shape of every stored tensor (upstream names).
        header: the file's first two bytes.
        hps: the file's config as plain dicts.

    Raises:
        CheckpointError: the file is a v3/v4 model.
    """
    tagged = HEADER_VERSIONS.get(header, ("", "", False))[1]
    if any(k.startswith("cfm.") for k in shapes) or tagged in ("v3", "v4"):
        raise CheckpointError("this is a SoVITS v3/v4 model (CFM decoder); v3/v4 are not supported yet")
    if "sv_emb.weight" in shapes:
        if tagged in ("v2Pro", "v2ProPlus"):
            return tagged
        stated = str(((hps or {}).get("model") or {}).get("version", ""))
        if stated in ("v2Pro", "v2ProPlus"):
            return stated
        conv_pre = shapes.get("dec.conv_pre.weight", (0,))
        return "v2ProPlus" if conv_pre[0] == PROPLUS_CONV_PRE else "v2Pro"
    rows = shapes.get("enc_p.text_embedding.weight", (0,))[0]
    return "v1" if rows == V1_SYMBOLS else "v2"


# --------------------------------------------------------------------------- reading


def _read(path: Path) -> tuple[Any, bytes]:
    """Unpickle a file safely; returns (object, first two bytes as stored)."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from e
    if not data:
        raise CheckpointError(f"{path}: the file is empty; expected a GPT-SoVITS .pth or .ckpt")
    header = data[:2]
    tagged_zip = header.isdigit() and data[2:4] == _ZIP_MAGIC[2:]  # a version tag over a zip's "PK"
    if header != b"PK" and header != LEGACY_TORCH_HEADER:
        if header not in HEADER_VERSIONS or not tagged_zip:
            if tagged_zip:
                raise CheckpointError(
                    f"{path}: unknown GPT-SoVITS version tag {header!r}; this reader knows b'00'..b'06' "
                    "(v1 .. v2ProPlus), so the file comes from a newer upstream"
                )
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint: expected a zip archive (first bytes b'PK') or a "
                f"GPT-SoVITS version tag (b'00'..b'06'), got {header!r}"
            )
        _, model_version, is_lora = HEADER_VERSIONS[header]
        if is_lora:
            raise CheckpointError(
                f"{path}: this is a SoVITS {model_version} LoRA file (tag {header!r}); LoRA files are not supported yet"
            )
        if model_version in ("v3", "v4"):
            raise CheckpointError(f"{path}: this is a SoVITS {model_version} model; v3/v4 are not supported yet")
        data = b"PK" + data[2:]
    if header != LEGACY_TORCH_HEADER:
        problem = _zip_problem(data)
        if problem is not None:
            raise CheckpointError(f"{path}: {problem}")
    # A legacy (pre-zip) torch file is read the same way: weights_only covers both formats.
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise CheckpointError(
                f"{path}: refused to unpickle {found.group(1)}: only tensors, plain containers, "
                "utils.HParams and paths are allowed, and a GPT-SoVITS model file holds nothing else"
            ) from None
        raise CheckpointError(f"{path}: not a valid checkpoint (corrupt, truncated or not a PyTorch file)") from e
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ValueError, ...
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({_first_line(e)}); re-export or re-download it"
        ) from e
    return obj, header


def _zip_problem(data: bytes) -> str | None:
    """Why ``data`` (starting ``PK``) is no readable torch zip archive, or None when it is one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        return "the file is truncated or damaged (its zip archive has no end); re-export or re-download it"
    if not any(name.rpartition("/")[2] == "data.pkl" for name in names):
        return ("a zip archive, but not a PyTorch checkpoint (no data.pkl inside); pass the .pth / .ckpt "
                "file itself, not an archive holding it")
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def _kind(obj: Any) -> str:
    """Classify an unpickled file: sovits, gpt, or why it is neither."""
    if not isinstance(obj, dict):
        return "unknown"
    if "lora_rank" in obj:
        return "lora"
    weight = obj.get("weight")
    if isinstance(weight, dict) and weight:
        keys = [str(k) for k in weight]
        if any(k.startswith("cfm.") for k in keys):
            return "v3v4"
        if all(k.startswith(GPT_PREFIX) for k in keys):
            return "gpt"
        if any(k.startswith(("enc_p.", "dec.", "flow.")) for k in keys):
            return "sovits"
        if any(k.startswith("discriminators.") for k in keys):
            return "discriminator"
    if isinstance(obj.get("model"), dict) and "optimizer" in obj:
        return "resume"
    if "state_dict" in obj:
        return "lightning"
    return "unknown"


_KIND_PROBLEMS = {
    "lora": "this is a SoVITS v3/v4 LoRA file; LoRA files are not supported yet",
    "v3v4": "this is a SoVITS v3/v4 model (CFM decoder); v3/v4 are not supported yet",
    "discriminator": "this is a SoVITS discriminator (s2D*.pth), not a generator; pass the s2G / exported .pth",
    "lightning": "this is a Lightning training checkpoint without its config (hyper_parameters.config); "
    "pass the exported GPT_weights*/*.ckpt instead",
    "unknown": "not a GPT-SoVITS model file: expected a dict with 'weight' and 'config' entries",
}


def _as_export(path: Path, obj: Any) -> Any:
    """A GPT training checkpoint (Lightning's) in the exported layout; any other file as it is.

    Its ``state_dict`` holds the exported ``model.<key>`` tensors (fp32) and
    ``hyper_parameters.config`` the config; the info string is the one upstream's exporter
    gives the same epoch (Lightning counts epochs from 0). Without the config it stays as
    it is, and the caller names it.
    """
    kind = _kind(obj)
    if kind == "resume":
        return _resume_as_export(path, obj)
    if kind != "lightning":
        return obj
    hparams = obj.get("hyper_parameters")
    config = hparams.get("config") if isinstance(hparams, dict) else None
    state = obj.get("state_dict")
    if not isinstance(config, dict) or not isinstance(state, dict):
        return obj
    epoch = obj.get("epoch")
    info = f"GPT-e{epoch + 1}" if isinstance(epoch, int) else ""
    return {"weight": state, "config": config, "info": info}


def _resume_as_export(path: Path, obj: dict[str, Any]) -> dict[str, Any]:
    """A SoVITS resume checkpoint (``G_<step>.pth``) in the exported layout, with its experiment's config.

    The ``info`` is the one upstream's exporter gives the same state: the checkpoint's
    ``iteration`` (an epoch count) and the step in the file name.

    Raises:
        CheckpointError: it is the discriminator's (``D_*.pth``), or no ``config.json`` was found.
    """
    state = obj["model"]
    if any(str(k).startswith("discriminators.") for k in state):
        raise CheckpointError(
            f"{path}: this is a SoVITS discriminator resume checkpoint (D_*.pth); pass the generator "
            "(G_*.pth beside it) or the exported weights from SoVITS_weights*/"
        )
    places = [path.parent / RESUME_CONFIG, path.parent.parent / RESUME_CONFIG]
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        raise CheckpointError(
            f"{path}: this is a SoVITS training resume checkpoint (G_*.pth), which carries no config; "
            f"it is read from the experiment's {RESUME_CONFIG}, which is not at {places[0]} or {places[1]}; "
            "copy it there, or pass the exported weights from SoVITS_weights*/"
        )
    try:
        hps = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{found}: cannot read the experiment's config ({_first_line(e)})") from e
    if not isinstance(hps, dict) or not isinstance(hps.get("model"), dict):
        raise CheckpointError(f"{found}: not a SoVITS training config (no 'model' section)")
    epoch = obj.get("iteration")
    step = re.fullmatch(r"G_(\d+)\.pth", path.name)
    info = f"{epoch}epoch_{step.group(1)}iteration" if isinstance(epoch, int) and step else ""
    return {"weight": state, "config": hps, "info": info}


def _unknown_problem(obj: Any) -> str:
    """Why a file is no GPT-SoVITS model, as precisely as its keys tell."""
    weight = obj.get("weight") if isinstance(obj, dict) else None
    keys = [str(k) for k in weight] if isinstance(weight, dict) else []
    where = "its 'weight' entry"
    if not keys and isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        keys, where = [str(k) for k in obj], "it is a bare state dict (no 'weight' and 'config' entries); it"
    if keys:
        if all(k.startswith("module.") for k in keys):
            return (f"{where} has keys with a 'module.' prefix (a DataParallel wrapper's); pass the weights "
                    "GPT-SoVITS exports (SoVITS_weights*/, GPT_weights*/), whose keys have none")
        if any(k.startswith(("ar_text_embedding.", "ar_audio_embedding.", "h.layers.")) for k in keys):
            return (f"{where} holds GPT keys without upstream's '{GPT_PREFIX}' prefix; pass the .ckpt that "
                    "GPT-SoVITS exports to GPT_weights*/")
        if any(k.startswith(("enc_p.", "dec.", "flow.")) for k in keys):
            return f"{where} holds SoVITS keys; pass the .pth that GPT-SoVITS exports to SoVITS_weights*/"
    return _KIND_PROBLEMS["unknown"]


def _expect_kind(path: Path, obj: Any, wanted: str) -> None:
    kind = _kind(obj)
    if kind == wanted:
        return
    if kind == "gpt":
        raise CheckpointError(
            f"{path}: this is a GPT (text-to-semantic) checkpoint, not a SoVITS one; pass it as --gpt (load_gpt)"
        )
    if kind == "sovits":
        raise CheckpointError(f"{path}: this is a SoVITS checkpoint, not a GPT one; pass it as --sovits (load_sovits)")
    raise CheckpointError(f"{path}: {_unknown_problem(obj) if kind == 'unknown' else _KIND_PROBLEMS[kind]}")


def _tensor_dict(path: Path, weight: Any) -> dict[str, Tensor]:
    bad = next((k for k, v in weight.items() if not isinstance(v, Tensor)), None)
    if bad is not None:
        raise CheckpointError(f"{path}: weight entry {bad!r} is a {type(weight[bad]).__name__}, expected a tensor")
    return {str(k): v for k, v in weight.items()}


def _sovits_info(path: Path, obj: dict[str, Any], header: bytes, weights: dict[str, Tensor]) -> CheckpointInfo:
    hps = hparams_to_dict(obj.get("config"))
    hps = hps if isinstance(hps, dict) else {}
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    try:
        version = detect_sovits_version(shapes, header, hps)
        config = _pin_sovits_sizes(SoVITSConfig.from_upstream(hps, version), shapes)
    except (CheckpointError, ConfigError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{path}: the file's config is malformed ({_first_line(e)})") from e
    params = {k: v for k, v in weights.items() if not k.startswith(_BUFFER_PREFIXES)}
    return CheckpointInfo(
        path=str(path),
        kind="sovits",
        version=version,
        header=header,
        info=str(obj.get("info", "")),
        config=config,
        upstream_config=hps,
        has_enc_q=any(k.startswith(ENC_Q_PREFIX) for k in weights),
        param_counts=_count_by_top(params),
        buffer_count=sum(v.numel() for k, v in weights.items() if k not in params),
        n_entries=len(weights),
        dtypes=tuple(sorted({str(v.dtype).removeprefix("torch.") for v in weights.values()})),
    )


def _gpt_info(
    path: Path, obj: dict[str, Any], header: bytes, weights: dict[str, Tensor], check_shapes: bool = True
) -> CheckpointInfo:
    upstream = obj.get("config")
    if upstream is None:
        raise CheckpointError(
            f"{path}: this GPT file has no 'config' entry (the model's sizes); pass the .ckpt GPT-SoVITS "
            "exports to GPT_weights*/, or its training checkpoint from logs/<exp>/logs_s1*/ckpt/"
        )
    if not isinstance(upstream, dict):
        raise CheckpointError(f"{path}: the GPT file's 'config' is a {type(upstream).__name__}, expected a dict")
    stripped = _strip_gpt_prefix(weights)
    try:
        config = GPTConfig.from_upstream(upstream)
        if isinstance(upstream.get("autocompress"), dict):
            config = _gpt_widths_from_weights(config, stripped)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{path}: the file's config is malformed ({_first_line(e)})") from e
    if check_shapes:
        with torch.device("meta"):  # shapes only, no memory (slower to build than on the CPU, though)
            expected = _add_gpt_prefix(Text2SemanticGPT(config).state_dict())
        _check_names_and_shapes(path, expected, weights)
    return CheckpointInfo(
        path=str(path),
        kind="gpt",
        version=config.version,
        header=header,
        info=str(obj.get("info", "")),
        config=config,
        upstream_config=hparams_to_dict(upstream),
        has_enc_q=False,
        param_counts=_count_by_top(stripped),
        buffer_count=0,
        n_entries=len(weights),
        dtypes=tuple(sorted({str(v.dtype).removeprefix("torch.") for v in weights.values()})),
    )


def _count_by_top(weights: dict[str, Tensor]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key, value in weights.items():
        top = key.split(".", 1)[0]
        counts[top] = counts.get(top, 0) + value.numel()
    return counts


def _pin_sovits_sizes(config: SoVITSConfig, shapes: dict[str, tuple[int, ...]]) -> SoVITSConfig:
    """Take the sizes the weights fix (vocabulary, input widths, ...) from the weights.

    Upstream hard-codes these or infers them from the version; a file's tensors are the
    ground truth when the two disagree (reduced, converted or compressed models).
    """
    pins: dict[str, tuple[str, int]] = {
        "n_symbols": ("enc_p.text_embedding.weight", 0),
        "ref_bins": ("ref_enc.spectral.0.fc.weight", 1),
        "style_hidden": ("ref_enc.spectral.0.fc.weight", 0),
        "ssl_dim": ("ssl_proj.weight", 1),
        "codebook_size": ("quantizer.vq.layers.0._codebook.embed", 0),
        "mrte_hidden": ("enc_p.mrte.c_pre.weight", 0),
        "gin_channels": ("dec.cond.weight", 1),
        "sv_dim": ("sv_emb.weight", 1),
    }
    changes = {
        name: shapes[key][axis]
        for name, (key, axis) in pins.items()
        if key in shapes and len(shapes[key]) > axis and shapes[key][axis] != getattr(config, name)
    }
    if config.dec_channels is None and "dec.conv_pre.weight" in shapes:
        width = shapes["dec.conv_pre.weight"][0]
        if width != config.upsample_initial_channel:
            changes["upsample_initial_channel"] = width
    flows = {int(m.group(1)) for k in shapes if (m := re.match(r"flow\.flows\.(\d+)\.pre\.weight$", k))}
    if flows and len(flows) != config.n_flows:
        changes["n_flows"] = len(flows)
    wn = _count_indexed(shapes, r"flow\.flows\.0\.enc\.in_layers\.(\d+)\.")
    if wn and wn != config.flow_wn_layers:
        changes["flow_wn_layers"] = wn
    enc_q = _count_indexed(shapes, r"enc_q\.enc\.in_layers\.(\d+)\.")
    if enc_q and enc_q != config.enc_q_layers:
        changes["enc_q_layers"] = enc_q
    return config.replace(**changes) if changes else config


def _count_indexed(shapes: dict[str, tuple[int, ...]], pattern: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _gpt_widths_from_weights(config: GPTConfig, weights: dict[str, Tensor]) -> GPTConfig:
    """Per-layer head counts and FFN widths as the weights have them (pruned models)."""
    heads, ffn = [], []
    for i in range(config.n_layer):
        qkv = weights.get(f"h.layers.{i}.self_attn.in_proj_weight")
        lin = weights.get(f"h.layers.{i}.linear1.weight")
        if qkv is None or lin is None:
            return config  # the strict load reports the missing key
        heads.append(qkv.shape[0] // (3 * config.head_dim))
        ffn.append(lin.shape[0])
    uniform = set(heads) == {config.n_head} and set(ffn) == {config.ffn_dim}
    return config.replace(
        layer_heads=None if uniform else tuple(heads), layer_ffn=None if uniform else tuple(ffn)
    )


# --------------------------------------------------------------------------- loading


def _build(path: Path, cls: type, config: Any, **options: Any) -> Any:
    try:
        return cls(config, **options)
    except Exception as e:  # noqa: BLE001 - any failure here means the config is unusable
        raise CheckpointError(f"{path}: cannot build the model from its config: {_first_line(e)}") from e


def _add_gpt_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {GPT_PREFIX + k: v for k, v in state.items()}


def _strip_gpt_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k.removeprefix(GPT_PREFIX): v for k, v in state.items()}


def _check_names_and_shapes(
    path: Path, expected: dict[str, Tensor], weights: dict[str, Tensor], hint: str | None = None
) -> None:
    """Raise ``CheckpointError`` naming the first key missing, unexpected or of another shape."""
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    hint = hint or "the file and its config disagree, or it comes from another model"
    if missing:
        raise CheckpointError(
            f"{path}: weights do not match the config: key {missing[0]!r} is missing "
            f"({len(missing)} missing in all); {hint}"
        )
    if unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the config: unexpected key {unexpected[0]!r} "
            f"({len(unexpected)} unexpected in all); {hint}"
        )
    for key, value in weights.items():
        want = tuple(expected[key].shape)
        if tuple(value.shape) != want:
            raise CheckpointError(
                f"{path}: weights do not match the config: {key!r} has shape {list(value.shape)} in the file, "
                f"the config expects {list(want)}; {hint}"
            )


def _load_strictly(
    path: Path,
    model: torch.nn.Module,
    weights: dict[str, Tensor],
    to_file: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    from_file: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    hint: str | None = None,
) -> None:
    """Check names and shapes against the model (in the file's naming), then load strictly."""
    _check_names_and_shapes(path, to_file(model.state_dict()), weights, hint)
    bad = next((k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise CheckpointError(
            f"{path}: weight {bad!r} holds NaN or inf values; the model diverged in training, overflowed "
            "its fp16 export, or the file is damaged"
        )
    own = model.state_dict()
    state = {
        k: v.to(own[k].dtype) if v.is_floating_point() and own[k].is_floating_point() else v
        for k, v in from_file(weights).items()
    }
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # only reachable if the key mapping itself is wrong
        raise CheckpointError(f"{path}: loading failed after the key check: {_first_line(e)}") from e


def _finish(model: Any, map_location: str | torch.device | None) -> Any:
    model = model.float().eval()
    return model.to(map_location) if map_location is not None else model


# --------------------------------------------------------------------------- writing


def _write(path: str | Path, payload: Any, header: bytes) -> Path:
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer, pickle_module=_UPSTREAM_PICKLE)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data[2:])
    return path


__all__ = [
    "CheckpointInfo",
    "GPTCheckpoint",
    "HEADER_VERSIONS",
    "HParams",
    "SoVITSCheckpoint",
    "checkpoint_step",
    "detect_sovits_version",
    "hparams_to_dict",
    "inspect_checkpoint",
    "load_gpt",
    "load_sovits",
    "read_gpt",
    "read_sovits",
    "save_gpt",
    "save_sovits",
    "upstream_gpt_state_dict",
    "upstream_sovits_state_dict",
]
