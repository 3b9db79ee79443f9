"""The GPT token loop over two onnxruntime graphs with a static, preallocated KV cache.

``gpt_prefill`` maps (phones ``[1, N]``, BERT ``[1, 1024, N]``, prompt codes ``[1, P]``) to the
logits of the first new code ``[1, V]`` and per-layer keys/values ``k_i``, ``v_i``
``[1, S, inner_i]`` (S = N + P). ``gpt_decode`` maps (one code ``token`` ``[1, 1]``, its audio
position ``audio_pos`` ``[1]``, and the filled cache rows ``past_k_i``, ``past_v_i``
``[1, pos, inner_i]``) to the next logits and that code's own ``new_k_i``, ``new_v_i``
``[1, 1, inner_i]``.

The cache is one buffer per layer of ``[1, S + max_new_tokens, inner_i]`` rows, allocated once
per utterance. Graph inputs are bound to the filled prefix of each buffer and the graph's new
rows are written straight into row ``pos`` (onnxruntime IO binding on raw pointers), so no step
copies or concatenates the cache. On the CUDA provider the buffers live on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from autocompress.exceptions import ConfigError, DataError
from autocompress.runtime.sampling import SamplingConfig, choose_token, seen_mask

_NUMPY_OF_ORT = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass
class GenerationOutput:
    """Codes the loop produced and how it ended.

    Attributes:
        tokens: generated codes ``[n]`` (no prompt, final EOS dropped).
        stop_reason: ``eos`` or ``max_new_tokens``.
        steps: decode-graph calls made (prefill not counted).
        logits: raw logits of every step ``[steps + 1, V]`` when requested, else None.
    """

    tokens: np.ndarray
    stop_reason: str
    steps: int
    logits: np.ndarray | None = None


class GPTLoop:
    """Run prefill once, then one decode-graph call per generated code."""

    def __init__(self, prefill: ort.InferenceSession, decode: ort.InferenceSession, eos: int, pe_rows: int):
        self.prefill = prefill
        self.decode = decode
        self.eos = eos
        self.pe_rows = pe_rows  # audio positions the decode graph's sine table covers
        # TensorRT runs on the GPU too (with CUDA for the nodes it leaves): the cache stays there
        self.on_gpu = decode.get_providers()[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        inputs = {i.name: i for i in decode.get_inputs()}
        self.n_layer = sum(1 for n in inputs if n.startswith("past_k_"))
        if self.n_layer == 0:
            raise DataError("gpt_decode graph has no past_k_* inputs; not an autocompress decode graph")
        self.inner = [int(inputs[f"past_k_{i}"].shape[2]) for i in range(self.n_layer)]
        self.cache_dtype = _NUMPY_OF_ORT[inputs["past_k_0"].type]
        self.vocab = int(decode.get_outputs()[0].shape[-1])

    def generate(
        self,
        phones: np.ndarray,
        bert: np.ndarray,
        prompt: np.ndarray,
        sampling: SamplingConfig,
        max_new_tokens: int,
        rng: np.random.Generator,
        keep_logits: bool = False,
    ) -> GenerationOutput:
        """Generate codes for one utterance (batch 1) with upstream's sampling rules.

        Args:
            phones: ``[N]`` prompt + target phone ids.
            bert: ``[1024, N]`` features.
            prompt: ``[P]`` prompt codes (P >= 1).
            sampling: sampler settings (``top_k=1`` is greedy).
            max_new_tokens: most codes to generate; sizes the static cache.
            rng: random stream for the sampler's exponential draw.
            keep_logits: also return the raw logits of every step (for parity checks).
        """
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if prompt.size + max_new_tokens > self.pe_rows:
            raise ConfigError(
                f"prompt ({prompt.size}) + max_new_tokens ({max_new_tokens}) exceeds the graph's "
                f"{self.pe_rows} audio positions; lower --max-tokens"
            )
        n_prefix = phones.size + prompt.size
        cache = _Cache(self.inner, n_prefix + max_new_tokens, self.cache_dtype, self.on_gpu)
        logits = self._prefill(phones, bert, prompt, cache)
        seen = seen_mask(prompt, self.vocab)
        new: list[int] = []
        kept = [logits.copy()] if keep_logits else []
        stop_reason, steps = "max_new_tokens", 0
        binding, step_logits, token_in, pos_in = self._decode_binding()
        binders = _raw_binders(binding, cache.device)
        for step in range(max_new_tokens):
            if step > 0:
                pos = n_prefix + step - 1  # cache row of the code chosen last step
                token_in[0, 0] = new[-1]
                pos_in[0] = prompt.size + step - 1  # its audio position
                self._bind_cache(binders, cache, pos)
                self.decode.run_with_iobinding(binding)
                logits = step_logits[0]
                steps += 1
                if keep_logits:
                    kept.append(logits.copy())
            if not np.isfinite(logits).all():  # the sampler would pick code 0 on and on
                graph = "gpt_decode" if step else "gpt_prefill"
                raise DataError(
                    f"{graph} gave NaN or inf logits at step {step}; the bundle's GPT overflows on this input "
                    "(an fp16 or integer GPT: export it at a higher precision)"
                )
            token, stop = choose_token(logits, seen, step, self.eos, sampling, rng)
            if stop:
                stop_reason = "eos"
                break
            seen[token] = True
            new.append(token)
        return GenerationOutput(
            tokens=np.asarray(new, dtype=np.int64),
            stop_reason=stop_reason,
            steps=steps,
            logits=np.stack(kept) if keep_logits else None,
        )

    # ----- graph calls

    def _prefill(self, phones: np.ndarray, bert: np.ndarray, prompt: np.ndarray, cache: _Cache) -> np.ndarray:
        binding = self.prefill.io_binding()
        binding.bind_cpu_input("phones", phones.reshape(1, -1).astype(np.int64))
        binding.bind_cpu_input("bert", bert.reshape(1, bert.shape[0], -1).astype(np.float32))
        binding.bind_cpu_input("prompt", prompt.reshape(1, -1).astype(np.int64))
        logits = np.empty((1, self.vocab), dtype=np.float32)
        binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        rows = phones.size + prompt.size
        for i in range(self.n_layer):
            for kind in ("k", "v"):
                ptr = cache.row_pointer(kind, i, 0)
                binding.bind_output(f"{kind}_{i}", cache.device, 0, self.cache_dtype, [1, rows, self.inner[i]], ptr)
        self.prefill.run_with_iobinding(binding)
        return logits[0]

    def _decode_binding(self) -> tuple[ort.IOBinding, np.ndarray, np.ndarray, np.ndarray]:
        binding = self.decode.io_binding()
        logits = np.empty((1, self.vocab), dtype=np.float32)
        token = np.zeros((1, 1), dtype=np.int64)
        pos = np.zeros((1,), dtype=np.int64)
        binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        binding.bind_input("token", "cpu", 0, np.int64, [1, 1], token.ctypes.data)
        binding.bind_input("audio_pos", "cpu", 0, np.int64, [1], pos.ctypes.data)
        return binding, logits, token, pos

    def _bind_cache(self, binders: tuple, cache: _Cache, pos: int) -> None:
        bind_in, bind_out = binders
        for i in range(self.n_layer):
            for kind in ("k", "v"):
                bind_in(f"past_{kind}_{i}", self.cache_dtype, [1, pos, self.inner[i]], cache.row_pointer(kind, i, 0))
                bind_out(f"new_{kind}_{i}", self.cache_dtype, [1, 1, self.inner[i]], cache.row_pointer(kind, i, pos))


def _raw_binders(binding: ort.IOBinding, device: str):  # noqa: ANN202
    """Bind-by-pointer functions; onnxruntime's C binding directly when it is reachable.

    The public ``IOBinding.bind_input`` rebuilds its device object on every call, which is a
    measurable share of a small model's step; the C-level calls take a device made once.
    """
    raw = getattr(binding, "_iobinding", None)
    try:
        from onnxruntime.capi.onnxruntime_inference_collection import OrtDevice

        c_device = OrtDevice.make(device, 0)._get_c_device()
    except (ImportError, AttributeError):
        raw = None
    if raw is None:
        return (
            lambda name, dtype, shape, ptr: binding.bind_input(name, device, 0, dtype, shape, ptr),
            lambda name, dtype, shape, ptr: binding.bind_output(name, device, 0, dtype, shape, ptr),
        )
    return (
        lambda name, dtype, shape, ptr: raw.bind_input(name, c_device, dtype, shape, ptr),
        lambda name, dtype, shape, ptr: raw.bind_output(name, c_device, dtype, shape, ptr),
    )


class _Cache:
    """Per-layer key and value buffers ``[1, rows, inner_i]``, in host or GPU memory."""

    def __init__(self, inner: list[int], rows: int, dtype: type, on_gpu: bool) -> None:
        self.device = "cuda" if on_gpu else "cpu"
        self.itemsize = np.dtype(dtype).itemsize
        self.inner = inner
        self.buffers: dict[tuple[str, int], object] = {}
        for i, width in enumerate(inner):
            for kind in ("k", "v"):
                if on_gpu:
                    value = ort.OrtValue.ortvalue_from_shape_and_type([1, rows, width], dtype, "cuda", 0)
                else:
                    value = np.zeros((1, rows, width), dtype=dtype)
                self.buffers[(kind, i)] = value
        self._base = {
            key: int(buf.ctypes.data if isinstance(buf, np.ndarray) else buf.data_ptr())
            for key, buf in self.buffers.items()
        }
        self._row_bytes = [width * self.itemsize for width in inner]

    def row_pointer(self, kind: str, layer: int, row: int) -> int:
        """Address of row ``row`` of a layer's key or value buffer."""
        return self._base[(kind, layer)] + row * self._row_bytes[layer]


__all__ = ["GPTLoop", "GenerationOutput"]
