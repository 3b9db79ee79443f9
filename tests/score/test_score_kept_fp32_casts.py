"""An op kept at fp32 in an fp16 group reads and writes fp32, and the export's Cast on each side
of it (fp16 -> fp32 before, fp32 -> fp16 after) costs traffic and launches of its own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autocompress.score import profile_module, project_latency
from autocompress.targets import target_from_toml


class _LinearRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


@pytest.fixture(scope="module")
def target():  # noqa: ANN201
    return target_from_toml({
        "kind": "gpu", "memory_gb": 8, "bandwidth_gbps": 1, "default_precision": "fp16",
        "runtimes": ["onnxruntime-cuda"], "peak_tflops": {"fp32": 1, "fp16": 2},
        "deployable": {"matmul": ["fp32", "fp16"], "conv": ["fp32", "fp16"]},
        "budget": {"vram_gb": 1, "rtf": 0.5, "max_seq_len": 100},
        "projection": {"launch_overhead_us": 1, "efficiency": 0.5, "context_mb": 300},
    }, "toy-gpu")  # fmt: skip


@pytest.fixture(scope="module")
def profile():  # noqa: ANN201
    torch.manual_seed(0)
    x = torch.zeros(4, 8, device="meta")
    return profile_module(_LinearRelu(), lambda m, _: m(x), prefix="m")


def test_the_kept_linear_reads_and_writes_fp32_and_pays_for_its_two_casts(profile, target) -> None:  # noqa: ANN001
    """Its input (4x8) and output (4x16) were counted at the group's 2 bytes, and the Casts not at all."""
    assert [op.kind for op in profile.ops] == ["matmul", "other"]  # addmm (weight, bias), relu
    linear, relu = profile.ops
    assert (linear.act_float_in_elements, linear.act_float_elements) == (32, 32 + 64)
    assert (relu.act_float_in_elements, relu.act_float_elements) == (64, 64 + 64)

    p = project_latency(profile, target, {"m@matmul": 32}, "fp16")

    bw = 1e9 * 0.5
    launch = 1e-6
    weights = 128 * 4 + 16 * 2  # fp32 weight; the bias stays with the fp16 group
    linear_acts = 32 * 4 + 64 * 4  # the node itself runs in fp32
    casts = 32 * (2 + 4) + 64 * (4 + 2)  # Cast up: read fp16, write fp32; Cast down: the reverse
    relu_acts = (64 + 64) * 2  # the rest of the graph stays fp16
    flops = 2 * 4 * 8 * 16
    assert linear.flops == flops
    linear_s = max(flops / (1e12 * 0.5), (weights + linear_acts) / bw)
    expected = linear_s + launch + casts / bw + 2 * launch + relu_acts / bw + launch

    assert p.launches == 4
    assert p.weight_bytes == weights
    assert p.activation_bytes == linear_acts + casts + relu_acts
    assert p.memory_s == pytest.approx((weights + linear_acts + casts + relu_acts) / bw, rel=1e-12)
    assert p.launch_s == pytest.approx(4 * launch, rel=1e-12)
    assert p.seconds == pytest.approx(expected, rel=1e-12)


def test_a_linear_in_an_all_fp32_graph_has_no_casts(profile, target) -> None:  # noqa: ANN001
    """32-bit weights in an fp32 graph are no exception to it: no Cast, no extra launch."""
    p = project_latency(profile, target, {"m@matmul": 32}, "fp32")
    assert p.launches == 2
    assert p.activation_bytes == (32 + 64) * 4 + (64 + 64) * 4
