"""``autocompress synth --text``: the English front end into phone ids, and the demo teacher speaking."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import soundfile as sf

from autocompress.cli.main import main
from autocompress.cli.synth_cmd import phone_ids, phone_pieces
from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.text import symbols

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"text": None, "phones": None, **kw})


def test_text_becomes_ids_of_the_voice_table_with_punctuation_kept():
    table = symbols("v2")
    ids = phone_ids(_args(text="Hello, world!"), table)
    assert [table[i] for i in ids] == ["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "!"]
    assert phone_ids(_args(phones="HH AH0 L OW1"), table) == ids[:4]
    assert phone_ids(_args(), table) is None  # a bundle sample's own text
    with pytest.raises(DataError, match="no words") as plain:
        phone_ids(_args(text=" ?! "), table)
    assert "--phones" not in str(plain.value)
    with pytest.raises(DataError, match="no words to speak; --text reads English only: give other languages as --phones"):
        phone_ids(_args(text="你好。"), table)  # a Mandarin voice's user: told the way that works
    with pytest.raises(DataError, match="lacks the phones"):
        phone_ids(_args(text="Hello"), ["HH", "AH0"])


def test_text_pieces_are_assembled_as_upstream_inference_assembles_them():
    table = symbols("v2")

    def pieces(text: str) -> list[list[str]]:
        return [[table[i] for i in p] for p in phone_pieces(_args(text=text, max_piece_phones=50), table)]

    assert pieces("Yes") == pieces("Yes.") == [[".", "Y", "EH1", "S", "."]]  # a stop after, and under 6 a stop before
    assert pieces("Hello there, my friend") == [["HH", "AH0", "L", "OW1", "DH", "EH1", "R", ",", "M", "AY1", "F", "R",
                                                 "EH1", "N", "D", "."]]
    assert pieces("Hello, world!")[0][-1] == "!" and pieces("Hello, world!")[0][0] == "HH"
    raw = phone_pieces(_args(phones="Y EH1 S", max_piece_phones=50), table)
    assert [[table[i] for i in p] for p in raw] == [["Y", "EH1", "S"]]  # --phones are spoken as given


def test_demo_teacher_speaks_text_deterministically_and_samples_by_seed(tmp_path, capsys):
    def say(name: str, *extra: str) -> tuple[np.ndarray, int, int]:
        out = tmp_path / name
        assert main(["synth", "--demo", "--text", "The red boat is here.", "--out", str(out), *extra]) == 0
        line = capsys.readouterr().out
        codes = int(line.split(" codes")[0].rsplit(" ", 1)[1])
        audio, rate = sf.read(out)
        return audio, rate, codes

    greedy, rate, codes = say("a.wav")
    assert rate == 32000 and 0 < codes and greedy.size == codes * 1280  # 25 Hz codes, 32 kHz audio
    assert np.isfinite(greedy).all() and greedy.std() > 1e-3
    again, _, _ = say("b.wav")
    assert np.array_equal(greedy, again)  # greedy and noise scale 0: the same file every time
    one, _, _ = say("c.wav", "--top-k", "15", "--seed", "1")
    two, _, _ = say("d.wav", "--top-k", "15", "--seed", "2")
    one_again, _, _ = say("e.wav", "--top-k", "15", "--seed", "1")
    assert np.array_equal(one, one_again) and not np.array_equal(one, two)


def test_demo_synth_refuses_missing_text_and_bundle_only_flags(tmp_path, capsys):
    out = str(tmp_path / "x.wav")
    assert main(["synth", "--demo", "--out", out]) == 2
    assert "needs --text" in capsys.readouterr().err
    assert main(["synth", "--demo", "--text", "Hi.", "--sample", "3", "--out", out]) == 2
    assert "--sample" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: one voice only
        main(["synth", "--demo", "--bundle", str(tmp_path), "--text", "Hi.", "--out", out])
    capsys.readouterr()
    for voice in (["--demo"], ["--bundle", str(tmp_path)]):  # a folder as --out: refused before speaking
        assert main(["synth", *voice, "--text", "Hi.", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"--out {tmp_path} is a folder" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):  # a negative seed, for the demo as for bundles (numpy refuses it)
        main(["synth", "--demo", "--text", "Hi.", "--seed", "-1", "--out", out])
    assert "--seed: must be 0 or more" in capsys.readouterr().err


def test_demo_speaks_each_sentence_as_it_would_alone_with_a_pause_between(tmp_path, capsys):
    def say(text: str, *extra: str) -> tuple[np.ndarray, str]:
        out = tmp_path / "out.wav"
        assert main(["synth", "--demo", "--text", text, "--out", str(out), *extra]) == 0
        return sf.read(out)[0], capsys.readouterr().out

    first, _ = say("The red boat is here.")
    second, _ = say("Where did Simon leave the yellow basket?")
    both, line = say("The red boat is here. Where did Simon leave the yellow basket?")
    assert " codes in 2 pieces (eos)" in line
    np.testing.assert_array_equal(both, np.concatenate([first, np.zeros(9600), second]))  # 0.3 s at 32 kHz
    whole, line = say("The red boat is here. Where did Simon leave the yellow basket?", "--max-piece-phones", "0")
    assert " pieces" not in line and whole.size != both.size
    assert main(["synth", "--demo", "--text", "Hi.", "--max-piece-phones", "-1", "--out", str(tmp_path / "x.wav")]) == 2
    assert "--max-piece-phones" in capsys.readouterr().err


def test_text_pieces_cut_a_long_clause_between_its_words():
    from autocompress.cli.synth_cmd import phone_pieces

    table = symbols("v2")
    text = ("The quick brown fox jumps over the lazy dog while the sleepy cat watches from the warm windowsill "
            "and the old farmer walks slowly toward the big red barn near the river")
    pieces = phone_pieces(_args(text=text, max_piece_phones=50), table)
    stop = table.index(".")
    assert len(pieces) >= 3 and all(len(p) <= 51 and p[-1] == stop for p in pieces)  # each closed by a stop
    assert [i for p in pieces for i in p[:-1]] == phone_ids(_args(text=text), table)
    assert [table[i] for i in pieces[1][:2]] == ["D", "AO1"]  # "dog": a word starts the second piece
