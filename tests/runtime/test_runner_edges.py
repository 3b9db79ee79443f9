"""The runner on odd inputs and edited bundles: one-line errors instead of tracebacks or silent garbage."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from autocompress.exceptions import ConfigError, DataError, ExportError
from autocompress.runtime import BundleRunner, SamplingConfig, load_inputs


@pytest.fixture(scope="module")
def runner(bundle_fp32) -> BundleRunner:  # noqa: ANN001
    return BundleRunner(bundle_fp32.path, prefer_gpu=False, threads=1)


def test_zero_max_new_tokens_is_refused_not_replaced_by_the_default(runner) -> None:  # noqa: ANN001
    item = runner.sample_inputs()[0]
    with pytest.raises(ConfigError, match="max_new_tokens must be >= 1, got 0"):
        runner.generate(item, SamplingConfig(top_k=1), max_new_tokens=0)
    assert runner.generate(item, SamplingConfig(top_k=1), max_new_tokens=3).tokens.size == 3


@pytest.mark.parametrize("dtype", ["<U3", np.complex64])
def test_a_reference_that_is_not_real_numbers_is_a_data_error(runner, dtype) -> None:  # noqa: ANN001
    ref = np.ones((1025, 8)).astype(dtype)
    with pytest.raises(DataError, match="reference spectrogram must hold real numbers"):
        runner.make_input(0, "3,4,5", ref_spec=ref)
    assert runner.make_input(0, "3,4,5", ref_spec=np.ones((1025, 8), dtype=np.float64)).ref_spec.dtype == np.float32


def test_non_finite_gpt_logits_stop_generation_with_a_data_error(runner, monkeypatch) -> None:  # noqa: ANN001
    item = runner.sample_inputs()[0]
    monkeypatch.setattr(runner.gpt, "_prefill", lambda *args: np.full(runner.gpt.vocab, np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="gpt_prefill gave NaN or inf logits at step 0"):
        runner.generate(item, SamplingConfig(top_k=1), max_new_tokens=5)


@pytest.mark.parametrize(("section", "key"), [("graphs", "flow"), ("model", "max_tokens")])
def test_a_manifest_lacking_what_the_runner_reads_is_one_line(tmp_path, bundle_fp32, section, key) -> None:  # noqa: ANN001
    folder = tmp_path / "bundle"
    shutil.copytree(bundle_fp32.path, folder)
    data = json.loads((folder / "manifest.json").read_text())
    del data[section][key]
    (folder / "manifest.json").write_text(json.dumps(data))
    shown = key if section == "graphs" else f"model.{key}"
    with pytest.raises(ExportError, match=f"lacks {shown}; re-export the bundle"):
        BundleRunner(folder, prefer_gpu=False)


def test_a_damaged_inputs_file_is_a_data_error(tmp_path) -> None:
    path = tmp_path / "inputs.npz"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 40)  # a zip header and nothing behind it
    with pytest.raises(DataError, match="cannot read inputs from"):
        load_inputs(path)


def test_a_speaker_vector_without_its_reference_is_refused_not_dropped(helpers) -> None:  # noqa: ANN001
    pro = BundleRunner(helpers.version_bundle("v2Pro").path, prefer_gpu=False, threads=1)
    sv = np.zeros(20480, dtype=np.float32)
    with pytest.raises(DataError, match="pass that reference's ref_spec too"):
        pro.make_input(0, "3,4,5", ref_sv=sv)
    item = pro.make_input(0, "3,4,5", ref_spec=np.ones((1025, 8), dtype=np.float32), ref_sv=sv)
    assert np.array_equal(item.ref_sv, sv)
    item = pro.make_input(0, "3,4,5", ref_spec=np.ones((1025, 8), dtype=np.float32), ref_sv=sv[None])
    assert np.array_equal(item.ref_sv, sv)  # [1, D] is one vector too
    with pytest.raises(DataError, match=r"one vector .*\[2, 10240\]"):  # the right size, not one vector
        pro.make_input(0, "3,4,5", ref_spec=np.ones((1025, 8), dtype=np.float32), ref_sv=sv.reshape(2, 10240))


def test_a_reference_the_style_graph_overflows_on_is_named(runner) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match="the style graph overflows on this reference .*values up to 1e\\+30"):
        runner.style(np.full((1025, 8), 1e30, dtype=np.float32))


def test_phones_a_v1_gpt_was_never_trained_on_are_refused_in_one_line(tmp_path, bundle_fp32) -> None:  # noqa: ANN001
    """A v2-table SoVITS paired with a v1 GPT (upstream allows the pair): the GPT's embedding has
    no trained row for the symbols v2 added, and ids past its 512 rows crashed onnxruntime."""
    folder = tmp_path / "bundle"
    shutil.copytree(bundle_fp32.path, folder)
    data = json.loads((folder / "manifest.json").read_text())
    assert data["model"]["sovits_version"] != "v1"  # its symbol table is the 732-entry v2 one
    data["model"]["gpt_config"].update(version="v1", phoneme_vocab_size=512)
    (folder / "manifest.json").write_text(json.dumps(data))
    runner = BundleRunner(folder, prefer_gpu=False, threads=1)
    table = runner.symbols()
    item = runner.make_input(0, f"3,{table.index('Yan6')},5")  # a Cantonese phone, id 440
    item = dataclasses.replace(item, prompt_phones=np.array([7, 8, 9]), bert=None)  # a v1 prompt
    with pytest.raises(DataError, match=r"v1 GPT was trained on phone ids 0\.\.321 only, .* hold \['Yan6'\]"):
        runner.synthesize(item, SamplingConfig(top_k=1), max_new_tokens=3)
    v1_text = dataclasses.replace(item, text=np.array([3, 4, 5]))
    assert runner.generate(v1_text, SamplingConfig(top_k=1), max_new_tokens=3).tokens.size == 3


def test_a_comma_phone_standing_alone_is_spoken_not_taken_for_a_separator(runner) -> None:  # noqa: ANN001
    """Phones as GPT-SoVITS's 2-name2text.txt writes them keep their comma pauses."""
    from autocompress.runtime.inputs import parse_phones

    table = runner.symbols()
    said = [table[i] for i in parse_phones("HH AH0 L OW1 , W ER1 L D .", table)]
    assert said == ["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "."]
    assert [table[i] for i in parse_phones(",", table)] == [","]
    assert [table[i] for i in parse_phones("HH,AH0,L", table)] == ["HH", "AH0", "L"]  # inside a word: separates
    assert parse_phones("12, 40 , 7", table).tolist() == [12, 40, 7]  # ids: commas separate
    with pytest.raises(DataError, match="no phones given"):
        parse_phones(",,,", table)
    item = runner.make_input(0, "HH AH0 , W ER1")
    assert [table[i] for i in item.text] == ["HH", "AH0", ",", "W", "ER1"]


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("model", "sampling_rate", "abc", "model.sampling_rate is 'abc', not a whole number >= 1"),
        ("model", "eos", None, "model.eos is None, not a whole number >= 0"),
        ("model", "noise_scale", "0.5", "model.noise_scale is '0.5', not a finite number >= 0"),
        ("model", "symbols", 3, "model.symbols is 3, not a file name"),
        ("sampling", "top_k", 0, "sampling: bad sampling settings: top_k must be >= 1, got 0"),
        ("sampling", "temperature", "warm", "sampling: could not convert string to float: 'warm'"),
    ],
)
def test_a_damaged_manifest_value_is_refused_at_load_in_one_line(
    tmp_path, bundle_fp32, section, key, value, message  # noqa: ANN001
) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(bundle_fp32.path, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data[section][key] = value
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match=f"is damaged: {message}; re-export the bundle$"):
        BundleRunner(folder, prefer_gpu=False, threads=1)


