"""SoVITS parity with upstream GPT-SoVITS on fixture A (reduced v2 model, upstream file format).

Expected arrays were produced by the upstream code; see ``shared/fixtures/parity_A/README.md``.
Tolerances from that README: spectrogram |a-b| <= 1e-4 + 1e-5|b|, other floats
|a-b| <= 1e-4 + 1e-4|b|, codes exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from autocompress.models.gpt_sovits.audio import spectrogram
from autocompress.models.gpt_sovits.config import SoVITSConfig
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn, from_upstream_keys

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "parity_A"
pytestmark = pytest.mark.skipif(
    not (FIXTURE / "sovits.pth").exists(), reason=f"parity fixture not found at {FIXTURE}"
)


class _HParams:
    """Stand-in for upstream's ``utils.HParams`` (rebuilt from its pickled __dict__)."""


def _plain(value: Any) -> Any:
    if isinstance(value, _HParams):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


def _load_fixture_sovits(path: Path) -> tuple[SynthesizerTrn, list[str]]:
    """Test-only loader: weights_only torch.load with the one allow-listed global."""
    with torch.serialization.safe_globals([(_HParams, "utils.HParams")]):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    config = SoVITSConfig.from_upstream(_plain(ckpt["config"]), "v2")
    model = SynthesizerTrn(config)
    weights = {k: v.float() for k, v in ckpt["weight"].items()}
    result = model.load_state_dict(from_upstream_keys(weights), strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    return model.eval(), list(result.missing_keys)


@pytest.fixture(scope="module")
def loaded() -> tuple[SynthesizerTrn, list[str]]:
    return _load_fixture_sovits(FIXTURE / "sovits.pth")


@pytest.fixture(scope="module")
def model(loaded: tuple[SynthesizerTrn, list[str]]) -> SynthesizerTrn:
    return loaded[0]


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE / "inputs.npz"))


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE / "expected.npz"))


def _close(got: torch.Tensor, want: np.ndarray, rtol: float = 1e-4, atol: float = 1e-4) -> None:
    got_np = got.detach().cpu().numpy()
    assert got_np.shape == want.shape, f"shape {got_np.shape} != {want.shape}"
    err = np.abs(got_np - want)
    bad = err > atol + rtol * np.abs(want)
    assert not bad.any(), f"{int(bad.sum())} elements out of tolerance, max |diff| {err.max():.3g}"


class _Recorder:
    """Forward hooks that keep the latest inputs/outputs of named submodules."""

    def __init__(self, model: SynthesizerTrn) -> None:
        self.out: dict[str, Any] = {}
        self.ref_outputs: list[torch.Tensor] = []
        self.handles = []
        enc_p = model.enc_p
        for name, module in {
            "encoder_ssl": enc_p.encoder_ssl,
            "encoder_text": enc_p.encoder_text,
            "mrte": enc_p.mrte,
            "encoder2": enc_p.encoder2,
            "enc_p": enc_p,
            "flow": model.flow,
            "conv_pre": model.dec.conv_pre,
        }.items():
            self.handles.append(module.register_forward_hook(self._keep(name)))
        self.handles.append(enc_p.register_forward_pre_hook(self._keep_input("enc_p_in")))
        self.handles.append(model.flow.register_forward_pre_hook(self._keep_input("flow_in")))
        self.handles.append(
            model.ref_enc.register_forward_hook(lambda m, i, o: self.ref_outputs.append(o))
        )

    def _keep(self, name: str):  # noqa: ANN202
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            self.out[name] = output

        return hook

    def _keep_input(self, name: str):  # noqa: ANN202
        def hook(module: torch.nn.Module, args: Any) -> None:
            self.out[name] = args

        return hook

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@pytest.fixture()
def recorder(model: SynthesizerTrn):  # noqa: ANN201
    rec = _Recorder(model)
    yield rec
    rec.close()


def test_loading_leaves_only_enc_q_missing(loaded: tuple[SynthesizerTrn, list[str]]) -> None:
    model, missing = loaded
    assert missing, "a user file never holds enc_q; the model should report it missing"
    assert all(k.startswith("enc_q.") for k in missing), [k for k in missing if not k.startswith("enc_q.")]
    assert len(missing) == sum(1 for k in model.state_dict() if k.startswith("enc_q."))


@pytest.mark.parametrize(("wav", "spec"), [("wav", "spec"), ("wav2", "spec2")])
def test_spectrogram(inputs: dict, expected: dict, wav: str, spec: str) -> None:
    _close(spectrogram(torch.from_numpy(inputs[wav])), expected[spec], rtol=1e-5)


