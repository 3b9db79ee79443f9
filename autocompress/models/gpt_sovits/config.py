"""Hyperparameters of the GPT-SoVITS models, one frozen dataclass per model.

Every size the architecture uses is a field here, including the ones upstream hard-codes
(MRTE width, SSL feature dim, reference-encoder width, flow depth), so that reduced and
compressed configs can be expressed. Presets are plain functions: ``sovits_v2()``,
``gpt_v2()``, ``sovits_tiny()``...

Conversion to and from the upstream config layouts (the ``HParams`` tree of a SoVITS
``.pth`` and the dict of a GPT ``.ckpt``) lives here too, so the checkpoint code only
moves bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from autocompress.exceptions import ConfigError

SOVITS_VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")
# The transformer encoders inside enc_p, in the order per-layer config tuples list them.
ENC_P_ENCODERS = ("encoder_ssl", "encoder_text", "encoder2")

# Upstream s2.json ``train`` / ``data`` sections, used when we write a file from scratch.
UPSTREAM_S2_TRAIN: dict[str, Any] = {
    "log_interval": 100,
    "eval_interval": 500,
    "seed": 1234,
    "epochs": 100,
    "learning_rate": 0.0001,
    "betas": [0.8, 0.99],
    "eps": 1e-09,
    "batch_size": 32,
    "fp16_run": True,
    "lr_decay": 0.999875,
    "segment_size": 20480,
    "init_lr_ratio": 1,
    "warmup_epochs": 0,
    "c_mel": 45,
    "c_kl": 1.0,
    "text_low_lr_rate": 0.4,
    "grad_ckpt": False,
}
UPSTREAM_S2_DATA: dict[str, Any] = {
    "max_wav_value": 32768.0,
    "sampling_rate": 32000,
    "filter_length": 2048,
    "hop_length": 640,
    "win_length": 2048,
    "n_mel_channels": 128,
    "mel_fmin": 0.0,
    "mel_fmax": None,
    "add_blank": True,
    "n_speakers": 300,
    "cleaned_text": True,
}


@dataclass(frozen=True)
class SoVITSConfig:
    """Sizes of a SoVITS ``SynthesizerTrn`` (v1, v2, v2Pro, v2ProPlus).

    Field names follow upstream's ``hps.model`` where upstream has one; the rest are
    sizes upstream hard-codes, named here so that small and compressed models exist.
    """

    version: str = "v2"  # v1 | v2 | v2Pro | v2ProPlus
    # --- audio front end (hps.data) ---
    sampling_rate: int = 32000
    filter_length: int = 2048  # n_fft; spec_channels = filter_length // 2 + 1 = 1025
    hop_length: int = 640
    win_length: int = 2048
    n_mel_channels: int = 128
    segment_size: int = 20480  # training slice in samples (32 frames of 640)
    # --- shared widths (hps.model) ---
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6  # encoder_text depth; encoder_ssl and encoder2 use n_layers // 2
    kernel_size: int = 3
    p_dropout: float = 0.1
    gin_channels: int = 512  # style vector width (1024 for Pro/ProPlus)
    # --- HiFi-GAN decoder ---
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (10, 8, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 2, 2)
    # Optional per-stage decoder widths (len(upsample_rates) + 1 entries: conv_pre output,
    # then each ups output). None means upstream's halving U, U/2, U/4, ... Set by pruning.
    dec_channels: tuple[int, ...] | None = None
    # --- sizes upstream hard-codes ---
    n_symbols: int = 732  # text_embedding rows: 322 for v1, 732 for v2+
    ssl_dim: int = 768  # HuBERT feature width
    semantic_frame_rate: str = "25hz"
    codebook_size: int = 1024
    mrte_hidden: int = 512
    mrte_heads: int = 4
    window_size: int = 4  # relative attention window of the VITS encoders
    style_hidden: int = 128  # MelStyleEncoder width
    style_heads: int = 2
    style_kernel_size: int = 5
    ref_enc_dropout: float = 0.1
    ref_bins: int = 704  # reference-encoder input bins: 1025 for v1, 704 for v2+
    n_flows: int = 4  # coupling layers in the flow (each followed by a Flip)
    flow_wn_layers: int = 4
    flow_kernel_size: int = 5
    # Optional per-coupling WN hidden widths (len n_flows). None means hidden_channels.
    flow_hidden: tuple[int, ...] | None = None
    # Optional per-layer head counts / FFN widths of the enc_p transformer layers after
    # structured pruning, in the order of ENC_P_ENCODERS (encoder_ssl: n_layers // 2,
    # encoder_text: n_layers, encoder2: n_layers // 2 entries). The head width stays
    # hidden_channels // n_heads, so a layer's q/k/v width is heads * head width and the
    # shared emb_rel tables keep their shape. None means n_heads / filter_channels.
    enc_layer_heads: tuple[int, ...] | None = None
    enc_layer_filter: tuple[int, ...] | None = None
    enc_q_layers: int = 16  # posterior encoder WN depth (training only)
    enc_q_kernel_size: int = 5
    sv_dim: int = 20480  # speaker-verification embedding width (Pro/ProPlus only)
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)

    def __post_init__(self) -> None:
        problems = []
        if self.version not in SOVITS_VERSIONS:
            problems.append(f"version must be one of {SOVITS_VERSIONS}, got {self.version!r}")
        if self.hidden_channels % self.n_heads:
            problems.append("hidden_channels must be divisible by n_heads")
        if self.mrte_hidden % self.mrte_heads:
            problems.append("mrte_hidden must be divisible by mrte_heads")
        if self.style_hidden % self.style_heads:
            problems.append("style_hidden must be divisible by style_heads")
        if self.inter_channels % 2:
            problems.append("inter_channels must be even (the flow splits it in halves)")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            problems.append("upsample_rates and upsample_kernel_sizes differ in length")
        if self.dec_channels is not None and len(self.dec_channels) != len(self.upsample_rates) + 1:
            problems.append("dec_channels needs len(upsample_rates) + 1 entries")
        if self.flow_hidden is not None and len(self.flow_hidden) != self.n_flows:
            problems.append("flow_hidden needs n_flows entries")
        for name in ("enc_layer_heads", "enc_layer_filter"):
            value = getattr(self, name)
            if value is not None and len(value) != self.enc_p_layer_count:
                problems.append(f"{name} needs {self.enc_p_layer_count} entries (n_layers // 2 + n_layers + n_layers // 2)")
        if self.resblock != "1":
            problems.append("only resblock '1' is supported (every upstream config uses it)")
        if problems:
            raise ConfigError("invalid SoVITSConfig: " + "; ".join(problems))

    # --- derived sizes ---
    @property
    def spec_channels(self) -> int:
        return self.filter_length // 2 + 1

    @property
    def is_pro(self) -> bool:
        return self.version in ("v2Pro", "v2ProPlus")

    @property
    def samples_per_frame(self) -> int:
        """Waveform samples per spectrogram frame: the product of the upsample rates."""
        n = 1
        for r in self.upsample_rates:
            n *= r
        return n

    @property
    def decoder_channels(self) -> tuple[int, ...]:
        """Channel width at conv_pre's output and after every upsample stage."""
        if self.dec_channels is not None:
            return tuple(self.dec_channels)
        u = self.upsample_initial_channel
        return tuple(u // (2**i) for i in range(len(self.upsample_rates) + 1))

    @property
    def flow_hidden_channels(self) -> tuple[int, ...]:
        if self.flow_hidden is not None:
            return tuple(self.flow_hidden)
        return (self.hidden_channels,) * self.n_flows

    @property
    def enc_p_layer_count(self) -> int:
        """Transformer layers in enc_p: encoder_ssl + encoder_text + encoder2."""
        return self.n_layers // 2 + self.n_layers + self.n_layers // 2

    def enc_p_layer_index(self, encoder: str, layer: int) -> int:
        """Position of ``encoder``'s layer ``layer`` in ``enc_layer_heads`` / ``enc_layer_filter``."""
        sizes = dict(zip(ENC_P_ENCODERS, (self.n_layers // 2, self.n_layers, self.n_layers // 2)))
        if encoder not in sizes or not 0 <= layer < sizes[encoder]:
            raise ConfigError(f"no enc_p layer {encoder}.{layer}; encoders {sizes}")
        start = sum(sizes[e] for e in ENC_P_ENCODERS[: ENC_P_ENCODERS.index(encoder)])
        return start + layer

    def enc_heads_of(self, encoder: str, layer: int) -> int:
        """Attention heads of one enc_p transformer layer (encoder in ENC_P_ENCODERS)."""
        if self.enc_layer_heads is None:
            return self.n_heads
        return self.enc_layer_heads[self.enc_p_layer_index(encoder, layer)]

    def enc_filter_of(self, encoder: str, layer: int) -> int:
        """FFN width of one enc_p transformer layer (encoder in ENC_P_ENCODERS)."""
        if self.enc_layer_filter is None:
            return self.filter_channels
        return self.enc_layer_filter[self.enc_p_layer_index(encoder, layer)]

    @property
    def is_upstream_expressible(self) -> bool:
        """True when upstream's constructor can build exactly this shape."""
        base = sovits_preset(self.version)
        hard_coded = (
            "ssl_dim", "codebook_size", "mrte_hidden", "mrte_heads", "window_size",
            "style_hidden", "style_heads", "style_kernel_size", "ref_bins", "n_flows",
            "flow_wn_layers", "flow_kernel_size", "enc_q_layers", "enc_q_kernel_size",
            "sv_dim", "n_symbols", "filter_length", "hop_length", "win_length",
        )
        same = all(getattr(self, k) == getattr(base, k) for k in hard_coded)
        uniform_dec = self.dec_channels is None or self.dec_channels == tuple(
            self.upsample_initial_channel // (2**i) for i in range(len(self.upsample_rates) + 1)
        )
        uniform_flow = self.flow_hidden is None or all(
            h == self.hidden_channels for h in self.flow_hidden
        )
        uniform_enc = (self.enc_layer_heads is None or set(self.enc_layer_heads) == {self.n_heads}) and (
            self.enc_layer_filter is None or set(self.enc_layer_filter) == {self.filter_channels}
        )
        # Upstream builds MRTE with its defaults (192-wide content convs), so hidden_channels is
        # pinned to 192; inter_channels is a free constructor argument.
        return same and uniform_dec and uniform_flow and uniform_enc and self.hidden_channels == 192

    def replace(self, **changes: Any) -> SoVITSConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoVITSConfig:
        return cls(**_tupled(cls, data))

    # --- upstream hps <-> config ---
    @classmethod
    def from_upstream(cls, hps: dict[str, Any], version: str) -> SoVITSConfig:
        """Build from an upstream ``hps`` tree (plain nested dicts) and a detected version.

        Sizes upstream hard-codes are taken from the version's preset; an ``autocompress``
        section written by :meth:`to_upstream` overrides them (reduced/compressed models).
        """
        base = sovits_preset(version)
        model = dict(hps.get("model", {}))
        data = dict(hps.get("data", {}))
        train = dict(hps.get("train", {}))
        changes: dict[str, Any] = {}
        for name in (
            "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers",
            "kernel_size", "p_dropout", "gin_channels", "resblock", "resblock_kernel_sizes",
            "resblock_dilation_sizes", "upsample_rates", "upsample_initial_channel",
            "upsample_kernel_sizes", "semantic_frame_rate",
        ):
            if name in model and model[name] is not None:
                changes[name] = model[name]
        for name in ("sampling_rate", "filter_length", "hop_length", "win_length", "n_mel_channels"):
            if name in data and data[name] is not None:
                changes[name] = data[name]
        if "segment_size" in train:
            changes["segment_size"] = train["segment_size"]
        changes["semantic_frame_rate"] = "25hz"  # upstream forces this at load time
        extra = hps.get("autocompress")
        if isinstance(extra, dict):
            changes.update(extra)
        changes["version"] = version
        return cls.from_dict({**base.to_dict(), **_jsonable(changes)})

    def to_upstream(self) -> dict[str, Any]:
        """The ``hps`` tree (plain dicts) upstream would have written for this model."""
        model = {
            "inter_channels": self.inter_channels,
            "hidden_channels": self.hidden_channels,
            "filter_channels": self.filter_channels,
            "n_heads": self.n_heads,
            "n_layers": self.n_layers,
            "kernel_size": self.kernel_size,
            "p_dropout": self.p_dropout,
            "resblock": self.resblock,
            "resblock_kernel_sizes": list(self.resblock_kernel_sizes),
            "resblock_dilation_sizes": [list(d) for d in self.resblock_dilation_sizes],
            "upsample_rates": list(self.upsample_rates),
            "upsample_initial_channel": self.upsample_initial_channel,
            "upsample_kernel_sizes": list(self.upsample_kernel_sizes),
            "n_layers_q": 3,
            "use_spectral_norm": False,
            "gin_channels": self.gin_channels,
            "semantic_frame_rate": self.semantic_frame_rate,
            "freeze_quantizer": True,
            "version": self.version,
        }
        data = dict(UPSTREAM_S2_DATA)
        data.update(
            sampling_rate=self.sampling_rate,
            filter_length=self.filter_length,
            hop_length=self.hop_length,
            win_length=self.win_length,
            n_mel_channels=self.n_mel_channels,
        )
        train = dict(UPSTREAM_S2_TRAIN, segment_size=self.segment_size)
        hps: dict[str, Any] = {
            "train": train,
            "data": data,
            "model": model,
            "s2_ckpt_dir": "logs/autocompress",
            "content_module": "cnhubert",
            "save_weight_dir": "SoVITS_weights" + ("" if self.version == "v1" else "_" + self.version),  # upstream's folders
            "name": "autocompress",
            "version": self.version,
            "pretrain": None,
            "resume_step": None,
        }
        base = sovits_preset(self.version)
        extra = {
            k: v
            for k, v in self.to_dict().items()
            if k not in model and k not in data and k != "segment_size" and v != base.to_dict()[k]
        }
        if extra:
            # Upstream ignores unknown top-level keys; our loader reads them back.
            hps["autocompress"] = extra
        return hps


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of the Text2Semantic GPT (``Text2SemanticDecoder``)."""

    vocab_size: int = 1025  # semantic codes 0..1023 plus EOS
    phoneme_vocab_size: int = 732  # 512 for v1 (only 322 rows ever used)
    hidden_dim: int = 512  # == embedding_dim
    n_head: int = 16
    n_layer: int = 24
    ffn_dim: int = 2048  # upstream hard-wires 4 * hidden_dim and ignores linear_units
    bert_dim: int = 1024
    eos: int = 1024
    dropout: float = 0.0  # TokenEmbedding dropout (config "dropout")
    layer_dropout: float = 0.1  # hard-coded in upstream's transformer layers and positions
    max_sec: int = 54
    # Optional per-layer head counts / FFN widths after structured pruning; None = uniform.
    layer_heads: tuple[int, ...] | None = None
    layer_ffn: tuple[int, ...] | None = None
    version: str = "v2"

    def __post_init__(self) -> None:
        problems = []
        if self.hidden_dim % self.n_head:
            problems.append("hidden_dim must be divisible by n_head")
        if self.layer_heads is not None and len(self.layer_heads) != self.n_layer:
            problems.append("layer_heads needs n_layer entries")
        if self.layer_ffn is not None and len(self.layer_ffn) != self.n_layer:
            problems.append("layer_ffn needs n_layer entries")
        if self.eos != self.vocab_size - 1:
            problems.append("eos must be the last vocabulary id")
        if problems:
            raise ConfigError("invalid GPTConfig: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.n_head

    def heads_of(self, layer: int) -> int:
        return self.layer_heads[layer] if self.layer_heads is not None else self.n_head

    def ffn_of(self, layer: int) -> int:
        return self.layer_ffn[layer] if self.layer_ffn is not None else self.ffn_dim

    @property
    def is_upstream_expressible(self) -> bool:
        uniform_heads = self.layer_heads is None or all(h == self.n_head for h in self.layer_heads)
        uniform_ffn = self.layer_ffn is None or all(f == self.ffn_dim for f in self.layer_ffn)
        return uniform_heads and uniform_ffn and self.ffn_dim == 4 * self.hidden_dim and self.bert_dim == 1024

    def replace(self, **changes: Any) -> GPTConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        return cls(**_tupled(cls, data))

    @classmethod
    def from_upstream(cls, config: dict[str, Any]) -> GPTConfig:
        """Build from the ``config`` dict of an upstream s1 ``.ckpt``."""
        model = config.get("model", {})
        try:
            hidden = int(model["hidden_dim"])
            changes: dict[str, Any] = dict(
                vocab_size=int(model.get("vocab_size", 1025)),
                phoneme_vocab_size=int(model["phoneme_vocab_size"]),
                hidden_dim=hidden,
                n_head=int(model["head"]),
                n_layer=int(model["n_layer"]),
                ffn_dim=4 * hidden,
                eos=int(model.get("EOS", 1024)),
                dropout=float(model.get("dropout", 0.0)),
                max_sec=int(config.get("data", {}).get("max_sec", 54)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"GPT config is missing or has a bad model field: {e}") from e
        if int(model.get("embedding_dim", hidden)) != hidden:
            raise ConfigError("GPT config: embedding_dim must equal hidden_dim")
        extra = config.get("autocompress")
        if isinstance(extra, dict):
            changes.update(extra)
        changes["version"] = "v1" if changes["phoneme_vocab_size"] == 512 else "v2"
        return cls.from_dict({**GPTConfig().to_dict(), **_jsonable(changes)})

    def to_upstream(self) -> dict[str, Any]:
        """The s1 ``config`` dict upstream would have written for this model."""
        config: dict[str, Any] = {
            "train": {
                "seed": 1234,
                "epochs": 20,
                "batch_size": 8,
                "save_every_n_epoch": 1,
                "precision": "16-mixed",
                "gradient_clip": 1.0,
            },
            "optimizer": {
                "lr": 0.01,
                "lr_init": 1e-05,
                "lr_end": 0.0001,
                "warmup_steps": 2000,
                "decay_steps": 40000,
            },
            "data": {"max_eval_sample": 8, "max_sec": self.max_sec, "num_workers": 4, "pad_val": 1024},
            "model": {
                "vocab_size": self.vocab_size,
                "phoneme_vocab_size": self.phoneme_vocab_size,
                "embedding_dim": self.hidden_dim,
                "hidden_dim": self.hidden_dim,
                "head": self.n_head,
                "linear_units": self.ffn_dim,
                "n_layer": self.n_layer,
                "dropout": self.dropout,
                "EOS": self.eos,
                "random_bert": 0,
            },
            "inference": {"top_k": 15},
        }
        if not self.is_upstream_expressible:
            config["autocompress"] = {
                k: v for k, v in self.to_dict().items() if k in ("ffn_dim", "layer_heads", "layer_ffn", "bert_dim")
            }
        return config


# --------------------------------------------------------------------------- presets


def sovits_v1() -> SoVITSConfig:
    return SoVITSConfig(version="v1", n_symbols=322, ref_bins=1025)


def sovits_v2() -> SoVITSConfig:
    return SoVITSConfig(version="v2")


def sovits_v2pro() -> SoVITSConfig:
    return SoVITSConfig(
        version="v2Pro", gin_channels=1024, p_dropout=0.0, mpd_periods=(2, 3, 5, 7, 11, 17, 23)
    )


def sovits_v2proplus() -> SoVITSConfig:
    return SoVITSConfig(
        version="v2ProPlus",
        gin_channels=1024,
        p_dropout=0.0,
        upsample_initial_channel=768,
        upsample_kernel_sizes=(20, 16, 8, 2, 2),
        mpd_periods=(2, 3, 5, 7, 11, 17, 23),
    )


def sovits_preset(version: str) -> SoVITSConfig:
    presets = {"v1": sovits_v1, "v2": sovits_v2, "v2Pro": sovits_v2pro, "v2ProPlus": sovits_v2proplus}
    if version not in presets:
        raise ConfigError(f"unknown SoVITS version {version!r}; expected one of {sorted(presets)}")
    return presets[version]()


def sovits_tiny() -> SoVITSConfig:
    """A v2 SoVITS of a few MB: for tests and the demo voice.

    Keeps every upstream-fixed size that a user file pins (ssl 768, ref bins 704, 1025
    spectrogram bins, 732 symbols, 1024 codes) and shrinks the free widths.
    """
    return SoVITSConfig(
        version="v2",
        inter_channels=96,
        hidden_channels=96,
        filter_channels=256,
        n_heads=2,
        n_layers=2,
        gin_channels=128,
        upsample_initial_channel=128,
        mrte_hidden=128,
        mrte_heads=4,
        style_hidden=64,
        flow_wn_layers=2,
        enc_q_layers=4,
        resblock_kernel_sizes=(3, 7),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
        p_dropout=0.0,
    )


def gpt_v1() -> GPTConfig:
    return GPTConfig(phoneme_vocab_size=512, version="v1")


def gpt_v2() -> GPTConfig:
    return GPTConfig()


def gpt_tiny() -> GPTConfig:
    """A GPT of about 2 MB: for tests and the demo voice."""
    return GPTConfig(hidden_dim=128, n_head=4, n_layer=3, ffn_dim=512)


# --------------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _tupled(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Turn JSON lists back into the tuples the frozen dataclass uses; reject unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown fields {unknown}")

    def tup(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(tup(x) for x in v)
        return v

    return {k: tup(v) for k, v in data.items()}


__all__ = [
    "ENC_P_ENCODERS",
    "GPTConfig",
    "SOVITS_VERSIONS",
    "SoVITSConfig",
    "gpt_tiny",
    "gpt_v1",
    "gpt_v2",
    "sovits_preset",
    "sovits_tiny",
    "sovits_v1",
    "sovits_v2",
    "sovits_v2pro",
    "sovits_v2proplus",
]