def test_a_noise_scale_that_is_not_a_finite_number_is_refused_not_turned_into_nan_audio(runner) -> None:  # noqa: ANN001
    item = runner.sample_inputs()[0]
    for scale in (float("nan"), float("inf"), -0.5):
        with pytest.raises(ConfigError, match="noise_scale must be a finite number >= 0"):
            runner.synthesize(item, SamplingConfig(top_k=1), noise_scale=scale, max_new_tokens=3)
    assert np.isfinite(runner.synthesize(item, SamplingConfig(top_k=1), noise_scale=0.0, max_new_tokens=3).wav).all()


def test_the_style_cache_keeps_a_bounded_number_of_references(bundle_fp32, monkeypatch) -> None:  # noqa: ANN001
    """A server speaking with a new reference on every call does not grow without end."""
    from autocompress.runtime import runner as runner_module

    monkeypatch.setattr(runner_module, "STYLES_KEPT", 3)
    fresh = BundleRunner(bundle_fp32.path, prefer_gpu=False, threads=1)
    refs = [np.full((1025, 6), 0.1 * (i + 1), dtype=np.float32) for i in range(5)]
    styles = [fresh.style(ref) for ref in refs]
    assert len(fresh._styles) == 3
    assert fresh.style(refs[-1]) is styles[-1]  # the newest is still cached
    np.testing.assert_array_equal(fresh.style(refs[0]), styles[0])  # an old one is computed again, alike


def test_one_runner_serves_several_threads_at_once(runner) -> None:  # noqa: ANN001
    from concurrent.futures import ThreadPoolExecutor

    items = [runner.make_input(i % 2, ",".join(str(5 + (7 * k + i) % 300) for k in range(8 + 3 * i))) for i in range(6)]
    alone = [runner.synthesize(item, seed=i, max_new_tokens=12) for i, item in enumerate(items)]
    runner._styles.clear()
    with ThreadPoolExecutor(len(items)) as pool:
        together = list(pool.map(lambda a: runner.synthesize(a[1], seed=a[0], max_new_tokens=12), enumerate(items)))
    for one, other in zip(alone, together, strict=True):
        np.testing.assert_array_equal(one.codes, other.codes)
        np.testing.assert_array_equal(one.wav, other.wav)
