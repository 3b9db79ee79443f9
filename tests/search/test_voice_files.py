"""A voice's two files given to the search the wrong way round are named by their flags."""

from __future__ import annotations

import pytest

from autocompress.cli.main import main
from autocompress.exceptions import CheckpointError
from autocompress.search.pipeline import load_voice_files


def _message(gpt, sovits) -> str:  # noqa: ANN001 - paths
    with pytest.raises(CheckpointError) as info:
        load_voice_files(gpt, sovits)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_two_files_swapped_are_named_with_the_command_that_fixes_them(micro_voice):
    gpt, sovits = micro_voice["gpt"], micro_voice["sovits"]
    message = _message(sovits, gpt)
    assert message.startswith("--gpt and --sovits are swapped")
    assert message.endswith(f"pass --gpt {gpt} --sovits {sovits}")


def test_a_wrong_file_under_one_flag_names_that_flag(micro_voice):
    gpt, sovits = micro_voice["gpt"], micro_voice["sovits"]
    assert _message(gpt, gpt).startswith(f"--sovits {gpt} is a GPT")
    message = _message(sovits, sovits)
    assert message.startswith(f"--gpt {sovits} is a SoVITS") and "GPT_weights" in message


def test_an_unreadable_file_keeps_its_own_error(micro_voice, tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    assert "swapped" not in _message(micro_voice["gpt"], broken)
    gpt, sovits = load_voice_files(micro_voice["gpt"], micro_voice["sovits"])
    assert gpt.config.version == "v2" and sovits.config.version == "v2"


def test_the_search_says_the_files_are_swapped_in_one_line(search_argv, micro_voice, tmp_path, capsys):
    argv = search_argv(tmp_path, "--trials", "1", "--steps", "0", "--no-export")
    argv[argv.index("--gpt") + 1], argv[argv.index("--sovits") + 1] = str(micro_voice["sovits"]), str(micro_voice["gpt"])
    assert main(["search", *argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "--gpt and --sovits are swapped" in err[0]
