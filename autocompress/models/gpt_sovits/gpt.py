"""Text2Semantic GPT of GPT-SoVITS: phones + BERT features -> 25 Hz semantic codes.

A prefix language model: the text (phone embeddings plus projected BERT features, each
with a scaled sine position) is attended bidirectionally, the semantic codes causally,
by a post-norm transformer. Spec: shared/docs/gpt_sovits_architecture.md §5.

Parameter names are upstream's ``Text2SemanticDecoder`` names without the ``model.``
prefix, so upstream state dicts load by stripping it. Attention is written out here (no
``nn.MultiheadAttention``) so every layer may have its own head count and FFN width, which
structured pruning produces (``GPTConfig.heads_of`` / ``ffn_of``).

Read top to bottom: embeddings, attention, block, the model, then sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autocompress.exceptions import ConfigError, DataError
from autocompress.models.gpt_sovits.config import GPTConfig

PE_ROWS = 4000  # upstream precomputes the sine table for 4000 positions, grown on demand
EOS_BAN_STEPS = 11  # upstream's naive decoder removes the EOS column for steps idx < 11
UPSTREAM_MAX_STEPS = 1500  # upstream's decode loop runs at most 1500 steps
LAYER_NORM_EPS = 1e-5


# --------------------------------------------------------------------------- embeddings


def sine_table(n_positions: int, dim: int) -> Tensor:
    """Return the fp32 sine/cosine position table ``[n_positions, dim]`` upstream uses.

    Row p holds sin(p * w_i) in even columns and cos(p * w_i) in odd columns, with
    w_i = exp(-2i * ln(10000) / dim). Computed in float32 torch ops, as upstream does:
    a float64 or numpy table differs in the last bits.
    """
    table = torch.zeros(n_positions, dim, dtype=torch.float32)
    position = torch.arange(0, n_positions, dtype=torch.float32).unsqueeze(1)  # [P, 1]
    div_term = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim)
    )  # [dim/2]
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table


class TokenEmbedding(nn.Module):
    """Token ids -> vectors (upstream key ``word_embeddings``), with optional dropout."""

    def __init__(self, n_tokens: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(n_tokens, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor) -> Tensor:  # [B, T] -> [B, T, D]
        return self.dropout(self.word_embeddings(ids))


class SinePositionalEmbedding(nn.Module):
    """Add ``alpha * PE[offset : offset + T]`` to a sequence (learned scalar alpha)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))
        self.dropout = nn.Dropout(dropout)
        # Not part of the state dict (upstream keeps it as a plain attribute).
        self.register_buffer("pe", sine_table(PE_ROWS, dim), persistent=False)

    def table(self, n_positions: int) -> Tensor:
        """The sine table with at least ``n_positions`` rows, in the activation dtype."""
        if n_positions > self.pe.shape[0]:
            self.pe = sine_table(n_positions, self.dim).to(self.pe.device)
        return self.pe

    def forward(self, x: Tensor) -> Tensor:  # [B, T, D], positions 0..T-1
        pe = self.table(x.shape[1])[: x.shape[1]].to(x.dtype)  # [T, D]
        return self.dropout(x + self.alpha * pe)

    def at(self, x: Tensor, position: int | Tensor) -> Tensor:
        """Add the position term for one step: x ``[B, 1, D]`` sits at ``position``."""
        if isinstance(position, int):
            pe = self.table(position + 1)[position]
        else:
            pe = self.pe.index_select(0, position.reshape(1)).squeeze(0)
        return self.dropout(x + self.alpha * pe.to(x.dtype))


# --------------------------------------------------------------------------- KV cache


@dataclass
class KVCache:
    """Preallocated keys and values of every layer, written in place while decoding.

    ``k[i]`` and ``v[i]`` are ``[B, max_len, heads_of(i) * head_dim]`` (projected, before the
    head split). Rows ``0 .. length-1`` are filled; ``text_len`` is the number of text
    positions at the start, so a cache row ``pos >= text_len`` holds audio position
    ``pos - text_len``. ``key_ok`` ``[B, max_len]`` (batches of left-padded texts only) is
    False on padding rows, which no position may attend to.
    """

    k: list[Tensor]
    v: list[Tensor]
    text_len: int
    length: int
    key_ok: Tensor | None = None

    @property
    def max_len(self) -> int:
        return self.k[0].shape[1]


