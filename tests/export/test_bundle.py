"""export_bundle on the tiny voice: precisions, parity, fallback, manifest, files, atomicity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from export_helpers import VARIANTS, shared_bundle, snr_db

from autocompress.exceptions import ExportError
from autocompress.export import ParityBounds
from autocompress.export.parity import FP16_MIN_SNR_DB, GROUP_FLOOR_DB
from autocompress.runtime import BundleRunner, read_manifest
from autocompress.runtime.manifest import MANIFEST_NAME, PRECISIONS
from autocompress.runtime.sampling import SamplingConfig

GRAPHS = ("gpt_prefill", "gpt_decode", "ref_enc", "enc_p", "flow", "dec")


def _torch_wav(voice, item, codes: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The trial's own torch decode with the given prior noise (noise_scale 0.5)."""
    with torch.no_grad():
        wav = voice.sovits.decode(
            torch.from_numpy(codes).view(1, 1, -1),
            torch.from_numpy(item.text).long().view(1, -1),
            torch.from_numpy(item.ref_spec)[None],
            noise_scale=0.5,
            noise=torch.from_numpy(noise),
        )
    return wav.reshape(-1).numpy()


def test_fp32_graphs_match_torch_to_1e4(bundle_fp32) -> None:
    kept = [c for c in bundle_fp32.manifest.checks if c["graph"] in GRAPHS and c["passed"]]
    assert sorted(c["graph"] for c in kept) == sorted(GRAPHS)
    for check in kept:
        assert check["precision"] == "fp32"
        for out in check["outputs"]:
            assert out["within_fp32_tol"] and out["max_abs_err"] <= 1e-4 + 1e-3, (check["graph"], out)


def test_fp32_runner_output_matches_the_trial_model(bundle_fp32, voice, inputs) -> None:
    runner = BundleRunner(bundle_fp32.path, prefer_gpu=False)
    codes = np.array([5, 17, 900, 3, 3, 41], dtype=np.int64)
    noise = np.random.default_rng(1).standard_normal((1, 96, 2 * codes.size)).astype(np.float32)
    item = inputs[1]
    wav = runner.vocode(codes, item.text, runner.style(item.ref_spec), 0.5, noise=noise)
    ref = _torch_wav(voice, item, codes, noise)
    assert wav.shape == ref.shape == (codes.size * 1280,)
    assert np.max(np.abs(wav - ref)) <= 1e-4 + 1e-4 * np.max(np.abs(ref))


@pytest.mark.parametrize("variant", ["mixed_a", "mixed_b"])
def test_quantized_bundles_keep_their_precision_and_floors(variant: str, voice, inputs) -> None:
    bundle = shared_bundle(variant)
    modules = bundle.manifest.modules
    for group, precision in VARIANTS[variant].items():
        assert modules[group].requested == precision
        if modules[group].used != precision:
            # A group may only move up, after a recorded rejection of what was asked.
            assert modules[group].fallbacks[0]["precision"] == precision, (group, modules[group])
            assert PRECISIONS.index(modules[group].used) > PRECISIONS.index(precision)
    for graph in GRAPHS:
        entry = bundle.manifest.graphs[graph]
        metric = bundle.manifest.metric(f"parity_snr_db_{graph}")
        assert metric.kind == "measured" and metric.device.startswith("cpu")
        floor = {"fp32": -math.inf, "fp16": FP16_MIN_SNR_DB}.get(entry.precision, GROUP_FLOOR_DB[entry.group])
        assert metric.value is None or metric.value >= floor, (graph, metric.value)

    # Independently of the bundle's own checks: the runner's SoVITS chain vs the trial model.
    runner = BundleRunner(bundle.path, prefer_gpu=False)
    item = inputs[0]
    codes = np.arange(30, 54, dtype=np.int64)
    noise = np.random.default_rng(2).standard_normal((1, 96, 2 * codes.size)).astype(np.float32)
    wav = runner.vocode(codes, item.text, runner.style(item.ref_spec), 0.5, noise=noise)
    assert snr_db(_torch_wav(voice, item, codes, noise), wav) >= 10.0  # ParityBounds' end-to-end floor for int


