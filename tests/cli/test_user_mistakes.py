"""Mistakes a new user makes on the command line: each is one line on stderr, exit code 2, and
is caught before the command does work a late failure would lose."""

from __future__ import annotations

import pytest

from autocompress.cli.main import build_parser, main
from autocompress.exceptions import ConfigError


def _one_error_line(capsys) -> str:  # noqa: ANN001
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_second_target_is_refused_instead_of_silently_replacing_the_first(capsys):
    """'--target rtx3060 --target rtx4090' searched rtx4090 alone, without a word."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["search", "--target", "rtx3060", "--target", "rtx4090"])
    assert e.value.code == 2
    err = _one_error_line(capsys)
    assert "--target given twice (rtx3060, rtx4090)" in err and "one search per target" in err
    assert build_parser().parse_args(["search", "--target", "t4", "--target=t4"]).target == "t4"  # the same twice


def test_a_schedule_with_two_targets_is_refused_when_added():
    from autocompress.schedule._args import parse_search_args

    with pytest.raises(ConfigError, match=r"--target given twice \(rtx3060, t4\)"):
        parse_search_args(["--target", "rtx3060", "--target", "t4"])


def test_a_schedule_name_no_study_can_take_is_named_as_the_name_given(tmp_path, capsys):
    """The study takes the schedule's name; the error spoke of a '--study' the user never gave."""
    storage = f"sqlite:///{tmp_path / 'db.db'}"
    code = main(["schedule", "add", "--storage", storage, "--name", "my+voice", "--cron", "0 2 * * *",
                 "--", "--target", "rtx3060"])
    assert code == 2
    err = _one_error_line(capsys)
    assert "--name 'my+voice' also names the schedule's study" in err and "--study NAME after '--'" in err


@pytest.mark.parametrize("voice", [["--demo"], ["--bundle", "BUNDLE"]])
def test_synth_refuses_an_out_under_a_file_before_it_speaks(tmp_path, capsys, voice):
    """The voice spoke the whole text first, then failed with 'error: notes.txt: File exists'."""
    (tmp_path / "notes.txt").write_text("mine")
    voice = [str(tmp_path) if v == "BUNDLE" else v for v in voice]
    out = tmp_path / "notes.txt" / "takes" / "x.wav"
    assert main(["synth", *voice, "--text", "Hi.", "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert f"--out {out}: {tmp_path / 'notes.txt'} is a file, not a folder" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["take.mp3", "take.FLAC", "take.ogg"])
def test_synth_refuses_an_out_named_for_another_audio_format(tmp_path, capsys, name):
    """A .mp3 file holding WAV data: players and converters that trust the name fail on it."""
    assert main(["synth", "--bundle", str(tmp_path), "--text", "Hi.", "--out", str(tmp_path / name)]) == 2
    assert "synth writes WAV (16-bit PCM) only; name the file .wav" in _one_error_line(capsys)


def test_synth_says_a_bundle_file_is_not_the_bundle_folder(tmp_path, capsys):
    bundle = tmp_path / "trial-0002"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    (bundle / "dec.onnx").write_bytes(b"")
    out = str(tmp_path / "x.wav")
    for given in (bundle / "manifest.json", bundle / "dec.onnx"):
        assert main(["synth", "--bundle", str(given), "--out", out]) == 2
        assert f"a file, not a folder; pass the bundle folder that holds it, {bundle}" in _one_error_line(capsys)
    assert main(["synth", "--bundle", str(tmp_path / "nope"), "--out", out]) == 2
    assert "--bundle " + str(tmp_path / "nope") + ": no such folder" in _one_error_line(capsys)


def test_report_refuses_an_out_under_a_file_in_one_line(tmp_path, capsys):
    """It read the study, then failed with 'error: notes.txt: File exists'."""
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "report.html"
    storage = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["report", "--study", "me", "--storage", storage, "--out", str(out)]) == 2
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder; choose another path" in _one_error_line(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_folder_for_a_model_file_and_a_file_for_the_experiment_folder_are_named_so(tmp_path, capsys):
    """'--gpt <a folder>' said "no such file" and '--data <a file>' "no such folder": both exist."""
    (tmp_path / "models").mkdir()
    (tmp_path / "me.ckpt").write_bytes(b"x")
    (tmp_path / "me.pth").write_bytes(b"x")
    (tmp_path / "exp.txt").write_text("x")
    base = ["search", "--target", "rtx3060", "--storage", f"sqlite:///{tmp_path / 'db.db'}", "--no-export"]
    assert main([*base, "--gpt", str(tmp_path / "models"), "--sovits", str(tmp_path / "me.pth"),
                 "--data", str(tmp_path)]) != 0  # fmt: skip
    assert "is a folder; give the .ckpt file" in _one_error_line(capsys)
    assert main([*base, "--gpt", str(tmp_path / "me.ckpt"), "--sovits", str(tmp_path / "me.pth"),
                 "--data", str(tmp_path / "exp.txt")]) != 0  # fmt: skip
    assert "is a file; give the experiment folder" in _one_error_line(capsys)


def test_demo_text_with_nothing_to_speak_is_refused_before_the_voice_loads(tmp_path, capsys, monkeypatch):
    import autocompress.models.gpt_sovits as models

    def no_load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the voice was loaded for text it cannot speak")

    monkeypatch.setattr(models, "load_gpt", no_load)
    assert main(["synth", "--demo", "--text", "...", "--out", str(tmp_path / "x.wav")]) == 2
    assert "has no words to speak" in _one_error_line(capsys)
