"""``autocompress synth --provider``: which onnxruntime provider a bundle is asked to run on."""

from __future__ import annotations

import json

import pytest

import autocompress.runtime as runtime
from autocompress.cli.main import main
from autocompress.runtime.manifest import MANIFEST_NAME
from autocompress.runtime.session import PROVIDER_CHOICES


class _Chosen(Exception):
    pass


@pytest.fixture()
def chosen(tmp_path, monkeypatch) -> dict:  # noqa: ANN001
    """The keyword arguments synth builds its BundleRunner with (the runner stops there)."""
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / MANIFEST_NAME).write_text(json.dumps({}))
    seen: dict = {}

    def runner(bundle, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.update(kw)
        raise _Chosen

    monkeypatch.setattr(runtime, "BundleRunner", runner)
    return seen


def _synth(tmp_path, *flags: str) -> None:  # noqa: ANN001
    with pytest.raises(_Chosen):
        main(["synth", "--bundle", str(tmp_path / "b"), "--out", str(tmp_path / "o.wav"), *flags])


def test_synth_passes_the_provider_and_keeps_cpu_as_its_alias(tmp_path, chosen) -> None:
    _synth(tmp_path)
    assert chosen["provider"] == "auto"  # the default: CUDA when it works, else the CPU, never TensorRT
    for name in PROVIDER_CHOICES:
        _synth(tmp_path, "--provider", name)
        assert chosen["provider"] == name
    _synth(tmp_path, "--cpu")
    assert chosen["provider"] == "cpu"


def test_synth_refuses_cpu_with_another_provider_and_a_provider_for_the_demo(tmp_path, capsys) -> None:
    out = str(tmp_path / "o.wav")
    for flags, said in ((["--cpu", "--provider", "tensorrt"], "not allowed with argument"),
                        (["--provider", "trt"], "invalid choice: 'trt'")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main(["synth", "--bundle", str(tmp_path), *flags, "--out", out])
        assert e.value.code == 2 and said in capsys.readouterr().err
    assert main(["synth", "--demo", "--text", "Hi.", "--provider", "tensorrt", "--out", out]) == 2
    assert "--provider chooses a bundle's onnxruntime provider" in capsys.readouterr().err