def test_int4_gpt_is_stored_as_matmulnbits() -> None:
    import onnx

    bundle = shared_bundle("mixed_a")
    model = onnx.load(str(bundle.path / "gpt_decode.onnx"))
    inits = {i.name for i in model.graph.initializer}
    ops = {n.op_type for n in model.graph.node}
    assert "MatMulNBits" in ops
    assert not [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    sizes = {v: shared_bundle(v).manifest.metric("file_bytes_gpt").value for v in ("fp32", "mixed_a")}
    assert sizes["mixed_a"] < 0.6 * sizes["fp32"]  # the embeddings stay fp32


def test_the_two_gpt_graphs_store_their_weights_once(bundle_fp32, voice) -> None:
    folder = bundle_fp32.path
    weights = (folder / "gpt_weights.bin").stat().st_size
    params = sum(p.numel() * 4 for p in voice.gpt.parameters())
    assert params <= weights < 1.05 * params  # once, plus page alignment
    assert (folder / "gpt_prefill.onnx").stat().st_size < 0.1 * weights
    assert (folder / "gpt_decode.onnx").stat().st_size < 0.1 * weights
    assert "gpt_weights.bin" in bundle_fp32.manifest.files


def test_broken_int2_decoder_falls_back_and_is_recorded() -> None:
    manifest = shared_bundle("mixed_a").manifest
    dec = manifest.modules["dec"]
    assert dec.requested == "int2"
    assert dec.used != "int2" and PRECISIONS.index(dec.used) > PRECISIONS.index("int2")
    assert dec.fallbacks[0]["precision"] == "int2"
    assert "SNR" in dec.fallbacks[0]["reason"]
    assert manifest.graphs["dec"].precision == dec.used
    rejected = [c for c in manifest.checks if c["graph"] == "dec" and not c["passed"]]
    assert rejected and rejected[0]["precision"] == "int2"
    # Only the decoder fell back.
    assert manifest.modules["gpt"].used == "int4" and not manifest.modules["gpt"].fallbacks
    assert "int2 rejected" in (shared_bundle("mixed_a").path / "README.md").read_text()


def _plan_of(variant: str):
    from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig

    return CompressionPlan({g: GroupPlan(quant=QuantConfig(p)) for g, p in VARIANTS[variant].items()})


def test_a_trial_figure_for_the_plan_says_when_the_bundle_ships_higher(tmp_path) -> None:
    """dec int2 falls back in its parity check: the trial's figures, made for int2, say so (no target: no projection)."""
    from autocompress.score.metric import measured, projected

    from export_helpers import shared_export

    trial = [projected("memory_bytes", 1e6, "bytes", "rtx3060", "weights and activations"),
             measured("quality", 0.5, "", "cpu: the trial's machine")]  # fmt: skip
    m = shared_export().bundle(_plan_of("mixed_a"), tmp_path / "b", None, n_samples=1, threads=1,
                               upstream=False, metrics=trial).manifest  # fmt: skip
    note = m.metric("memory_bytes", "projected").note
    assert note.startswith("weights and activations; projected for the plan; this bundle ships dec int2 -> ")
    assert m.modules["dec"].used in note and "gpt" not in note  # only the group that moved
    assert m.metric("memory_bytes", "projected").value == 1e6
    assert m.metric("quality", "measured").note.startswith("measured for the plan; this bundle ships dec int2 -> ")
    assert all("this bundle ships" not in x.note for x in m.metrics if x.name not in ("quality", "memory_bytes"))


def test_projected_figures_are_projected_again_for_what_the_bundle_ships(tmp_path, voice) -> None:
    """On a datasheet target the trial's projections are redone with the decoder at the rung it ships.

    The rtx3060 cannot run int2 convolutions, so the plan's int2 decoder was projected as int8;
    an unreachable int8 floor sends it to fp16, which the projection then has to count.
    """
    from autocompress.compress.plan import QuantConfig
    from autocompress.export import ParityBounds
    from autocompress.score.metric import measured, projected
    from autocompress.score.voice_cost import projected_plan_metrics
    from autocompress.targets import load_target

    from export_helpers import shared_export

    target = load_target("rtx3060")
    plan = _plan_of("mixed_a")
    planned = {m.name: m for m in projected_plan_metrics(voice, plan, target)}
    trial = [planned["latency_ms"], planned["memory_bytes"], projected("made_up_ms", 3.0, "ms", "rtx3060"),
             measured("quality", 0.5, "", "cpu: the trial's machine")]  # fmt: skip
    bounds = ParityBounds(group_floor_db={"gpt": -1e9, "ref_enc": -1e9, "enc_p": -1e9, "flow": -1e9, "dec": 1e9})
    m = shared_export().bundle(plan, tmp_path / "b", target, bounds=bounds, n_samples=1, threads=1, upstream=False,
                               metrics=trial).manifest  # fmt: skip
    used = m.modules["dec"].used
    assert used == "fp16" and m.modules["gpt"].used == "int4"
    shipped = plan.replace_group("dec", quant=QuantConfig("fp16", "fp16"))
    again = {x.name: x for x in projected_plan_metrics(voice, shipped, target)}
    for name in ("latency_ms", "memory_bytes"):
        entry = m.metric(name, "projected")
        assert entry.value == pytest.approx(again[name].value, rel=1e-9), (entry.note, {g: x.used for g, x in m.modules.items()})
        assert entry.value != pytest.approx(planned[name].value, rel=1e-6)  # the decoder's bytes moved
        assert f"projected again for what this bundle ships (dec int2 -> {used})" in entry.note
    assert m.metric("made_up_ms", "projected").value == 3.0  # nothing to project it with: kept, and noted
    assert "projected for the plan; this bundle ships dec int2" in m.metric("made_up_ms", "projected").note
    assert "measured for the plan" in m.metric("quality", "measured").note


def test_manifest_records_versions_hashes_samples_and_labels(bundle_fp32) -> None:
    m = read_manifest(bundle_fp32.path, verify=True)
    assert set(m.versions) >= {"torch", "onnx", "onnxruntime", "autocompress"}
    assert m.target == {"name": "none"}
    for graph in GRAPHS:
        assert m.graphs[graph].file in m.files
        assert m.graphs[graph].exporter in ("dynamo", "legacy")
    assert 2 <= len(m.samples) <= 3
    for sample in m.samples:
        audio, rate = sf.read(bundle_fp32.path / sample["file"])
        assert rate == 32000 and audio.size > 0
        assert sample["file"] in m.files
    assert all(metric.kind in ("measured", "projected") and metric.device for metric in m.metrics)
    assert m.metric("file_bytes_onnx_total").value == sum(
        (bundle_fp32.path / m.graphs[g].file).stat().st_size for g in GRAPHS
    ) + (bundle_fp32.path / "gpt_weights.bin").stat().st_size
    assert "autocompress synth --bundle" in (bundle_fp32.path / "README.md").read_text()


def test_the_readme_example_of_a_new_reference_runs_for_every_voice_version(
    tmp_path, bundle_fp32, monkeypatch
) -> None:
    """The README's new-reference command, run as written: a Pro voice needs the speaker vector too."""
    import shutil

    from export_helpers import version_bundle

    from autocompress.cli.main import main

    monkeypatch.chdir(tmp_path)  # the README's commands run from the folder holding the bundle
    np.save("ref.npy", np.abs(np.random.default_rng(0).standard_normal((1025, 30))).astype(np.float32))
    np.save("ref_sv.npy", np.ones(20480, dtype=np.float32))
    for bundle in (bundle_fp32, version_bundle("v2Pro")):
        shutil.copytree(bundle.path, bundle.path.name)
        readme = (bundle.path / "README.md").read_text()
        (line,) = [ln for ln in readme.splitlines() if ln.startswith("autocompress synth") and "--ref-spec" in ln]
        assert main([*line.split()[1:], "--cpu", "--max-tokens", "8"]) == 0, line
        assert sf.read("other_voice.wav")[0].size == 8 * 1280


def test_a_tampered_bundle_is_refused(tmp_path, bundle_fp32) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle_fp32.path, copy)
    with open(copy / "dec.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ExportError, match="dec.onnx"):
        BundleRunner(copy, prefer_gpu=False)


def test_failed_export_leaves_the_previous_bundle_untouched(tmp_path, export) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("previous bundle")
    impossible = ParityBounds(fp32_atol=0.0, fp32_rtol=0.0)  # fp32 cannot match bit for bit
    with pytest.raises(ExportError, match="fp32 graph"):
        export.bundle(None, out, None, bounds=impossible, n_samples=1, threads=1)
    assert (out / "old.txt").read_text() == "previous bundle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folders left


def test_a_folder_on_a_file_system_without_hard_links_gets_its_bundle(tmp_path, export, monkeypatch) -> None:
    """FAT, exFAT and some network shares refuse os.link: the export copies, leaving no temporary folder."""
    import os

    def no_links(src, dst) -> None:
        raise PermissionError(1, "Operation not permitted", str(dst))

    monkeypatch.setattr(os, "link", no_links)
    bundle = export.bundle(None, tmp_path / "bundle", None, n_samples=1, upstream=False, threads=1)
    assert read_manifest(bundle.path, verify=True).graphs.keys() == set(GRAPHS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_plan_and_target_decide_precisions_and_the_old_folder_is_replaced(tmp_path, export) -> None:
    from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
    from autocompress.score.metric import projected

    plan = CompressionPlan(
        {
            "gpt": GroupPlan(quant=QuantConfig("fp16")),
            "enc_p": GroupPlan(quant=QuantConfig("int8")),
            "ref_enc": GroupPlan(quant=QuantConfig("bf16")),
            "flow": GroupPlan(quant=QuantConfig("int4")),
            "dec": GroupPlan(quant=QuantConfig("fp16")),
        }
    )
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("previous bundle")
    trial_metric = projected("gpt_ms_per_token", 0.5, "ms", "rtx3060", "the trial's projection")
    bundle = export.bundle(plan, out, "rtx3060", n_samples=1, upstream=False, threads=1, metrics=[trial_metric])

    assert not (out / "old.txt").exists() and (out / MANIFEST_NAME).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folders left
    m = bundle.manifest
    assert m.target["name"] == "rtx3060" and m.plan == json.loads(plan.to_json())
    kinds = {(x.name, x.kind, x.device) for x in m.metrics}
    assert ("gpt_ms_per_token", "projected", "rtx3060") in kinds  # the trial's figure for the target ...
    assert ("sample_gpt_ms_per_token", "measured", m.metric("sample_e2e_rtf").device) in kinds  # ... this machine's
    assert m.metric("gpt_ms_per_token").value == 0.5 and m.metric("gpt_ms_per_token", "projected").device == "rtx3060"
    assert len({x.name for x in m.metrics}) == len(m.metrics)  # one figure per name
    assert m.modules["gpt"].requested == "fp16" and m.modules["gpt"].used == "fp16"
    assert m.modules["enc_p"].used == "int8"
    assert m.modules["ref_enc"].requested == "fp16" and any("bf16" in n for n in m.modules["ref_enc"].notes)
    assert m.modules["dec"].used == "fp16"
    # The RTX 3060 has no int4 convolution: the flow goes up a rung before any check.
    assert m.modules["flow"].used == "int8" and any("int4 skipped" in n for n in m.modules["flow"].notes)
    assert not m.modules["flow"].fallbacks
    # fp16 GPT: the KV cache is stored in half, the other inputs stay float32.
    runner = BundleRunner(out, prefer_gpu=False)
    types = {i.name: i.type for i in runner.sessions["gpt_decode"].get_inputs()}
    assert types["past_k_0"] == "tensor(float16)" and types["audio_pos"] == "tensor(int64)"
    assert {o.name: o.type for o in runner.sessions["gpt_decode"].get_outputs()}["logits"] == "tensor(float)"
    assert runner.generate(runner.sample_inputs()[0], SamplingConfig(top_k=1), max_new_tokens=8).tokens.size > 0


def test_a_rung_onnxruntime_cannot_store_falls_back_instead_of_failing_the_export(tmp_path, monkeypatch) -> None:
    """A tool failure at one precision ended the whole export; the next rung up may store fine."""
    import autocompress.export.bundle as bundle_module
    from export_helpers import shared_export

    store = bundle_module.quantize_graph

    def failing(src, dst, precision, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if "dec" in str(dst) and precision == "int8":
            raise ExportError("onnxruntime could not store dec.export.onnx as int8: ValueError: made up")
        return store(src, dst, precision, *args, **kwargs)

    monkeypatch.setattr(bundle_module, "quantize_graph", failing)
    m = shared_export().bundle(None, tmp_path / "b", None, precisions={"dec": "int8"}, n_samples=1, threads=1,
                               upstream=False).manifest  # fmt: skip
    dec = m.modules["dec"]
    assert dec.used == "fp16" and dec.fallbacks[0]["precision"] == "int8"
    assert "made up" in dec.fallbacks[0]["reason"]


def test_a_gpt_that_overflows_end_to_end_moves_up_a_rung(tmp_path, monkeypatch) -> None:
    """NaN logits past the decode steps the graph check saw raised out of the export."""
    from autocompress.exceptions import DataError
    from export_helpers import shared_export

    generate = BundleRunner.generate

    def overflowing(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if self.manifest.graphs["gpt_decode"].precision == "int8":
            raise DataError("gpt_decode gave NaN or inf logits at step 3")
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(BundleRunner, "generate", overflowing)
    m = shared_export().bundle(None, tmp_path / "b", None, precisions={"gpt": "int8"}, n_samples=1, threads=1,
                               upstream=False).manifest  # fmt: skip
    gpt = m.modules["gpt"]
    assert gpt.used == "fp16" and gpt.fallbacks[-1]["precision"] == "int8"
    assert "GPT on input 0" in gpt.fallbacks[-1]["reason"] and "NaN" in gpt.fallbacks[-1]["reason"]
    assert m.modules["dec"].used == "fp32" and not m.modules["dec"].fallbacks  # the SoVITS was not blamed


def test_the_sample_timing_warm_up_generates_a_few_codes_not_a_whole_sample(tmp_path, monkeypatch) -> None:
    """The warm-up spoke a whole sample first: a GPT that never stops ran it to the code limit."""
    from autocompress.export.bundle import WARMUP_CODES
    from export_helpers import shared_export

    limits = []
    synthesize = BundleRunner.synthesize

    def spy(self, item, sampling=None, noise_scale=None, seed=0, max_new_tokens=None):  # noqa: ANN001, ANN202
        limits.append(max_new_tokens)
        return synthesize(self, item, sampling, noise_scale, seed, max_new_tokens)

    monkeypatch.setattr(BundleRunner, "synthesize", spy)
    shared_export().bundle(None, tmp_path / "b", None, n_samples=2, threads=1, upstream=False)
    assert limits == [WARMUP_CODES, None, None]  # the warm-up, then each sample to the bundle's own limit