# --------------------------------------------------------------------------- attention


class SelfAttention(nn.Module):
    """Multi-head self-attention with PyTorch MHA's packed parameter layout.

    ``in_proj_weight`` stacks the q, k and v projections as row blocks of
    ``n_heads * head_dim`` rows each; heads are contiguous ``head_dim`` slices.
    """

    def __init__(self, dim: int, n_heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.inner = n_heads * head_dim
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * self.inner, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * self.inner))
        self.out_proj = nn.Linear(self.inner, dim)
        self.in_proj_input = nn.Identity()  # a no-op: where compression rounds the packed projection's input
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v ``[B, T, inner]`` each."""
        qkv = F.linear(self.in_proj_input(x), self.in_proj_weight, self.in_proj_bias)  # [B, T, 3 * inner]
        return qkv.split(self.inner, dim=-1)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None) -> Tensor:
        """Attention of q ``[B, Tq, inner]`` over k, v ``[B, Tk, inner]``; ``allowed`` True = may attend."""
        b, tq, _ = q.shape
        tk = k.shape[1]
        q = q.view(b, tq, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, Tq, hd]
        k = k.view(b, tk, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, Tk, hd]
        v = v.view(b, tk, self.n_heads, self.head_dim).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)  # [B, H, Tq, hd]
        o = o.transpose(1, 2).reshape(b, tq, self.inner)
        return self.out_proj(o)

    def forward(self, x: Tensor, allowed: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Full self-attention over x ``[B, T, D]``; returns (output, k, v) for caching."""
        q, k, v = self.project(x)
        return self.attend(q, k, v, allowed), k, v


