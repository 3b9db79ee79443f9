"""A live-tensor tracker: the peak bytes of tensors alive at once while a function runs.

The tracker is a ``TorchDispatchMode``: every tensor an op returns inside it is counted, by
storage (views add nothing), until its last Python reference dies. CPython frees objects when
their reference count drops, so the peak is deterministic for a given program, and it works on
the meta device, where nothing is allocated. Tensors created outside (inputs, parameters,
caches built beforehand) are not counted.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


# Float element sizes a peak is also kept for (fp32, fp16/bf16, fp8/int8 activations).
FLOAT_WIDTHS: tuple[int, ...] = (4, 2, 1)


class LiveTensorTracker(TorchDispatchMode):
    """Track the bytes of tensors created inside the mode.

    After exit, ``peak_bytes`` is the peak at the real element sizes, and
    ``peak_bytes_at[w]`` the peak had every floating-point element taken ``w`` bytes
    (w in :data:`FLOAT_WIDTHS`), for projecting other activation precisions from one run.
    Integer and boolean tensors always count at their real size.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = (0, 0, 0)  # (real bytes, float elements, non-float bytes)
        self.peak_bytes = 0
        self.peak_bytes_at: dict[int, int] = {w: 0 for w in FLOAT_WIDTHS}
        self._refs: dict[int, int] = {}  # storage id -> live tensor objects using it
        self._sizes: dict[int, tuple[int, int, int]] = {}  # storage id -> its share of ``live``

    def _release(self, key: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            size = self._sizes.pop(key)
            self.live = tuple(a - b for a, b in zip(self.live, size))  # type: ignore[assignment]

    def _track(self, t: torch.Tensor, external: set[int]) -> None:
        key = t.untyped_storage()._cdata
        if key not in self._refs:
            if key in external:
                return  # a view of a tensor made outside the mode (an input, a cache)
            nbytes = t.untyped_storage().nbytes()
            is_float = t.is_floating_point() or t.is_complex()
            size = (nbytes, nbytes // t.element_size() if is_float else 0, 0 if is_float else nbytes)
            self._refs[key] = 0
            self._sizes[key] = size
            self.live = tuple(a + b for a, b in zip(self.live, size))  # type: ignore[assignment]
            real, floats, other = self.live
            self.peak_bytes = max(self.peak_bytes, real)
            for w in FLOAT_WIDTHS:
                self.peak_bytes_at[w] = max(self.peak_bytes_at[w], w * floats + other)
        self._refs[key] += 1
        weakref.finalize(t, self._release, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        inputs = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        ids = {id(a) for a in inputs}
        external = {a.untyped_storage()._cdata for a in inputs} - set(self._refs)
        for t in tree_flatten(out)[0]:
            # In-place ops return their input: it was counted where it was made (or is external).
            if isinstance(t, torch.Tensor) and id(t) not in ids:
                self._track(t, external)
        return out


def activation_peak_bytes(fn: Any, *args: Any, float_bytes: int | None = None, **kwargs: Any) -> int:
    """Run ``fn(*args, **kwargs)`` under a :class:`LiveTensorTracker` and return its peak bytes.

    ``float_bytes`` (4, 2 or 1) counts floating-point elements at that width; None at their own.
    """
    with torch.no_grad(), LiveTensorTracker() as tracker:
        out = fn(*args, **kwargs)
    del out
    return tracker.peak_bytes if float_bytes is None else tracker.peak_bytes_at[float_bytes]