def test_extract_latent(model: SynthesizerTrn, inputs: dict, expected: dict) -> None:
    ssl = torch.from_numpy(inputs["ssl"])
    codes = model.extract_latent(ssl)
    assert codes.dtype == torch.int64
    np.testing.assert_array_equal(codes.numpy(), expected["extract_latent_codes"])
    with torch.no_grad():
        _close(model.ssl_proj(ssl), expected["extract_latent_ssl_proj"])


def _decode_args(inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(inputs["decode_codes"]), torch.from_numpy(inputs["decode_text"])


def test_decode_speed_1(
    model: SynthesizerTrn, inputs: dict, expected: dict, recorder: _Recorder
) -> None:
    codes, text = _decode_args(inputs)
    wav = model.decode(codes, text, [torch.from_numpy(expected["spec"])], noise_scale=0.0)
    out = recorder.out
    enc_p_args, (_, m_p, logs_p, y_mask) = out["enc_p_in"], out["enc_p"]
    _close(enc_p_args[0], expected["dec_enc_p_in_quantized"])
    _close(enc_p_args[4], expected["dec_ge"])
    _close(out["encoder_ssl"], expected["dec_enc_p_encoder_ssl"])
    _close(out["encoder_text"], expected["dec_enc_p_encoder_text"])
    _close(out["mrte"], expected["dec_enc_p_mrte"])
    _close(out["encoder2"], expected["dec_enc_p_encoder2"])
    _close(m_p, expected["dec_m_p"])
    _close(logs_p, expected["dec_logs_p"])
    _close(y_mask, expected["dec_y_mask"])
    _close(out["flow"], expected["dec_z"])
    _close(out["conv_pre"], expected["dec_dec_conv_pre"])
    _close(wav, expected["dec_wav"])


def test_bare_tensor_reference_equals_one_element_list(model: SynthesizerTrn, expected: dict) -> None:
    # decode() differs between the two call forms only in style(); upstream's are bitwise equal.
    refer = torch.from_numpy(expected["spec"])
    with torch.no_grad():
        bare, listed = model.style(refer), model.style([refer])
    torch.testing.assert_close(bare, listed, rtol=0, atol=0)
    _close(bare, expected["dec_ge"])


def test_decode_speed_125(
    model: SynthesizerTrn, inputs: dict, expected: dict, recorder: _Recorder
) -> None:
    codes, text = _decode_args(inputs)
    wav = model.decode(codes, text, [torch.from_numpy(expected["spec"])], noise_scale=0.0, speed=1.25)
    _, m_p, logs_p, _ = recorder.out["enc_p"]
    _close(m_p, expected["dec_speed125_m_p"])
    _close(logs_p, expected["dec_speed125_logs_p"])
    _close(recorder.out["flow"], expected["dec_speed125_z"])
    _close(wav, expected["dec_speed125_wav"])


def test_decode_with_injected_noise(
    model: SynthesizerTrn, inputs: dict, expected: dict, recorder: _Recorder
) -> None:
    codes, text = _decode_args(inputs)
    eps = torch.from_numpy(inputs["decode_noise_eps"])
    wav = model.decode(codes, text, [torch.from_numpy(expected["spec"])], noise_scale=0.5, noise=eps)
    _close(recorder.out["flow_in"][0], expected["dec_noise05_z_p"])
    _close(recorder.out["flow"], expected["dec_noise05_z"])
    _close(wav, expected["dec_noise05_wav"])


def test_decode_two_references(
    model: SynthesizerTrn, inputs: dict, expected: dict, recorder: _Recorder
) -> None:
    codes, text = _decode_args(inputs)
    refs = [torch.from_numpy(expected["spec"]), torch.from_numpy(expected["spec2"])]
    wav = model.decode(codes, text, refs, noise_scale=0.0)
    _close(torch.stack(recorder.ref_outputs), expected["dec_multiref_ref_enc_out"])
    _close(recorder.out["enc_p_in"][4], expected["dec_multiref_ge"])
    _, m_p, logs_p, _ = recorder.out["enc_p"]
    _close(m_p, expected["dec_multiref_m_p"])
    _close(logs_p, expected["dec_multiref_logs_p"])
    _close(recorder.out["flow"], expected["dec_multiref_z"])
    _close(wav, expected["dec_multiref_wav"])