class Block(nn.Module):
    """Post-norm transformer layer: x = LN1(x + attn(x)); x = LN2(x + FFN(x))."""

    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        d, p = config.hidden_dim, config.layer_dropout
        self.self_attn = SelfAttention(d, config.heads_of(layer), config.head_dim, p)
        self.linear1 = nn.Linear(d, config.ffn_of(layer))
        self.linear2 = nn.Linear(config.ffn_of(layer), d)
        self.norm1 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(p)  # inside the FFN
        self.dropout1 = nn.Dropout(p)  # after attention
        self.dropout2 = nn.Dropout(p)  # after the FFN

    def _rest(self, x: Tensor, a: Tensor) -> Tensor:
        x = self.norm1(x + self.dropout1(a))
        f = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout2(f))

    def forward(self, x: Tensor, allowed: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """x ``[B, T, D]`` -> (x, k, v); k, v ``[B, T, inner]`` for the cache."""
        a, k, v = self.self_attn(x, allowed)
        return self._rest(x, a), k, v

    def step(
        self, x: Tensor, k_cache: Tensor, v_cache: Tensor, pos: int | Tensor, key_ok: Tensor | None = None
    ) -> Tensor:
        """One new position x ``[B, 1, D]`` written at cache row ``pos``; attends rows 0..pos.

        ``key_ok`` ``[B, max_len]`` additionally blocks padding rows (batched inference).
        """
        q, k, v = self.self_attn.project(x)
        if isinstance(pos, int):
            k_cache[:, pos : pos + 1] = k
            v_cache[:, pos : pos + 1] = v
            keys, values = k_cache[:, : pos + 1], v_cache[:, : pos + 1]
            allowed = None if key_ok is None else key_ok[:, None, None, : pos + 1]  # [B, 1, 1, pos + 1]
        else:  # tensor position (graph export): static shapes, unfilled rows masked out
            index = pos.reshape(1)
            k_cache.index_copy_(1, index, k)
            v_cache.index_copy_(1, index, v)
            rows = torch.arange(k_cache.shape[1], device=x.device)
            keys, values, allowed = k_cache, v_cache, (rows <= pos).view(1, 1, 1, -1)
            if key_ok is not None:
                allowed = allowed & key_ok[:, None, None, :]
        return self._rest(x, self.self_attn.attend(q, keys, values, allowed))


class Transformer(nn.Module):
    """The layer stack (upstream key prefix ``h.layers``); no final norm."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layer))


# --------------------------------------------------------------------------- masks


def prefix_lm_allowed(text_len: int, total_len: int, device: torch.device | None = None) -> Tensor:
    """Boolean ``[S, S]``, True where row i may attend column j (§5.4).

    Text rows see all text; audio rows see all text and the audio up to themselves.
    """
    i = torch.arange(total_len, device=device).unsqueeze(1)  # [S, 1]
    j = torch.arange(total_len, device=device).unsqueeze(0)  # [1, S]
    blocked = ((i < text_len) & (j >= text_len)) | ((i >= text_len) & (j > i))
    return ~blocked


def padding_mask(lengths: Tensor, max_len: int, left: bool = False) -> Tensor:
    """Boolean ``[B, max_len]``, True on padding (right padding, or left with ``left=True``)."""
    t = torch.arange(max_len, device=lengths.device).unsqueeze(0)  # [1, T]
    lengths = lengths.unsqueeze(1)
    return t < (max_len - lengths) if left else t >= lengths


# --------------------------------------------------------------------------- the model


@dataclass
class GenerationResult:
    """Everything one ``generate_detailed`` call saw, for parity checks.

    Attributes:
        tokens: generated codes only ``[1, n]`` (no prompt, EOS removed).
        y: upstream's returned sequence: prompt + generated ``[1, P + n]``.
        idx: upstream's returned step index (0 when reference-free, as upstream).
        samples: the token sampled at every step, including a final EOS ``[1, steps]``.
        logits_raw: output-layer logits of every step ``[steps, vocab]``.
        logits_decision: logits after the in-place repetition penalty, as seen by top-k and
            the argmax-EOS test ``[steps, vocab]``; NaN in the EOS column where it was banned.
        stop_reason: "eos", "max_new_tokens".
    """

    tokens: Tensor
    y: Tensor
    idx: int
    samples: Tensor
    logits_raw: Tensor
    logits_decision: Tensor
    stop_reason: str


@dataclass
class BatchGenerationResult:
    """Per-item results of ``generate_batch``.

    Attributes:
        tokens: generated codes per item ``[n_i]`` (no prompt, EOS removed).
        y: upstream's stored sequence per item: prompt + generated with the last entry
            dropped (upstream stores ``y[i, :-1]`` on EOS and on the length cap alike).
        idx: the step at which each item stopped.
    """

    tokens: list[Tensor]
    y: list[Tensor]
    idx: list[int]


class Text2SemanticGPT(nn.Module):
    """The T2S GPT: phones [+ prompt codes] -> logits over the next semantic code."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.bert_proj = nn.Linear(config.bert_dim, d)
        self.ar_text_embedding = TokenEmbedding(config.phoneme_vocab_size, d, config.dropout)
        self.ar_text_position = SinePositionalEmbedding(d, config.layer_dropout)
        self.ar_audio_embedding = TokenEmbedding(config.vocab_size, d, config.dropout)
        self.ar_audio_position = SinePositionalEmbedding(d, config.layer_dropout)
        self.h = Transformer(config)
        self.ar_predict_layer = nn.Linear(d, config.vocab_size, bias=False)

    # ----- embeddings

    def embed_text(self, phones: Tensor, bert: Tensor) -> Tensor:
        """phones ``[B, N]``, bert ``[B, 1024, N]`` -> ``[B, N, D]`` with positions 0..N-1."""
        x = self.ar_text_embedding(phones)
        x = x + self.bert_proj(bert.transpose(1, 2).to(x.dtype))
        return self.ar_text_position(x)

    def embed_audio(self, codes: Tensor) -> Tensor:
        """codes ``[B, T]`` -> ``[B, T, D]`` with positions 0..T-1."""
        return self.ar_audio_position(self.ar_audio_embedding(codes))

    # ----- training

    def forward_train(
        self,
        phones: Tensor,
        phones_len: Tensor,
        bert: Tensor,
        codes: Tensor,
        codes_len: Tensor,
        upstream_pad_quirk: bool = False,
        history: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Teacher-forced logits and their targets for a right-padded batch (§5.5).

        Args:
            phones: ``[B, Tx]`` phone ids, right-padded with 0.
            phones_len: ``[B]`` real phone counts.
            bert: ``[B, 1024, Tx]`` BERT features, right-padded with 0.
            codes: ``[B, Ty]`` semantic codes, right-padded (any value; replaced by EOS).
            codes_len: ``[B]`` real code counts.
            upstream_pad_quirk: reproduce upstream exactly: it masks the *first*
                ``Tx - len`` text positions although the batch is right-padded, so short
                items lose real phones and attend to padding. The default (False) instead
                moves each item's text to the right end of the text block (left padding,
                positions still counted from the item's first phone) and masks the padding,
                so every item is computed as it would be alone and the last text slot, which
                predicts the first code, is always a real phone.
            history: ``[B, Ty]`` codes fed as the history of each position instead of ``codes``
                (the targets stay ``codes``): training on partly wrong histories, as the
                model meets them when it runs on its own guesses. Default: ``codes``.

        Returns:
            (logits ``[B, Ty + 1, vocab]``, targets ``[B, Ty + 1]``): codes then EOS at the
            end and on every padded position, as upstream trains (sum-CE over all of them).
        """
        b, tx = phones.shape
        ty = codes.shape[1]
        eos = self.config.eos
        x = self.embed_text(phones, bert)  # [B, Tx, D]
        x_pad = padding_mask(phones_len, tx, left=True)  # [B, Tx], True = padding
        if not upstream_pad_quirk:
            shift = (tx - phones_len).tolist()
            x = torch.stack([torch.roll(x[i], shifts=int(shift[i]), dims=0) for i in range(b)])
            x = x.masked_fill(x_pad.unsqueeze(-1), 0.0)
        y_pad = padding_mask(codes_len, ty)  # [B, Ty]
        y_full = F.pad(codes.masked_fill(y_pad, 0), (0, 1), value=0)  # [B, Ty + 1]
        y_full = y_full + eos * F.pad(y_pad.long(), (0, 1), value=1)
        y_in, targets = y_full[:, :-1], y_full
        if history is not None:
            if history.shape != codes.shape:
                raise DataError(f"history {list(history.shape)} must have the codes' shape {list(codes.shape)}")
            y_in = history.masked_fill(y_pad, 0) + eos * y_pad.long()
        xy = torch.cat([x, self.embed_audio(y_in)], dim=1)  # [B, S, D]
        s = tx + ty
        key_ok = ~torch.cat([x_pad, y_pad], dim=1)  # [B, S]
        allowed = prefix_lm_allowed(tx, s, xy.device).unsqueeze(0) & key_ok.unsqueeze(1)  # [B, S, S]
        allowed = allowed.unsqueeze(1)  # [B, 1, S, S]
        for layer in self.h.layers:
            xy, _, _ = layer(xy, allowed)
        logits = self.ar_predict_layer(xy[:, tx - 1 :])  # [B, Ty + 1, V]
        return logits, targets

    # ----- inference: prefill and cached decoding

    def new_cache(self, batch: int, max_len: int, text_len: int) -> KVCache:
        """An empty cache for ``max_len`` positions in the model's dtype and device."""
        w = self.ar_predict_layer.weight
        shapes = [(batch, max_len, layer.self_attn.inner) for layer in self.h.layers]
        return KVCache(
            k=[torch.zeros(s, dtype=w.dtype, device=w.device) for s in shapes],
            v=[torch.zeros(s, dtype=w.dtype, device=w.device) for s in shapes],
            text_len=text_len,
            length=0,
        )

    def _prefill_hidden(
        self, phones: Tensor, bert: Tensor, prompt: Tensor | None, cache: KVCache | None
    ) -> Tensor:
        return self._run_prefix(self.embed_text(phones, bert), None, prompt, cache)

    def _run_prefix(
        self, x: Tensor, text_ok: Tensor | None, prompt: Tensor | None, cache: KVCache | None
    ) -> Tensor:
        """Run text ``x`` ``[B, Tx, D]`` (+ prompt codes) through the stack; fill ``cache``."""
        xy = x if prompt is None or prompt.shape[1] == 0 else torch.cat([x, self.embed_audio(prompt)], 1)
        s = xy.shape[1]
        allowed = prefix_lm_allowed(x.shape[1], s, xy.device)  # [S, S]
        if text_ok is not None:  # left-padded batch: nobody attends to padding
            key_ok = F.pad(text_ok, (0, s - x.shape[1]), value=True)  # [B, S]
            allowed = (allowed.unsqueeze(0) & key_ok.unsqueeze(1)).unsqueeze(1)  # [B, 1, S, S]
            if cache is not None:
                cache.key_ok = F.pad(key_ok, (0, cache.max_len - s), value=True)
        for i, layer in enumerate(self.h.layers):
            xy, k, v = layer(xy, allowed)
            if cache is not None:
                cache.k[i][:, :s] = k
                cache.v[i][:, :s] = v
        if cache is not None:
            cache.length = s
        return xy  # [B, S, D]

    def prefill(
        self, phones: Tensor, bert: Tensor, prompt: Tensor | None = None, max_len: int | None = None
    ) -> tuple[Tensor, KVCache]:
        """Run the whole prefix once and fill a fresh cache.

        Args:
            phones: ``[B, N]`` prompt + target phone ids.
            bert: ``[B, 1024, N]``.
            prompt: ``[B, P]`` prompt codes, or None for reference-free synthesis.
            max_len: cache rows to allocate (default: the prefix plus upstream's 1500 steps).

        Returns:
            (logits of the last position ``[B, vocab]``, the cache with ``length = N + P``).
        """
        _check_inputs(phones, bert, prompt, self.config)
        s = phones.shape[1] + (0 if prompt is None else prompt.shape[1])
        max_len = s + UPSTREAM_MAX_STEPS if max_len is None else max_len
        if max_len < s:
            raise ConfigError(f"cache max_len {max_len} is shorter than the prefix ({s} positions)")
        cache = self.new_cache(phones.shape[0], max_len, phones.shape[1])
        h = self._prefill_hidden(phones, bert, prompt, cache)
        return self.ar_predict_layer(h[:, -1]), cache

    @torch.no_grad()
    def prefill_logits(self, phones: Tensor, bert: Tensor, prompt: Tensor | None = None) -> Tensor:
        """Logits ``[B, vocab]`` for the first generated code (full vocabulary, no penalty).

        Inference only, like :meth:`generate`: no autograd graph is kept (use
        :meth:`forward_train` for gradients).
        """
        _check_inputs(phones, bert, prompt, self.config)
        return self.ar_predict_layer(self._prefill_hidden(phones, bert, prompt, None)[:, -1])

    @torch.no_grad()
    def prefill_hidden_last(self, phones: Tensor, bert: Tensor, prompt: Tensor | None = None) -> Tensor:
        """The output-layer input ``[B, D]`` at the last prefix position (inference only)."""
        _check_inputs(phones, bert, prompt, self.config)
        return self._prefill_hidden(phones, bert, prompt, None)[:, -1]

    def decode_step(self, token: Tensor, cache: KVCache, pos: int | Tensor) -> Tensor:
        """Feed one code and return the logits for the next one.

        Writes the new keys and values into ``cache`` row ``pos`` in place (no
        concatenation; the cache never grows) and attends to rows ``0 .. pos``.

        Args:
            token: ``[B, 1]`` the code just chosen.
            cache: a cache filled up to row ``pos - 1``.
            pos: cache row of this token (its audio position is ``pos - cache.text_len``).
                A Python int slices the filled rows; a 0-d tensor keeps every shape static
                and masks the unfilled rows instead (for graph export).

        Returns:
            logits ``[B, vocab]``.
        """
        x = self.ar_audio_position.at(self.ar_audio_embedding(token), pos - cache.text_len)  # [B, 1, D]
        for i, layer in enumerate(self.h.layers):
            x = layer.step(x, cache.k[i], cache.v[i], pos, cache.key_ok)
        if isinstance(pos, int):
            cache.length = pos + 1
        return self.ar_predict_layer(x[:, -1])

    # ----- inference: generation

    @torch.no_grad()
    def generate(
        self,
        phones: Tensor,
        bert: Tensor,
        prompt: Tensor | None = None,
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        max_new_tokens: int = UPSTREAM_MAX_STEPS,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample semantic codes until EOS, following upstream's naive decoder (§5.6).

        Returns only the generated codes ``[1, n]``: no prompt, EOS removed. See
        :meth:`generate_detailed` for the rules and for upstream's full return values.
        """
        return self.generate_detailed(
            phones, bert, prompt, top_k, top_p, temperature, repetition_penalty, max_new_tokens, generator
        ).tokens

    @torch.no_grad()
    def generate_detailed(
        self,
        phones: Tensor,
        bert: Tensor,
        prompt: Tensor | None = None,
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        max_new_tokens: int = UPSTREAM_MAX_STEPS,
        generator: torch.Generator | None = None,
    ) -> GenerationResult:
        """Generate like upstream ``infer_panel_naive`` and record every step.

        Rules (upstream's): EOS cannot be chosen in steps 0..10; the repetition penalty is
        applied in place over every earlier code including the prompt; the step stops when
        the penalised logits' argmax is EOS or EOS is sampled, and that step's token is
        dropped; sampling is top-p, then temperature, then top-k, then argmax(p / Exp(1))
        (greedy for ``top_k=1``). ``max_new_tokens`` N caps the count at N (upstream's
        ``early_stop_num`` is N - 1; its default cap of 1500 steps is N = 1500).

        Args:
            phones: ``[1, N]`` prompt + target phone ids.
            bert: ``[1, 1024, N]``.
            prompt: ``[1, P]`` prompt codes, or None (reference-free).
            top_k, top_p, temperature, repetition_penalty: sampler settings.
            max_new_tokens: most codes to generate (>= 1).
            generator: RNG for the exponential draw (torch's global RNG when None).
        """
        if phones.shape[0] != 1:
            raise DataError(f"generate takes one sequence, got a batch of {phones.shape[0]}")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        _check_sampling(top_k, top_p, temperature, repetition_penalty)
        eos = self.config.eos
        n_prompt = 0 if prompt is None else prompt.shape[1]
        logits, cache = self.prefill(phones, bert, prompt, phones.shape[1] + n_prompt + max_new_tokens)
        y = prompt.long() if prompt is not None else phones.new_zeros(1, 0, dtype=torch.long)
        raw, decision, samples = [], [], []
        stop_reason = "max_new_tokens"
        idx = 0
        for idx in range(max_new_tokens):
            if idx > 0:
                logits = self.decode_step(y[:, -1:], cache, cache.length)
            raw.append(logits[0].float().clone())
            step_logits = (logits[:, :eos] if idx < EOS_BAN_STEPS else logits).clone()  # [1, V']
            token = sample_next_token_(
                step_logits, y, top_k, top_p, temperature, repetition_penalty, generator
            )  # [1, 1]; step_logits now penalised
            decision.append(F.pad(step_logits[0].float(), (0, logits.shape[1] - step_logits.shape[1]), value=math.nan))
            samples.append(token)
            y = torch.cat([y, token], dim=1)
            if int(step_logits[0].argmax()) == eos or int(token[0, 0]) == eos:
                y = y[:, :-1]
                stop_reason = "eos"
                break
        if y.shape[1] == 0:  # upstream never returns an empty sequence
            y = y.new_zeros(1, 1)
        return GenerationResult(
            tokens=y[:, n_prompt:],
            y=y,
            idx=idx if prompt is not None else 0,
            samples=torch.cat(samples, dim=1),
            logits_raw=torch.stack(raw),
            logits_decision=torch.stack(decision),
            stop_reason=stop_reason,
        )

    # ----- inference: batches of texts (upstream's infer_panel_batch_infer)

    def embed_text_batch(self, phones: list[Tensor], bert: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Embed texts of different lengths, each from position 0, then left-pad with zeros.

        Args:
            phones: per item ``[N_i]`` phone ids.
            bert: per item ``[1024, N_i]``.

        Returns:
            (x ``[B, max N, D]``, text_ok ``[B, max N]`` False on padding).
        """
        if not phones or len(phones) != len(bert):
            raise DataError(f"need one bert per phone sequence, got {len(phones)} and {len(bert)}")
        for p, b in zip(phones, bert):
            _check_inputs(p.view(1, -1), b.unsqueeze(0), None, self.config)
        rows = [self.embed_text(p.view(1, -1), b.unsqueeze(0))[0] for p, b in zip(phones, bert)]  # [N_i, D]
        tx = max(r.shape[0] for r in rows)
        x = rows[0].new_zeros(len(rows), tx, rows[0].shape[1])
        text_ok = torch.zeros(len(rows), tx, dtype=torch.bool, device=x.device)
        for i, r in enumerate(rows):
            x[i, tx - r.shape[0] :] = r
            text_ok[i, tx - r.shape[0] :] = True
        return x, text_ok

    def prefill_batch(
        self, phones: list[Tensor], bert: list[Tensor], prompt: Tensor | None = None, max_len: int | None = None
    ) -> tuple[Tensor, KVCache]:
        """:meth:`prefill` for several texts sharing one prompt ``[B, P]`` (or ``[1, P]``, or None).

        Texts are left-padded; the cache remembers the padding rows (``key_ok``), so
        :meth:`decode_step` never attends to them. Returns (logits ``[B, vocab]``, cache).
        """
        x, text_ok = self.embed_text_batch(phones, bert)
        b = x.shape[0]
        if prompt is not None:
            prompt = prompt.expand(b, -1) if prompt.shape[0] == 1 else prompt
            if prompt.dim() != 2 or prompt.shape[0] != b:
                raise DataError(f"prompt must be [1, P] or [{b}, P], got shape {tuple(prompt.shape)}")
        s = x.shape[1] + (0 if prompt is None else prompt.shape[1])
        max_len = s + UPSTREAM_MAX_STEPS if max_len is None else max_len
        if max_len < s:
            raise ConfigError(f"cache max_len {max_len} is shorter than the prefix ({s} positions)")
        cache = self.new_cache(b, max_len, x.shape[1])
        h = self._run_prefix(x, text_ok, prompt, cache)
        return self.ar_predict_layer(h[:, -1]), cache

    @torch.no_grad()
    def generate_batch(
        self,
        phones: list[Tensor],
        bert: list[Tensor],
        prompt: Tensor | None = None,
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        max_new_tokens: int = UPSTREAM_MAX_STEPS,
        generator: torch.Generator | None = None,
    ) -> BatchGenerationResult:
        """Generate for several texts at once with :meth:`generate_detailed`'s rules per item.

        Each item stops on its own (EOS sampled or argmax) and is then left to run without
        effect; the batch ends when all have stopped or after ``max_new_tokens`` steps.
        Greedy results equal one-at-a-time generation.
        """
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        _check_sampling(top_k, top_p, temperature, repetition_penalty)
        eos = self.config.eos
        n_prompt = 0 if prompt is None else prompt.shape[1]
        x_len = max(p.numel() for p in phones)
        logits, cache = self.prefill_batch(phones, bert, prompt, x_len + n_prompt + max_new_tokens)
        b = logits.shape[0]
        y = prompt.long().expand(b, -1) if prompt is not None else logits.new_zeros(b, 0, dtype=torch.long)
        done: dict[int, tuple[Tensor, Tensor, int]] = {}  # item -> (tokens, upstream y, idx)
        for idx in range(max_new_tokens):
            if idx > 0:
                logits = self.decode_step(y[:, -1:], cache, cache.length)
            step_logits = (logits[:, :eos] if idx < EOS_BAN_STEPS else logits).clone()
            token = sample_next_token_(step_logits, y, top_k, top_p, temperature, repetition_penalty, generator)
            y = torch.cat([y, token], dim=1)
            stopped = (step_logits.argmax(-1) == eos) | (token[:, 0] == eos)
            for i in range(b):
                if i not in done and (bool(stopped[i]) or idx == max_new_tokens - 1):
                    keep = y[i, :-1] if bool(stopped[i]) else y[i]
                    done[i] = (keep[n_prompt:], y[i, :-1], idx)  # upstream stores y[i, :-1] either way
            if len(done) == b:
                break
        return BatchGenerationResult(
            tokens=[done[i][0] for i in range(b)],
            y=[done[i][1] for i in range(b)],
            idx=[done[i][2] for i in range(b)],
        )


# --------------------------------------------------------------------------- sampling


def apply_repetition_penalty_(logits: Tensor, previous: Tensor, penalty: float) -> Tensor:
    """Penalise every earlier code once, in place: l * r where l < 0, else l / r.

    logits ``[B, V]``, previous ``[B, T]`` (repeats are harmless: each is penalised once).
    """
    if penalty == 1.0 or previous.shape[1] == 0:
        return logits
    index = previous.long()
    score = logits.gather(1, index)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter_(1, index, score)


def sampling_probs(logits: Tensor, top_k: int, top_p: float, temperature: float) -> Tensor:
    """Probabilities ``[B, V]`` after top-p, temperature and top-k, in upstream's order.

    Top-p removes every token whose inclusive cumulative probability exceeds p (the first
    always stays); top-k keeps every logit >= the k-th largest (ties kept).
    """
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove_sorted = cumulative > top_p
        remove_sorted[:, 0] = False
        remove = remove_sorted.scatter(1, order, remove_sorted)
        logits = logits.masked_fill(remove, -math.inf)
    logits = logits / max(temperature, 1e-5)
    pivot = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # [B, 1]
    logits = torch.where(logits < pivot, -math.inf, logits)
    return F.softmax(logits, dim=-1)


def sample_next_token_(
    logits: Tensor,
    previous: Tensor,
    top_k: int,
    top_p: float,
    temperature: float,
    repetition_penalty: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Choose the next code ``[B, 1]``; penalises ``logits`` in place first.

    The draw is argmax(p / q) with q ~ Exponential(1) (a Gumbel-style sample that needs no
    CPU sync); it is drawn even for ``top_k=1`` so the RNG stream matches upstream's.
    """
    apply_repetition_penalty_(logits, previous, repetition_penalty)
    probs = sampling_probs(logits, top_k, top_p, temperature)
    q = torch.empty_like(probs).exponential_(1, generator=generator)
    return torch.argmax(probs / q, dim=-1, keepdim=True).long()


# --------------------------------------------------------------------------- checks


def _check_inputs(phones: Tensor, bert: Tensor, prompt: Tensor | None, config: GPTConfig) -> None:
    if phones.dim() != 2:
        raise DataError(f"phones must be [B, N], got shape {tuple(phones.shape)}")
    b, n = phones.shape
    if n == 0:
        raise DataError("phones are empty; need at least one phone")
    if tuple(bert.shape) != (b, config.bert_dim, n):
        raise DataError(
            f"bert must be [B, {config.bert_dim}, N] = {(b, config.bert_dim, n)}, got {tuple(bert.shape)}"
        )
    if prompt is not None and (prompt.dim() != 2 or prompt.shape[0] != b):
        raise DataError(f"prompt must be [B, P] with B = {b}, got shape {tuple(prompt.shape)}")
    if not phones.is_meta and (int(phones.min()) < 0 or int(phones.max()) >= config.phoneme_vocab_size):
        raise DataError(
            f"phone ids must be in 0..{config.phoneme_vocab_size - 1} (this GPT's vocabulary), got "
            f"{int(phones.min())}..{int(phones.max())}; hint: ids of the {config.version} symbol table"
        )


def _check_sampling(top_k: int, top_p: float, temperature: float, repetition_penalty: float) -> None:
    problems = []
    if top_k < 1:
        problems.append(f"top_k must be >= 1, got {top_k}")
    if not 0.0 < top_p <= 1.0:
        problems.append(f"top_p must be in (0, 1], got {top_p}")
    if temperature < 0:
        problems.append(f"temperature must be >= 0, got {temperature}")
    if repetition_penalty <= 0:
        problems.append(f"repetition_penalty must be > 0, got {repetition_penalty}")
    if problems:
        raise ConfigError("bad sampling settings: " + "; ".join(problems))


__all__ = [
    "BatchGenerationResult",
    "GenerationResult",
    "KVCache",
    "Text2SemanticGPT",
    "apply_repetition_penalty_",
    "prefix_lm_allowed",
    "sample_next_token_",
    "sampling_probs",
    "sine_table",
]
