"""Meta-device op profiles: FLOPs, weights read, folding of weight preparation, live-tensor peak."""

from __future__ import annotations

import torch
from torch import nn

from autocompress.score import LiveTensorTracker, activation_peak_bytes, profile_module, to_meta


class Attn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(64, 192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, 64]
        q, k, v = self.qkv(x).view(x.shape[0], x.shape[1], 3, 4, 16).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
        return nn.functional.scaled_dot_product_attention(q, k, v)


def test_linear_and_conv_flops_and_weights_are_exact():
    model = nn.Sequential(nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 16, bias=False))
    x = to_meta(torch.zeros(4, 32))
    prof = profile_module(model, lambda m, _: m(x), prefix="g")
    assert prof.flops == 2 * 4 * 32 * 48 + 2 * 4 * 48 * 16
    matmuls = [o for o in prof.ops if o.kind == "matmul"]
    assert [o.module for o in matmuls] == ["g.0", "g.2"]
    quantizable = {w.fqn: w.elements for o in prof.ops for w in o.weights if w.quantizable}
    assert quantizable == {"g.0.weight": 32 * 48, "g.2.weight": 48 * 16}
    biases = [w for o in prof.ops for w in o.weights if not w.quantizable]
    assert [b.fqn for b in biases] == ["g.0.bias"]
    conv = nn.Conv1d(8, 12, 5)
    prof = profile_module(conv, lambda m, _: m(to_meta(torch.zeros(1, 8, 100))))
    assert prof.flops == 2 * 12 * 8 * 5 * 96
    assert [o.kind for o in prof.ops] == ["conv"]


def test_attention_flops_are_counted_through_the_math_backend():
    prof = profile_module(Attn(), lambda m, _: m(to_meta(torch.zeros(1, 10, 64))))
    linear = 2 * 10 * 64 * 192
    attention = 2 * (2 * 4 * 10 * 10 * 16)  # q k^T and p v, 4 heads of 16
    assert prof.flops == linear + attention


def test_weight_norm_is_folded_and_the_real_module_is_untouched():
    conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 6, 3))
    before = conv.parametrizations.weight.original1.detach().clone()
    prof = profile_module(conv, lambda m, _: m(to_meta(torch.zeros(1, 4, 20))), prefix="dec")
    assert [o.kind for o in prof.ops] == ["conv"]  # the g * v / |v| ops are not work
    (w,) = [w for w in prof.ops[0].weights if w.quantizable]
    assert w.elements == 6 * 4 * 3 and w.fqn.startswith("dec.parametrizations.weight")
    assert conv.parametrizations.weight.original1.device.type == "cpu"
    assert torch.equal(conv.parametrizations.weight.original1, before)


def test_embedding_reads_only_the_rows_it_returns():
    emb = nn.Embedding(1000, 32)
    prof = profile_module(emb, lambda m, _: m(torch.zeros(1, 3, dtype=torch.long, device="meta")))
    assert prof.ops[0].weights[0].elements == 3 * 32


def test_setup_work_is_not_profiled():
    lin = nn.Linear(8, 8)
    prof = profile_module(lin, lambda m, s: m(s), setup=lambda m: torch.zeros(2, 8, device="meta") + 1)
    assert [o.kind for o in prof.ops] == ["matmul"]


def test_live_tensor_tracker_is_exact_and_ignores_views_and_outside_tensors():
    def f(x: torch.Tensor) -> torch.Tensor:
        a = x * 2  # 4000 B
        b = a + 1  # 8000 B live
        del a  # 4000 B
        c = b.view(-1)  # a view: nothing new
        d = c.exp()  # 8000 B live (b, d)
        return d.sum()  # + 4 B

    x = torch.randn(1000)
    assert activation_peak_bytes(f, x) == 8004
    assert activation_peak_bytes(f, x.to("meta")) == 8004
    assert activation_peak_bytes(f, x, float_bytes=2) == 4002
    cache = torch.zeros(100, 100)
    with LiveTensorTracker() as tracker:
        cache[0:1].copy_(torch.ones(1, 100))  # writes into an outside tensor; 400 B temporary
        view = cache[:50]  # a view of an outside tensor: not counted
        del view
    assert tracker.peak_bytes == 400


class OneQuery(nn.Module):
    """One query row attending a cache of 10 keys and values (2 heads of 4), as a decode step does."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:  # x [1, 1, 8]
        q = self.q(x).view(1, 1, 2, 4).transpose(1, 2)  # [1, 2, 1, 4]
        k, v = (c.view(1, 10, 2, 4).transpose(1, 2) for c in cache)  # [1, 2, 10, 4]: views of the cache
        return nn.functional.scaled_dot_product_attention(q, k, v)


def test_a_decode_step_reads_each_cached_key_and_value_once():
    """The exported decode graph scales the query, not the keys: no op reads and rewrites the key cache."""
    x = to_meta(torch.zeros(1, 1, 8))
    prof = profile_module(OneQuery(), lambda m, cache: m(x, cache),
                          setup=lambda m: (torch.zeros(1, 10, 8, device="meta"), torch.zeros(1, 10, 8, device="meta")))
    attention = [o for o in prof.ops if o.module == ""]  # all but the q projection (module "q")
    q, scores, kv = 2 * 4, 2 * 10, 2 * 10 * 4
    assert [o.act_float_elements for o in attention] == [
        2 * q,  # q scaled
        q + kv + scores,  # q k^T: every key read once
        2 * scores,  # softmax
        scores + kv + q,  # p v: every value read once
    ]
    assert prof.flops == 2 * 8 * 8 + 2 * (2 * 2 * 1 * 10 * 4)


def test_one_query_attention_equals_torch_attention():
    from autocompress.score.profile import _one_query_attention

    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 10, 4), torch.randn(1, 2, 10, 4)
    ok = torch.rand(1, 1, 1, 10) > 0.3
    ok[..., 0] = True
    sdpa = nn.functional.scaled_dot_product_attention
    for mask in (None, ok, torch.where(ok, 0.0, -1e4)):
        torch.testing.assert_close(_one_query_attention(q, k, v, mask), sdpa(q, k, v, attn_mask=mask))
    torch.testing.assert_close(_one_query_attention(q, k, v, scale=0.3), sdpa(q, k, v, scale=0.3))
    assert _one_query_attention(k, k, v) is None  # several queries (a prefill): the math backend's ops
